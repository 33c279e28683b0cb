"""Categories and scorecards through the API: ADMIN-only CRUD, rules validated with the
field named and nothing half-saved, each finished call tagged and scored with evidence,
CallFilter.category, and Analysis.sentimentTrend."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import delete, func, select, update

from app.api.resources import Resources
from app.core.enums import SpeakerRole
from app.core.ids import parse_typed_id, to_global_id
from app.db.models import CallCategory as CallCategoryModel
from app.db.models import CallScorecard as CallScorecardModel
from app.db.models import Category, RuleEvaluation, Scorecard, WebhookEndpoint
from app.services import rules as rule_service
from app.services.effects import unit_of_work
from tests.api.helpers import GraphQLClient
from tests.factories import (
    CallSpec,
    Person,
    Turn,
    finished_call,
    wait_until_a_query_waits_for_a_lock,
)

CREATE_CATEGORY = """
mutation($input: CategoryInput!) {
  createCategory(input: $input) {
    category { id name rule }
    evaluation { id status total processed progress }
  }
}"""
UPDATE_CATEGORY = """
mutation($id: ID!, $input: CategoryInput!) {
  updateCategory(id: $id, input: $input) { category { name } evaluation { status } }
}"""
CREATE_SCORECARD = """
mutation($input: ScorecardInput!) {
  createScorecard(input: $input) { scorecard { id name items { name weight shouldMatch } } }
}"""
CALL_DESK = """
query($id: ID!) {
  call(id: $id) {
    categories { category { name } evidence { condition segmentIndex text } }
    scorecard { score scorecard { name } items { name passed evidence { segmentIndex text } } }
    analysis { sentimentTrend { role quarter score sentiment turns } }
  }
}"""

CANCELLATION = {
    "name": "Customer wants to cancel",
    "rule": {
        "conditions": [{"type": "PHRASE", "phrases": ["bekor qil*", "cancel*"], "role": "CUSTOMER"}]
    },
}
QA_ITEMS = [
    {
        "name": "Greeting",
        "weight": 2,
        "rule": {"conditions": [{"type": "PHRASE", "phrases": ["assalomu alaykum"]}]},
    },
    {
        "name": "No interruptions",
        "shouldMatch": False,
        "rule": {"conditions": [{"type": "INTERRUPTIONS", "above": 2}]},
    },
]


def an_upset_call() -> CallSpec:
    return CallSpec(
        [
            Turn(SpeakerRole.AGENT, 0, 5, "Ассалому алайкум, Ovozly bank", 0.3),
            Turn(SpeakerRole.CUSTOMER, 5, 15, "Men obunani bekor qilmoqchiman!", -0.7),
            Turn(SpeakerRole.AGENT, 20, 25, "Tushunarli", 0.0),
            Turn(SpeakerRole.CUSTOMER, 31, 40, "Rahmat, yaxshi", 0.5),
        ],
        language="uz",
        interruptions=3,
        duration_s=40.0,
    )


async def ok(gql: GraphQLClient, query: str, variables: dict[str, Any], token: str) -> Any:
    result = await gql(query, variables, token=token)
    assert not result.errors, result.errors
    return result.data


async def count(resources: Resources, model: Any) -> int:
    async with resources.sessions() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_finished_calls_are_tagged_and_scored_with_evidence(
    gql: GraphQLClient, resources: Resources, admin: Person, dilnoza: Person
) -> None:
    created = await ok(gql, CREATE_CATEGORY, {"input": CANCELLATION}, admin.token)
    payload = created["createCategory"]
    assert payload["evaluation"]["status"] == "RUNNING"
    assert payload["evaluation"]["total"] == 0
    assert payload["category"]["rule"]["conditions"][0]["role"] == "CUSTOMER"
    await ok(gql, CREATE_SCORECARD, {"input": {"name": "QA", "items": QA_ITEMS}}, admin.token)

    call = await finished_call(
        resources.sessions, resources.effect_targets, dilnoza.id, an_upset_call()
    )
    quiet = await finished_call(
        resources.sessions,
        resources.effect_targets,
        dilnoza.id,
        CallSpec([Turn(SpeakerRole.CUSTOMER, 0, 2, "hello")]),
    )
    data = await ok(gql, CALL_DESK, {"id": to_global_id("Call", call.id)}, dilnoza.token)
    desk = data["call"]
    assert desk["categories"] == [
        {
            "category": {"name": "Customer wants to cancel"},
            "evidence": [{"condition": 0, "segmentIndex": 1, "text": "bekor qilmoqchiman"}],
        }
    ]
    scorecard = desk["scorecard"]
    assert scorecard["scorecard"]["name"] == "QA"
    assert scorecard["score"] == round(2 / 3, 4)
    assert scorecard["items"] == [
        {
            "name": "Greeting",
            "passed": True,
            "evidence": [{"segmentIndex": 0, "text": "Ассалому алайкум"}],
        },
        {
            "name": "No interruptions",
            "passed": False,
            "evidence": [{"segmentIndex": None, "text": "3 interruptions"}],
        },
    ]
    assert desk["analysis"]["sentimentTrend"] == [
        {"role": "AGENT", "quarter": 1, "score": 0.3, "sentiment": "POSITIVE", "turns": 1},
        {"role": "AGENT", "quarter": 3, "score": 0.0, "sentiment": "NEUTRAL", "turns": 1},
        {"role": "CUSTOMER", "quarter": 2, "score": -0.7, "sentiment": "NEGATIVE", "turns": 1},
        {"role": "CUSTOMER", "quarter": 4, "score": 0.5, "sentiment": "POSITIVE", "turns": 1},
    ]

    category_id = payload["category"]["id"]
    listed = await ok(
        gql,
        "query($c: ID!) { calls(filter: {category: $c}) { totalCount edges { node { id } } } }",
        {"c": category_id},
        dilnoza.token,
    )
    assert listed["calls"]["totalCount"] == 1
    assert listed["calls"]["edges"][0]["node"]["id"] == to_global_id("Call", call.id)
    quiet_desk = await ok(gql, CALL_DESK, {"id": to_global_id("Call", quiet.id)}, dilnoza.token)
    assert quiet_desk["call"]["categories"] == []


async def test_updates_start_an_evaluation_and_deletes_remove_tags(
    gql: GraphQLClient, resources: Resources, admin: Person, dilnoza: Person
) -> None:
    created = await ok(gql, CREATE_CATEGORY, {"input": CANCELLATION}, admin.token)
    category_id = created["createCategory"]["category"]["id"]
    await finished_call(resources.sessions, resources.effect_targets, dilnoza.id, an_upset_call())
    renamed = {**CANCELLATION, "name": "Churn risk"}
    updated = await ok(gql, UPDATE_CATEGORY, {"id": category_id, "input": renamed}, admin.token)
    assert updated["updateCategory"]["category"]["name"] == "Churn risk"
    assert updated["updateCategory"]["evaluation"]["status"] == "RUNNING"
    async with resources.sessions() as session:
        statuses = sorted(
            s.value for s in (await session.execute(select(RuleEvaluation.status))).scalars()
        )
    assert statuses == ["RUNNING", "SUPERSEDED"]  # the newer run covers the older one's work

    deleted = await gql(
        "mutation($id: ID!) { deleteCategory(id: $id) }", {"id": category_id}, token=admin.token
    )
    assert deleted.data == {"deleteCategory": category_id}
    assert await count(resources, Category) == 0
    again = await gql(
        "mutation($id: ID!) { deleteCategory(id: $id) }", {"id": category_id}, token=admin.token
    )
    assert again.codes == ["NOT_FOUND"]


async def test_bad_rules_name_the_field_and_save_nothing(
    gql: GraphQLClient, resources: Resources, admin: Person
) -> None:
    cases = {
        "input.rule.conditions[0].phrases: ": {
            "conditions": [{"type": "PHRASE", "phrases": ["(a|b)+"]}]
        },
        "rule.conditions[0].speaker: Extra inputs": {
            "conditions": [{"type": "PHRASE", "phrases": ["x"], "speaker": "AGENT"}]
        },
        "rule.conditions: List should have at least 1 item": {"conditions": []},
        "no call can match": {
            "conditions": [
                {"type": "SENTIMENT", "sentiment": "NEGATIVE", "quarter": 4},
                {"type": "SENTIMENT", "sentiment": "POSITIVE", "quarter": 4},
            ]
        },
    }
    for expected, rule in cases.items():
        result = await gql(
            CREATE_CATEGORY, {"input": {"name": "X", "rule": rule}}, token=admin.token
        )
        assert result.codes == ["BAD_USER_INPUT"], expected
        assert expected.removeprefix("input.") in result.errors[0]["message"], result.errors
    bad_items = await gql(
        CREATE_SCORECARD,
        {
            "input": {
                "name": "QA",
                "items": [
                    {
                        "name": "a",
                        "weight": -1,
                        "rule": {"conditions": [{"type": "INTENT", "intent": "x"}]},
                    }
                ],
            }
        },
        token=admin.token,
    )
    assert bad_items.codes == ["BAD_USER_INPUT"]
    assert bad_items.errors[0]["message"].startswith("items[0].weight")
    await ok(gql, CREATE_CATEGORY, {"input": CANCELLATION}, admin.token)
    duplicate = await gql(CREATE_CATEGORY, {"input": CANCELLATION}, token=admin.token)
    assert duplicate.codes == ["BAD_USER_INPUT"]
    assert await count(resources, Category) == 1
    assert await count(resources, Scorecard) == 0
    assert await count(resources, RuleEvaluation) == 1


async def test_only_admins_change_rules(gql: GraphQLClient, dilnoza: Person, admin: Person) -> None:
    denied = await gql(CREATE_CATEGORY, {"input": CANCELLATION}, token=dilnoza.token)
    assert denied.codes == ["FORBIDDEN"]
    denied_card = await gql(
        CREATE_SCORECARD, {"input": {"name": "QA", "items": QA_ITEMS}}, token=dilnoza.token
    )
    assert denied_card.codes == ["FORBIDDEN"]
    await ok(gql, CREATE_CATEGORY, {"input": CANCELLATION}, admin.token)
    visible = await ok(gql, "{ categories { name } scorecards { name } }", {}, dilnoza.token)
    assert visible == {"categories": [{"name": "Customer wants to cancel"}], "scorecards": []}


async def test_a_category_deleted_while_a_call_is_evaluated_does_not_fail_the_call(
    gql: GraphQLClient, resources: Resources, admin: Person, dilnoza: Person
) -> None:
    """The finishing call's transaction reads the rules, then writes tags naming them; a
    delete committed in between must not break the foreign key and fail the whole call."""
    await ok(gql, CREATE_CATEGORY, {"input": CANCELLATION}, admin.token)
    await ok(gql, CREATE_SCORECARD, {"input": {"name": "QA", "items": QA_ITEMS}}, admin.token)
    call = await finished_call(
        resources.sessions, resources.effect_targets, dilnoza.id, an_upset_call()
    )

    async def delete_the_rules() -> None:
        async with resources.sessions() as other, other.begin():
            await other.execute(delete(Category))
            await other.execute(delete(Scorecard))

    async with resources.sessions() as session, session.begin():
        rules = await rule_service.current_rules(session)
        deleting = asyncio.create_task(delete_the_rules())
        await wait_until_a_query_waits_for_a_lock(resources.sessions)  # the delete is held
        assert await rule_service.evaluate_calls(session, [call.id], rules) == 1
    await asyncio.wait_for(deleting, timeout=10)
    # The delete went through once the evaluation committed, and took the tags with it.
    assert await count(resources, Category) == 0
    assert await count(resources, CallCategoryModel) == 0
    assert await count(resources, CallScorecardModel) == 0


async def test_nul_characters_are_refused_naming_the_field(
    gql: GraphQLClient, resources: Resources, admin: Person
) -> None:
    """PostgreSQL stores no U+0000 in text or JSONB: such input must be refused before the
    INSERT, never come back as INTERNAL_SERVER_ERROR."""
    intent = {"conditions": [{"type": "INTENT", "intent": "cancel\x00lation"}]}
    bad_rule = await gql(
        CREATE_CATEGORY, {"input": {"name": "X", "rule": intent}}, token=admin.token
    )
    assert bad_rule.codes == ["BAD_USER_INPUT"]
    assert "rule.conditions[0].intent" in bad_rule.errors[0]["message"]
    item = {"name": "Greet\x00ing", "rule": {"conditions": [{"type": "INTENT", "intent": "x"}]}}
    bad_item = await gql(
        CREATE_SCORECARD, {"input": {"name": "QA", "items": [item]}}, token=admin.token
    )
    assert bad_item.codes == ["BAD_USER_INPUT"]
    assert "items[0].name" in bad_item.errors[0]["message"]
    bad_hook = await gql(
        "mutation($i: WebhookEndpointInput!) { createWebhookEndpoint(input: $i) { secret } }",
        {"i": {"url": "https://crm.example/h", "events": ["CALL_FAILED"], "description": "\x00"}},
        token=admin.token,
    )
    assert bad_hook.codes == ["BAD_USER_INPUT"]
    assert "description" in bad_hook.errors[0]["message"]
    assert await count(resources, Category) == 0
    assert await count(resources, Scorecard) == 0
    assert await count(resources, WebhookEndpoint) == 0
    assert await count(resources, RuleEvaluation) == 0


async def test_an_edit_during_an_evaluation_batch_does_not_deadlock(
    gql: GraphQLClient, resources: Resources, admin: Person, dilnoza: Person
) -> None:
    """A batch held its run, then asked for the rules; an edit held its category, then
    superseded the run: each waited for the other. The batch now takes the rules first."""
    created = await ok(gql, CREATE_CATEGORY, {"input": CANCELLATION}, admin.token)
    run_id = parse_typed_id(created["createCategory"]["evaluation"]["id"], "RuleEvaluation")
    await finished_call(resources.sessions, resources.effect_targets, dilnoza.id, an_upset_call())
    async with unit_of_work(resources.sessions, resources.effect_targets) as edit:
        await edit.execute(update(Category).values(name="Churn risk"))  # holds the row

        async def batch() -> rule_service.BatchResult:
            async with resources.sessions() as session, session.begin():
                return await rule_service.evaluate_batch(session, run_id, None)

        running = asyncio.create_task(batch())
        await wait_until_a_query_waits_for_a_lock(resources.sessions)  # the batch waits
        await rule_service.start_evaluation(edit, "category renamed")
    result = await asyncio.wait_for(running, timeout=10)
    assert result.run is None  # superseded by the edit's run: it stops
