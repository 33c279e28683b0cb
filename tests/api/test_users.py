from __future__ import annotations

from sqlalchemy import func, select

from app.core.config import Settings
from app.db.engine import create_engine, create_session_factory
from app.db.models import User
from tests.api.helpers import GraphQLClient

CREATE = (
    "mutation($input: CreateUserInput!) { createUser(input: $input) "
    "{ id username fullName role isActive } }"
)


async def _user_count(settings: Settings) -> int:
    assert settings.database_url is not None
    engine = create_engine(settings.database_url, pool_size=1)
    try:
        async with create_session_factory(engine)() as session:
            return (await session.execute(select(func.count()).select_from(User))).scalar_one()
    finally:
        await engine.dispose()


async def test_admin_creates_an_agent_who_can_log_in(gql: GraphQLClient, admin_token: str) -> None:
    result = await gql(
        CREATE,
        {"input": {"username": "Dilnoza", "password": "a-long-password", "fullName": "Dilnoza R"}},
        token=admin_token,
    )
    assert not result.errors, result.errors
    assert result.data is not None
    created = result.data["createUser"]
    assert created["username"] == "dilnoza" and created["role"] == "AGENT"
    assert created["isActive"] is True and created["fullName"] == "Dilnoza R"
    token = await gql.login("dilnoza", "a-long-password")
    node = await gql(
        "query($id: ID!) { node(id: $id) { id ... on User { username } } }",
        {"id": created["id"]},
        token=token,
    )
    assert node.data == {"node": {"id": created["id"], "username": "dilnoza"}}

    users = await gql("{ users { username role } }", token=admin_token)
    assert users.data is not None
    assert {u["username"] for u in users.data["users"]} == {"admin", "dilnoza"}


async def test_agents_cannot_list_or_create_users(
    gql: GraphQLClient, agent_token: str, settings: Settings
) -> None:
    assert (await gql("{ users { id } }", token=agent_token)).codes == ["FORBIDDEN"]
    result = await gql(
        CREATE,
        {"input": {"username": "x-user", "password": "a-long-password", "role": "ADMIN"}},
        token=agent_token,
    )
    assert result.codes == ["FORBIDDEN"]
    assert await _user_count(settings) == 1


async def test_bad_user_input_writes_nothing(
    gql: GraphQLClient, admin_token: str, settings: Settings
) -> None:
    cases = [
        {"username": "", "password": "a-long-password"},
        {"username": "ab", "password": "a-long-password"},
        {"username": "x" * 65, "password": "a-long-password"},
        {"username": "bad name", "password": "a-long-password"},
        {"username": "shorty", "password": "short"},
        {"username": "admin", "password": "a-long-password"},
        {"username": "ADMIN ", "password": "a-long-password"},
    ]
    for case in cases:
        result = await gql(CREATE, {"input": case}, token=admin_token)
        assert result.codes == ["BAD_USER_INPUT"], (case, result.errors)
        assert "Traceback" not in result.errors[0]["message"]
    assert await _user_count(settings) == 1


async def test_node_hides_other_users_from_agents(
    gql: GraphQLClient, admin_token: str, agent_token: str
) -> None:
    users = await gql("{ users { id username } }", token=admin_token)
    assert users.data is not None
    admin_id = next(u["id"] for u in users.data["users"] if u["username"] == "admin")
    hidden = await gql(
        "query($id: ID!) { node(id: $id) { id } }", {"id": admin_id}, token=agent_token
    )
    assert hidden.data == {"node": None}
    bad = await gql("query($id: ID!) { node(id: $id) { id } }", {"id": "%%%"}, token=agent_token)
    assert bad.codes == ["BAD_USER_INPUT"]
