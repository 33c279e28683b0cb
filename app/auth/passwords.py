"""Argon2id password hashing, always off the event loop.

Verification of an unknown user runs against a dummy hash, so a wrong username and a
wrong password take about the same time.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _hasher.hash("ovozly-dummy-password-for-timing")


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    new_hash: str | None = None
    """Set when the stored hash uses outdated parameters and should be replaced."""


def _verify(stored_hash: str | None, password: str) -> Verification:
    try:
        _hasher.verify(stored_hash or _dummy_hash(), password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return Verification(ok=False)
    if stored_hash is None:
        return Verification(ok=False)
    if _hasher.check_needs_rehash(stored_hash):
        return Verification(ok=True, new_hash=_hasher.hash(password))
    return Verification(ok=True)


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> Verification:
    """`stored_hash=None` (unknown user) still spends one verification, then fails."""
    return await asyncio.to_thread(_verify, stored_hash, password)


def warm_up() -> None:
    """Computes the dummy hash at start-up so the first failed login is not slower."""
    _dummy_hash()
