"""Login throttling per username and per client address, kept in Redis so it holds across
every API process.

A number of failed logins in a row is answered at full speed (a person mistyping never
waits); each failure beyond it blocks further attempts for that username (or address) for a
delay that doubles with every failure, up to a maximum. While blocked, attempts are refused
with TOO_MANY_REQUESTS before any password is checked, so an attacker also stops costing
argon2 time. A successful login clears the username's count.

When Redis is unreachable the throttle lets logins through (logged): refusing every login
during a Redis outage would turn a cache failure into a full outage.
"""

from __future__ import annotations

import hashlib
import logging
import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.errors import TooManyRequests

logger = logging.getLogger(__name__)

KEY_PREFIX = "ovozly:login"
BASE_DELAY_S = 1.0
FAILURE_MEMORY_S = 3600
"""A failure count is forgotten this long after the last failure."""


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    free_failures_per_username: int = 5
    free_failures_per_address: int = 30
    max_delay_s: int = 900

    def delay_s(self, failures: int, free: int) -> float:
        """The block after the `failures`-th failure in a row: none within the free ones,
        then 1 s, 2 s, 4 s... up to the maximum."""
        beyond = failures - free
        if beyond <= 0:
            return 0.0
        return float(min(self.max_delay_s, BASE_DELAY_S * 2 ** min(beyond - 1, 30)))


def _subject(kind: str, value: str) -> str:
    # Hashed: keys stay short and a username never appears in Redis in clear.
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{kind}:{digest}"


class LoginThrottle:
    def __init__(self, redis: Redis, policy: ThrottlePolicy) -> None:
        self._redis = redis
        self._policy = policy

    def _subjects(self, username: str, address: str | None) -> list[tuple[str, int]]:
        subjects = [(_subject("user", username), self._policy.free_failures_per_username)]
        if address:
            subjects.append((_subject("addr", address), self._policy.free_failures_per_address))
        return subjects

    async def check(self, username: str, address: str | None) -> None:
        """Raises TooManyRequests while this username or address is blocked."""
        try:
            remaining_ms = [
                int(await self._redis.pttl(f"{KEY_PREFIX}:block:{subject}"))
                for subject, _ in self._subjects(username, address)
            ]
        except (RedisError, OSError):
            logger.warning("login throttle unavailable (Redis); not throttling", exc_info=True)
            return
        longest_ms = max(remaining_ms)
        if longest_ms > 0:
            retry_after_s = max(1, math.ceil(longest_ms / 1000))
            raise TooManyRequests(
                f"Too many failed logins; try again in {retry_after_s} s", retry_after_s
            )

    async def record_failure(self, username: str, address: str | None) -> None:
        try:
            for subject, free in self._subjects(username, address):
                failures_key = f"{KEY_PREFIX}:failures:{subject}"
                async with self._redis.pipeline(transaction=True) as pipe:
                    pipe.incr(failures_key)
                    pipe.expire(failures_key, FAILURE_MEMORY_S)
                    failures = int((await pipe.execute())[0])
                delay_s = self._policy.delay_s(failures, free)
                if delay_s > 0:
                    await self._redis.set(
                        f"{KEY_PREFIX}:block:{subject}", b"1", px=int(delay_s * 1000)
                    )
        except (RedisError, OSError):
            logger.warning("could not record a failed login (Redis)", exc_info=True)

    async def record_success(self, username: str) -> None:
        subject = _subject("user", username)
        try:
            await self._redis.delete(
                f"{KEY_PREFIX}:failures:{subject}", f"{KEY_PREFIX}:block:{subject}"
            )
        except (RedisError, OSError):
            logger.warning("could not clear failed logins (Redis)", exc_info=True)
