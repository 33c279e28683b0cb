"""Login throttling against the threat model of docs/security.md, driven through the real
API with real concurrency: attempts sent at once, from one address and from many."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from fastapi import FastAPI
from redis.asyncio import Redis

from app.auth.throttle import KEY_PREFIX, Admission, LoginThrottle, ThrottlePolicy
from app.core.config import Settings
from app.core.errors import TooManyRequests
from app.db.engine import SessionFactory
from tests.api.helpers import GraphQLClient, GraphQLResponse
from tests.factories import PASSWORD, login_attempt, make_user

CHANGE = (
    "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) "
    "{ accessToken } }"
)
WRONG = "wrong-password"

ClientAt = Callable[[str], GraphQLClient]


@pytest.fixture
async def client_at(app: FastAPI, http: httpx.AsyncClient) -> AsyncIterator[ClientAt]:
    """A GraphQL client whose requests come from the given address (`http` cleared the
    throttle and the database)."""
    clients: dict[str, httpx.AsyncClient] = {}

    def at(address: str) -> GraphQLClient:
        if address not in clients:
            transport = httpx.ASGITransport(app=app, client=(address, 40000))
            clients[address] = httpx.AsyncClient(transport=transport, base_url="http://testserver")
        return GraphQLClient(clients[address])

    yield at
    for client in clients.values():
        await client.aclose()


def _outcomes(responses: list[GraphQLResponse]) -> Counter[str]:
    return Counter(r.codes[0] if r.codes else "OK" for r in responses)


def _assert_retry_after(responses: list[GraphQLResponse]) -> None:
    """Every TOO_MANY_REQUESTS carries a positive number of seconds to wait."""
    for response in responses:
        for error in response.errors:
            if error["extensions"]["code"] == "TOO_MANY_REQUESTS":
                retry_after = error["extensions"]["retryAfterSeconds"]
                assert isinstance(retry_after, int) and retry_after >= 1, error


async def test_concurrent_guesses_get_exactly_the_checks_of_sequential_ones(
    sessions: SessionFactory, gql: GraphQLClient, settings: Settings
) -> None:
    await make_user(sessions, "agent1")
    await make_user(sessions, "agent2")
    attempts = 10

    sequential = [await login_attempt(gql, "agent1", WRONG) for _ in range(attempts)]
    concurrent = list(
        await asyncio.gather(*(login_attempt(gql, "agent2", WRONG) for _ in range(attempts)))
    )

    # Each UNAUTHENTICATED is one password check; the first failures beyond the free ones
    # block the pair, so both ways the attacker gets the free failures and one more.
    expected = Counter(
        UNAUTHENTICATED=settings.login_free_failures + 1,
        TOO_MANY_REQUESTS=attempts - settings.login_free_failures - 1,
    )
    assert _outcomes(sequential) == expected
    assert _outcomes(concurrent) == expected
    _assert_retry_after(sequential + concurrent)
    blocked = next(r for r in concurrent if r.codes == ["TOO_MANY_REQUESTS"])
    assert "try again in" in blocked.errors[0]["message"]


async def test_an_account_gets_a_fixed_number_of_checks_per_hour_whatever_the_addresses(
    sessions: SessionFactory, client_at: ClientAt, settings: Settings
) -> None:
    await make_user(sessions, "agent1")
    # The owner logged in from the office before: that address is trusted for the account.
    office = client_at("198.51.100.10")
    assert not (await login_attempt(office, "agent1", PASSWORD)).errors

    # A botnet: 40 addresses, 3 guesses each, all at once.
    guesses = [
        login_attempt(client_at(f"203.0.113.{host}"), "agent1", WRONG)
        for host in range(1, 41)
        for _ in range(3)
    ]
    responses = list(await asyncio.gather(*guesses))
    outcomes = _outcomes(responses)
    assert outcomes["UNAUTHENTICATED"] == settings.login_checks_per_account
    assert outcomes["TOO_MANY_REQUESTS"] == len(guesses) - settings.login_checks_per_account
    _assert_retry_after(responses)
    # The account's budget is spent for the window: a new address waits for it to end.
    refused = await login_attempt(client_at("192.0.2.99"), "agent1", PASSWORD)
    assert refused.codes == ["TOO_MANY_REQUESTS"]
    retry_after = refused.errors[0]["extensions"]["retryAfterSeconds"]
    assert settings.login_window_s - 60 < retry_after <= settings.login_window_s
    # The owner at their usual address still gets in (the trusted addresses' own budget).
    assert not (await login_attempt(office, "agent1", PASSWORD)).errors


async def test_failing_from_one_address_does_not_lock_the_user_out_elsewhere(
    sessions: SessionFactory, client_at: ClientAt, settings: Settings
) -> None:
    await make_user(sessions, "admin1")
    attacker = client_at("203.0.113.7")
    responses = list(
        await asyncio.gather(*(login_attempt(attacker, "admin1", WRONG) for _ in range(40)))
    )
    # Within this window the attacker's address got at most the pair's checks...
    assert _outcomes(responses)["UNAUTHENTICATED"] <= settings.login_failures_per_pair
    _assert_retry_after(responses)
    assert (await login_attempt(attacker, "admin1", PASSWORD)).codes == ["TOO_MANY_REQUESTS"]
    # ...and the owner, from any other address, logs in at once.
    assert not (await login_attempt(client_at("198.51.100.20"), "admin1", PASSWORD)).errors
    # Even after the attacker spends its whole pair cap over time.
    for _ in range(settings.login_failures_per_pair):
        await login_attempt(attacker, "admin1", WRONG)
    assert not (await login_attempt(client_at("198.51.100.21"), "admin1", PASSWORD)).errors


async def test_one_persons_failures_do_not_lock_out_the_office_behind_the_same_address(
    sessions: SessionFactory, client_at: ClientAt, settings: Settings, redis_url: str
) -> None:
    for name in ("agent1", "agent2", "agent3"):
        await make_user(sessions, name)
    office = client_at("198.51.100.30")
    # One person mistypes their own password far past every limit, and keeps trying
    # usernames that do not exist.
    for _ in range(settings.login_failures_per_pair + 5):
        await login_attempt(office, "agent1", WRONG)
    unknown = settings.login_unknown_usernames_per_address + 10
    answers = list(
        await asyncio.gather(*(login_attempt(office, f"nobody{n}", WRONG) for n in range(unknown)))
    )
    # Unknown usernames are only ever told "invalid": no oracle of which names exist.
    assert _outcomes(answers) == Counter(UNAUTHENTICATED=unknown)
    # Beyond the address's budget they were answered without a check (nothing counted).
    redis = Redis.from_url(redis_url)
    try:
        pairs = [key async for key in redis.scan_iter(f"{KEY_PREFIX}:pair:*")]
    finally:
        await redis.aclose()
    assert len(pairs) == 1 + settings.login_unknown_usernames_per_address

    # Everybody else in the office logs in as usual.
    assert not (await login_attempt(office, "agent2", PASSWORD)).errors
    assert not (await login_attempt(office, "agent3", PASSWORD)).errors


async def test_a_user_who_mistypes_a_few_times_never_waits(
    sessions: SessionFactory, gql: GraphQLClient, settings: Settings
) -> None:
    await make_user(sessions, "agent1")
    started = time.perf_counter()
    for _ in range(3 * settings.login_checks_per_account // settings.login_free_failures):
        for _ in range(settings.login_free_failures - 1):
            assert (await login_attempt(gql, "agent1", "typo-password")).codes == [
                "UNAUTHENTICATED"
            ]
        assert not (await login_attempt(gql, "agent1", PASSWORD)).errors
    # Successes give their checks back: the owner's own logins never spend the budget.
    assert time.perf_counter() - started < 30


async def test_change_password_is_throttled_likelogin_attempt(
    sessions: SessionFactory, gql: GraphQLClient, settings: Settings
) -> None:
    await make_user(sessions, "agent1")
    token = await gql.login("agent1")
    responses = list(
        await asyncio.gather(
            *(
                gql(CHANGE, {"c": WRONG, "n": "another-long-password"}, token=token)
                for _ in range(10)
            )
        )
    )
    # The successful login before gave its check back; the pair starts clean.
    assert _outcomes(responses) == Counter(
        UNAUTHENTICATED=settings.login_free_failures + 1,
        TOO_MANY_REQUESTS=10 - settings.login_free_failures - 1,
    )
    _assert_retry_after(responses)


async def test_the_throttle_state_is_shared_by_every_api_process(
    sessions: SessionFactory, gql: GraphQLClient, settings: Settings, redis_url: str
) -> None:
    await make_user(sessions, "agent1")
    for _ in range(settings.login_free_failures + 1):
        await login_attempt(gql, "agent1", WRONG)
    other_process = Redis.from_url(redis_url)
    try:
        throttle = LoginThrottle(other_process, ThrottlePolicy())
        with pytest.raises(TooManyRequests) as refused:
            await throttle.admit("agent1", "127.0.0.1", known=True)
        assert refused.value.retry_after_s >= 1
        # The block is short; after it the right password works and clears the pair. The
        # block is a span of time, so time passing is what is waited for.
        await asyncio.sleep(1.2)
        assert not (await login_attempt(gql, "agent1", PASSWORD)).errors
        assert await throttle.admit("agent1", "127.0.0.1", known=True) is Admission.CHECK_TRUSTED
    finally:
        await other_process.aclose()


def test_the_pair_delay_doubles_up_to_the_maximum() -> None:
    policy = ThrottlePolicy(free_failures_per_pair=5, max_pair_delay_s=60)
    delays = [policy.pair_delay_ms(failures) for failures in range(1, 14)]
    assert delays[:5] == [0] * 5
    assert delays[5:] == [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]


def test_one_address_can_never_spend_an_accounts_budget() -> None:
    with pytest.raises(ValueError, match="below checks per account"):
        ThrottlePolicy(failures_per_pair=20, checks_per_account=20)
