"""Login throttling, kept in Redis so it holds across every API process.

The threat model and the rules are in docs/security.md ("Login throttling"). In short, every
password check is admitted, and counted, by one Lua script that runs atomically in Redis
before the check starts; concurrency therefore gains an attacker nothing (ten attempts at
once are admitted exactly as ten in a row would be). The buckets:

* per (account, address): a few failures at full speed, then a block of that pair for a
  doubling delay, and at most a fixed number of failures per window. Only that address is
  held back: the account's owner elsewhere is not.
* per account: a fixed budget of password checks per window, whatever the addresses; it is
  larger than one pair's cap, so one address alone never spends it. Addresses the account
  logged in from before ("trusted" for that account) draw on a budget of their own, so an
  attack spread over many addresses does not keep the owner out at their usual desk.
* per address, unknown usernames only: a fixed number of failures per window; beyond it an
  unknown username from that address is answered "invalid" without a check (and after the
  time a check takes, so the answer tells nothing). Known usernames from the address are not
  affected: one person's failures never lock out the office behind the same address.

An attempt is counted as a failure when it is admitted; a successful check gives back what
its pair (its own count included) charged the account, since failures from the address that
then got the password right were most likely the owner's typos, clears the pair, and trusts
the address. Counts are fixed windows that start with the
first counted attempt. `TooManyRequests.retry_after_s` is the time until the block that
refused the attempt ends.

When Redis is unreachable the throttle lets logins through (logged): refusing every login
during a Redis outage would turn a cache failure into a full outage.
"""

from __future__ import annotations

import enum
import hashlib
import logging
import math
from dataclasses import dataclass

from redis.asyncio import Redis
from redis.exceptions import RedisError

from app.core.errors import TooManyRequests

logger = logging.getLogger(__name__)

KEY_PREFIX = "ovozly:login"
BASE_DELAY_MS = 1000


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    free_failures_per_pair: int = 5
    """Failures of one account from one address answered at full speed (a person mistyping)."""
    failures_per_pair: int = 10
    """Failures of one account from one address per window, at most."""
    max_pair_delay_s: int = 300
    """The longest block of one (account, address) pair between two failures."""
    checks_per_account: int = 20
    """Password checks of one account per window from addresses it has not logged in from."""
    trusted_checks_per_account: int = 10
    """Password checks of one account per window from addresses it has logged in from."""
    unknown_usernames_per_address: int = 30
    """Failed logins with unknown usernames from one address per window."""
    window_s: int = 3600
    trusted_address_s: int = 30 * 24 * 3600
    """How long a successful login makes its address trusted for the account."""

    def __post_init__(self) -> None:
        if self.failures_per_pair >= self.checks_per_account:
            # Otherwise one address alone could spend the account's budget and keep its
            # owner out everywhere else.
            raise ValueError("failures per pair must stay below checks per account")
        if self.free_failures_per_pair > self.failures_per_pair:
            raise ValueError("free failures per pair must not exceed failures per pair")

    def pair_delay_ms(self, failures: int) -> int:
        """The block after the `failures`-th failure of a pair: none within the free ones,
        then 1 s, 2 s, 4 s... up to the maximum."""
        beyond = failures - self.free_failures_per_pair
        if beyond <= 0:
            return 0
        doubled: int = BASE_DELAY_MS * 2 ** min(beyond - 1, 30)
        return min(self.max_pair_delay_s * 1000, doubled)


class Admission(enum.Enum):
    CHECK = "check"
    """Check the password; the attempt is already counted as a failure."""
    CHECK_TRUSTED = "check-trusted"
    """As CHECK, drawn on the account's budget for trusted addresses."""
    ANSWER_INVALID = "answer-invalid"
    """An unknown username from an address that spent its unknown-username budget: answer
    "invalid credentials" without checking anything."""


# KEYS: 1 pair failures, 2 pair block, 3 account checks, 4 trusted account checks,
#       5 address failures (unknown usernames), 6 trusted addresses of the account
# ARGV: 1 known (0/1), 2 address member ("" without an address), 3 window ms,
#       4 free per pair, 5 per pair, 6 pair max delay ms, 7 base delay ms,
#       8 checks per account, 9 trusted checks per account, 10 unknown usernames per address
# Returns {verdict, wait_ms}: 0 refused (wait_ms), 1 check, 2 check trusted, 3 answer invalid.
_ADMIT = """
local window = tonumber(ARGV[3])
local function remaining(key)
  local ms = redis.call('PTTL', key)
  if ms > 0 then return ms end
  return 0
end
local function count(key)
  return tonumber(redis.call('GET', key) or '0')
end
local function charge(key)
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('PEXPIRE', key, window) end
  return n
end
local known = ARGV[1] == '1'
local member = ARGV[2]
local trusted = known and member ~= '' and redis.call('SISMEMBER', KEYS[6], member) == 1
local budget_key = KEYS[3]
local budget = tonumber(ARGV[8])
if trusted then
  budget_key = KEYS[4]
  budget = tonumber(ARGV[9])
end
local wait = remaining(KEYS[2])
local pair_failures = count(KEYS[1])
if pair_failures >= tonumber(ARGV[5]) then wait = math.max(wait, remaining(KEYS[1])) end
if count(budget_key) >= budget then wait = math.max(wait, remaining(budget_key)) end
if wait > 0 then return {0, wait} end
if not known and member ~= '' and count(KEYS[5]) >= tonumber(ARGV[10]) then
  return {3, 0}
end
pair_failures = charge(KEYS[1])
local beyond = pair_failures - tonumber(ARGV[4])
if beyond > 0 then
  local delay = math.min(tonumber(ARGV[6]), tonumber(ARGV[7]) * 2 ^ math.min(beyond - 1, 30))
  redis.call('SET', KEYS[2], '1', 'PX', math.floor(delay))
end
charge(budget_key)
if not known and member ~= '' then charge(KEYS[5]) end
if trusted then return {2, 0} end
return {1, 0}
"""

