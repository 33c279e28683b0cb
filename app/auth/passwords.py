"""Argon2id password hashing, always off the event loop.

Verification of an unknown user runs against a dummy hash, so a wrong username and a
wrong password take about the same time.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from app.core.config import Settings

_hasher = PasswordHasher()
_dummy: str | None = None
# Hashing has threads of its own: a login never queues behind other work sent to threads
# (upload writes, storage calls), so it takes one hash's time however busy the API is.
HASHING_THREADS = 4
_hashing_pool = ThreadPoolExecutor(max_workers=HASHING_THREADS, thread_name_prefix="argon2")
_last_verification_s = 0.0


def configure(*, time_cost: int, memory_kib: int, parallelism: int) -> None:
    """Sets the cost parameters for new hashes. Hashes made with other parameters still
    verify and are replaced on the next successful login (rehash-on-verify)."""
    global _hasher, _dummy
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism)
    _dummy = None


def configure_from(settings: Settings) -> None:
    """The cost parameters of the service's settings."""
    configure(
        time_cost=settings.argon2_time_cost,
        memory_kib=settings.argon2_memory_kib,
        parallelism=settings.argon2_parallelism,
    )


def _dummy_hash() -> str:
    global _dummy
    if _dummy is None:
        _dummy = _hasher.hash("ovozly-dummy-password-for-timing")
    return _dummy


def needs_rehash(stored_hash: str) -> bool:
    return _hasher.check_needs_rehash(stored_hash)


@dataclass(frozen=True, slots=True)
class Verification:
    ok: bool
    new_hash: str | None = None
    """Set when the stored hash uses outdated parameters and should be replaced."""


def _verify(stored_hash: str | None, password: str) -> Verification:
    global _last_verification_s
    started = time.perf_counter()
    try:
        return _verify_timed(stored_hash, password)
    finally:
        _last_verification_s = time.perf_counter() - started


def last_verification_s() -> float:
    """How long the latest verification took: an answer given without one (a throttled
    unknown username) waits as long, so its timing tells nothing."""
    return _last_verification_s


def _verify_timed(stored_hash: str | None, password: str) -> Verification:
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
    return await asyncio.get_running_loop().run_in_executor(_hashing_pool, _hasher.hash, password)


async def verify_password(stored_hash: str | None, password: str) -> Verification:
    """`stored_hash=None` (unknown user) still spends one verification, then fails."""
    return await asyncio.get_running_loop().run_in_executor(
        _hashing_pool, _verify, stored_hash, password
    )


def warm_up() -> None:
    """Computes the dummy hash at start-up so the first failed login is not slower, and
    times one verification."""
    _dummy_hash()
    _verify(None, "ovozly-warm-up")
