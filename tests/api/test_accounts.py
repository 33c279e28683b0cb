"""Account administration (updateUser, resetPassword, changePassword) and revocation of earlier
tokens. Login throttling: tests/auth/test_throttle.py."""

from __future__ import annotations

from app.core.config import Settings
from app.db.engine import SessionFactory
from app.db.models import Role
from tests.api.helpers import GraphQLClient
from tests.factories import LOGIN, PASSWORD, make_user

ME = "{ me { id username fullName role isActive } }"
UPDATE = (
    "mutation($id: ID!, $input: UpdateUserInput!) { updateUser(id: $id, input: $input) "
    "{ id username fullName role isActive } }"
)
RESET = "mutation($id: ID!, $p: String!) { resetPassword(id: $id, newPassword: $p) { id } }"
CHANGE = (
    "mutation($c: String!, $n: String!) { changePassword(currentPassword: $c, newPassword: $n) "
    "{ accessToken tokenType expiresIn user { username } } }"
)
NEW_PASSWORD = "another-long-password"


async def _id_of(gql: GraphQLClient, token: str) -> str:
    me = await gql(ME, token=token)
    assert me.data is not None, me.errors
    user_id: str = me.data["me"]["id"]
    return user_id


async def test_admin_updates_a_user_and_deactivation_revokes_their_tokens(
    gql: GraphQLClient, admin_token: str, agent_token: str
) -> None:
    agent_id = await _id_of(gql, agent_token)
    renamed = await gql(
        UPDATE, {"id": agent_id, "input": {"fullName": "  Dilnoza R  "}}, token=admin_token
    )
    assert renamed.data is not None, renamed.errors
    assert renamed.data["updateUser"]["fullName"] == "Dilnoza R"
    assert renamed.data["updateUser"]["role"] == "AGENT"
    # A rename changes no credentials: the agent's token still works.
    assert not (await gql(ME, token=agent_token)).errors

    promoted = await gql(UPDATE, {"id": agent_id, "input": {"role": "ADMIN"}}, token=admin_token)
    assert promoted.data is not None and promoted.data["updateUser"]["role"] == "ADMIN"
    users = await gql("{ users { username } }", token=agent_token)
    assert not users.errors, "a promotion takes effect on the next request"

    deactivated = await gql(
        UPDATE, {"id": agent_id, "input": {"isActive": False}}, token=admin_token
    )
    assert deactivated.data is not None and deactivated.data["updateUser"]["isActive"] is False
    assert (await gql(ME, token=agent_token)).codes == ["UNAUTHENTICATED"]
    assert (await gql(LOGIN, {"u": "agent1", "p": PASSWORD})).codes == ["UNAUTHENTICATED"]

    # Reactivated, the old token stays dead (its version is behind); a new login works.
    await gql(UPDATE, {"id": agent_id, "input": {"isActive": True}}, token=admin_token)
    assert (await gql(ME, token=agent_token)).codes == ["UNAUTHENTICATED"]
    assert not (await gql(ME, token=await gql.login("agent1"))).errors


async def test_update_user_rules(
    sessions: SessionFactory,
    gql: GraphQLClient,
    admin_token: str,
    agent_token: str,
    settings: Settings,
) -> None:
    admin_id = await _id_of(gql, admin_token)
    agent_id = await _id_of(gql, agent_token)
    forbidden = await gql(UPDATE, {"id": admin_id, "input": {"isActive": False}}, token=agent_token)
    assert forbidden.codes == ["FORBIDDEN"]
    own = await gql(UPDATE, {"id": admin_id, "input": {"isActive": False}}, token=admin_token)
    assert own.codes == ["BAD_USER_INPUT"] and "yourself" in own.errors[0]["message"]
    demote = await gql(UPDATE, {"id": admin_id, "input": {"role": "AGENT"}}, token=admin_token)
    assert demote.codes == ["BAD_USER_INPUT"]
    long_name = await gql(
        UPDATE, {"id": agent_id, "input": {"fullName": "x" * 201}}, token=admin_token
    )
    assert long_name.codes == ["BAD_USER_INPUT"]
    missing = await gql(
        UPDATE,
        {"id": "VXNlcjowMDAwMDAwMC0wMDAwLTAwMDAtMDAwMC0wMDAwMDAwMDAwMDA=", "input": {}},
        token=admin_token,
    )
    assert missing.codes == ["NOT_FOUND"]

    # With a second active admin, the first may be deactivated by the second.
    await make_user(sessions, "admin2", Role.ADMIN)
    second = await gql.login("admin2")
    done = await gql(UPDATE, {"id": admin_id, "input": {"isActive": False}}, token=second)
    assert not done.errors, done.errors
    assert (await gql(ME, token=admin_token)).codes == ["UNAUTHENTICATED"]


async def test_reset_password_revokes_tokens_and_applies_the_policy(
    gql: GraphQLClient, admin_token: str, agent_token: str
) -> None:
    agent_id = await _id_of(gql, agent_token)
    assert (await gql(RESET, {"id": agent_id, "p": NEW_PASSWORD}, token=agent_token)).codes == [
        "FORBIDDEN"
    ]
    for weak in ("short", "agent1", "x" * 1025):
        refused = await gql(RESET, {"id": agent_id, "p": weak}, token=admin_token)
        assert refused.codes == ["BAD_USER_INPUT"], weak
    assert not (await gql(ME, token=agent_token)).errors, "a refused reset changes nothing"

    reset = await gql(RESET, {"id": agent_id, "p": NEW_PASSWORD}, token=admin_token)
    assert reset.data == {"resetPassword": {"id": agent_id}}, reset.errors
    assert (await gql(ME, token=agent_token)).codes == ["UNAUTHENTICATED"]
    assert (await gql(LOGIN, {"u": "agent1", "p": PASSWORD})).codes == ["UNAUTHENTICATED"]
    assert not (await gql(ME, token=await gql.login("agent1", NEW_PASSWORD))).errors


async def test_change_password_needs_the_current_one_and_returns_a_fresh_token(
    gql: GraphQLClient, agent_token: str
) -> None:
    wrong = await gql(CHANGE, {"c": "not-my-password", "n": NEW_PASSWORD}, token=agent_token)
    assert wrong.codes == ["UNAUTHENTICATED"]
    weak = await gql(CHANGE, {"c": PASSWORD, "n": "short"}, token=agent_token)
    assert weak.codes == ["BAD_USER_INPUT"]
    assert (await gql(CHANGE, {"c": PASSWORD, "n": NEW_PASSWORD})).codes == ["UNAUTHENTICATED"]

    changed = await gql(CHANGE, {"c": PASSWORD, "n": NEW_PASSWORD}, token=agent_token)
    assert changed.data is not None, changed.errors
    payload = changed.data["changePassword"]
    assert payload["tokenType"] == "Bearer" and payload["user"]["username"] == "agent1"
    assert (await gql(ME, token=agent_token)).codes == ["UNAUTHENTICATED"]
    assert not (await gql(ME, token=payload["accessToken"])).errors
    assert (await gql(LOGIN, {"u": "agent1", "p": PASSWORD})).codes == ["UNAUTHENTICATED"]
    await gql.login("agent1", NEW_PASSWORD)