# KEYS: 1 pair failures, 2 pair block, 3 the budget charged, 4 trusted addresses
# ARGV: 1 address member ("" without an address), 2 trusted address ms
_SUCCEEDED = """
local pair_failures = tonumber(redis.call('GET', KEYS[1]) or '0')
local charged = tonumber(redis.call('GET', KEYS[3]) or '0')
local refund = math.min(pair_failures, charged)
if refund > 0 then redis.call('DECRBY', KEYS[3], refund) end
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[1] ~= '' then
  redis.call('SADD', KEYS[4], ARGV[1])
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[2]))
end
return 1
"""


def _digest(value: str) -> str:
    # Hashed: keys stay short and a username or address never appears in Redis in clear.
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class _Keys:
    pair_failures: str
    pair_block: str
    account_checks: str
    trusted_account_checks: str
    address_failures: str
    trusted_addresses: str
    address_member: str

    @classmethod
    def of(cls, username: str, address: str | None) -> _Keys:
        account = _digest(username)
        member = _digest(address) if address else ""
        pair = f"{account}:{member or '-'}"
        return cls(
            pair_failures=f"{KEY_PREFIX}:pair:{pair}",
            pair_block=f"{KEY_PREFIX}:pair-block:{pair}",
            account_checks=f"{KEY_PREFIX}:account:{account}",
            trusted_account_checks=f"{KEY_PREFIX}:account-trusted:{account}",
            address_failures=f"{KEY_PREFIX}:address:{member or '-'}",
            trusted_addresses=f"{KEY_PREFIX}:trusted:{account}",
            address_member=member,
        )


def _retry_after_s(wait_ms: int) -> int:
    return max(1, math.ceil(wait_ms / 1000))


class LoginThrottle:
    def __init__(self, redis: Redis, policy: ThrottlePolicy) -> None:
        self._redis = redis
        self._policy = policy
        self._admit = redis.register_script(_ADMIT)
        self._succeeded = redis.register_script(_SUCCEEDED)

    async def admit(self, username: str, address: str | None, *, known: bool) -> Admission:
        """Admits and counts one password check, atomically; raises TooManyRequests while a
        bucket of this attempt is spent. `known`: whether the username is an account."""
        keys = _Keys.of(username, address)
        policy = self._policy
        try:
            verdict, wait_ms = await self._admit(
                keys=[
                    keys.pair_failures,
                    keys.pair_block,
                    keys.account_checks,
                    keys.trusted_account_checks,
                    keys.address_failures,
                    keys.trusted_addresses,
                ],
                args=[
                    1 if known else 0,
                    keys.address_member,
                    policy.window_s * 1000,
                    policy.free_failures_per_pair,
                    policy.failures_per_pair,
                    policy.max_pair_delay_s * 1000,
                    BASE_DELAY_MS,
                    policy.checks_per_account,
                    policy.trusted_checks_per_account,
                    policy.unknown_usernames_per_address,
                ],
            )
        except (RedisError, OSError):
            logger.warning("login throttle unavailable (Redis); not throttling", exc_info=True)
            return Admission.CHECK
        if int(verdict) == 0:
            retry_after_s = _retry_after_s(int(wait_ms))
            raise TooManyRequests(
                f"Too many failed logins; try again in {retry_after_s} s", retry_after_s
            )
        return {1: Admission.CHECK, 2: Admission.CHECK_TRUSTED}.get(
            int(verdict), Admission.ANSWER_INVALID
        )

    async def record_success(
        self, username: str, address: str | None, admission: Admission
    ) -> None:
        """The check admitted as `admission` succeeded: what the pair charged the account is
        given back, the pair cleared, and the address trusted for the account."""
        keys = _Keys.of(username, address)
        charged = (
            keys.trusted_account_checks
            if admission is Admission.CHECK_TRUSTED
            else keys.account_checks
        )
        try:
            await self._succeeded(
                keys=[keys.pair_failures, keys.pair_block, charged, keys.trusted_addresses],
                args=[keys.address_member, self._policy.trusted_address_s * 1000],
            )
        except (RedisError, OSError):
            logger.warning("could not clear failed logins (Redis)", exc_info=True)
