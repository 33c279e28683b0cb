from __future__ import annotations

import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
from sqlalchemy import delete, update

from app.auth.tokens import ALGORITHM, ISSUER, issue_access_token
from app.core.config import Settings
from app.db.engine import SessionFactory, create_engine, create_session_factory
from app.db.models import Role, User
from tests.api.helpers import GraphQLClient
from tests.factories import LOGIN, PASSWORD, make_user

ME = "{ me { id username role isActive createdAt } }"


async def _execute(settings: Settings, statement: object) -> None:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with create_session_factory(engine)() as session, session.begin():
            await session.execute(statement)  # type: ignore[call-overload]
    finally:
        await engine.dispose()


async def test_login_returns_a_bearer_token_that_identifies_the_user(
    sessions: SessionFactory, gql: GraphQLClient, settings: Settings
) -> None:
    await make_user(sessions, "agent1")
    result = await gql(LOGIN, {"u": "Agent1", "p": PASSWORD})
    assert not result.errors
    assert result.data is not None
    payload = result.data["login"]
    assert payload["tokenType"] == "Bearer"
    assert payload["expiresIn"] == settings.jwt_expires_s
    assert payload["user"] == {"username": "agent1", "role": "AGENT"}
    claims = jwt.decode(
        payload["accessToken"], settings.signing_key, algorithms=[ALGORITHM], issuer=ISSUER
    )
    assert claims["role"] == "AGENT" and claims["exp"] > time.time()
    me = await gql(ME, token=payload["accessToken"])
    assert me.data is not None and me.data["me"]["username"] == "agent1"
    assert me.data["me"]["createdAt"].endswith("+00:00")


async def test_unknown_user_and_wrong_password_get_the_same_error(
    sessions: SessionFactory, gql: GraphQLClient, settings: Settings
) -> None:
    await make_user(sessions, "agent1")
    responses = []
    medians = []
    for username in ("agent1", "nobody"):
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            responses.append(await gql(LOGIN, {"u": username, "p": "wrong-password!"}))
            timings.append(time.perf_counter() - started)
        medians.append(statistics.median(timings))
    assert {tuple(r.codes) for r in responses} == {("UNAUTHENTICATED",)}
    assert {r.errors[0]["message"] for r in responses} == {"Invalid username or password"}
    assert all(r.data is None for r in responses)
    # Both paths spend one argon2 verification: no order-of-magnitude timing oracle.
    assert max(medians) / min(medians) < 4


async def test_missing_malformed_and_forged_tokens_are_rejected(
    sessions: SessionFactory, gql: GraphQLClient, settings: Settings
) -> None:
    await make_user(sessions, "agent1")
    token = await gql.login("agent1")
    assert (await gql(ME)).codes == ["UNAUTHENTICATED"]
    assert (await gql(ME, token="not-a-jwt")).codes == ["UNAUTHENTICATED"]
    header, payload, _signature = token.split(".")
    assert (await gql(ME, token=f"{header}.{payload}.AAAA")).codes == ["UNAUTHENTICATED"]
    claims = jwt.decode(token, options={"verify_signature": False})
    unsigned = jwt.encode(claims, key="", algorithm="none")
    assert (await gql(ME, token=unsigned)).codes == ["UNAUTHENTICATED"]
    other_key = jwt.encode(claims, "x" * 48, algorithm=ALGORITHM)
    assert (await gql(ME, token=other_key)).codes == ["UNAUTHENTICATED"]
    response = await gql.http.post(
        "/graphql", json={"query": ME}, headers={"Authorization": f"Basic {token}"}
    )
    assert response.json()["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"


async def test_expired_token_and_deleted_or_deactivated_user_are_rejected(
    sessions: SessionFactory, gql: GraphQLClient, settings: Settings
) -> None:
    await make_user(sessions, "agent1")
    token = await gql.login("agent1")
    claims = jwt.decode(token, options={"verify_signature": False})
    expired = issue_access_token(
        uuid.UUID(claims["sub"]),
        Role.AGENT,
        key=settings.signing_key,
        expires_in_s=60,
        now=datetime.now(UTC) - timedelta(hours=1),
    )
    result = await gql(ME, token=expired.token)
    assert result.codes == ["UNAUTHENTICATED"] and "expired" in result.errors[0]["message"]

    await _execute(settings, update(User).where(User.username == "agent1").values(is_active=False))
    assert (await gql(ME, token=token)).codes == ["UNAUTHENTICATED"]
    assert (await gql(LOGIN, {"u": "agent1", "p": PASSWORD})).codes == ["UNAUTHENTICATED"]

    await _execute(settings, delete(User).where(User.username == "agent1"))
    assert (await gql(ME, token=token)).codes == ["UNAUTHENTICATED"]


async def test_outdated_password_hash_is_upgraded_on_login(
    sessions: SessionFactory, gql: GraphQLClient, settings: Settings
) -> None:
    from argon2 import PasswordHasher
    from sqlalchemy import select

    from app.auth.passwords import needs_rehash

    weak = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
    assert needs_rehash(weak)
    await make_user(sessions, "agent1")
    await _execute(
        settings, update(User).where(User.username == "agent1").values(password_hash=weak)
    )
    await gql.login("agent1")
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_size=1)
    async with create_session_factory(engine)() as session:
        stored = (await session.execute(select(User.password_hash))).scalar_one()
    await engine.dispose()
    assert stored != weak and not needs_rehash(stored)
