"""callStats: figures checked by hand against calls written by the worker's own code, every
grouping, an agent limited to their own calls, and one SQL statement per query."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import event

from app.api.resources import Resources
from app.core.enums import SpeakerRole
from app.services.categories import CategoryInput, create_category
from app.services.effects import unit_of_work
from tests.api.helpers import GraphQLClient
from tests.factories import CallSpec, Person, Turn, finished_call

FIGURES = """
  calls totalDurationSeconds meanDurationSeconds meanSentimentScore negativeShare
  meanAgentTalkRatio meanSilenceShare interruptionsPerCall meanScorecardScore
  topIntents { name count } topIssues { name count }
"""
STATS = (
    "query($groupBy: [CallStatsGroup!], $filter: CallFilter) { "
    "callStats(groupBy: $groupBy, filter: $filter) { "
    "agent { username } day week language sentiment category { name } " + FIGURES + "} }"
)
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TUESDAY = datetime(2026, 11, 24, 23, 30, tzinfo=UTC)
NEXT_MONDAY = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


def turns(text: str = "hello there") -> list[Turn]:
    return [Turn(SpeakerRole.AGENT, 0, 10, text), Turn(SpeakerRole.CUSTOMER, 10, 20, "ok")]


@pytest.fixture
async def calls(resources: Resources, dilnoza: Person, aziz: Person) -> None:
    async with unit_of_work(resources.sessions, resources.effect_targets) as session:
        await create_category(
            session,
            CategoryInput(
                "Cancellation",
                None,
                {"conditions": [{"type": "PHRASE", "phrases": ["cancel*"]}]},
            ),
        )
    specs = [
        (
            dilnoza,
            CallSpec(
                turns("I want to cancel"),
                language="en",
                sentiment_score=-0.6,
                intents=["cancellation", "billing"],
                issues=["late fee"],
                interruptions=2,
                silence_s=10.0,
                duration_s=100.0,
                agent_talk_ratio=0.6,
                created_at=MONDAY,
            ),
        ),
        (
            dilnoza,
            CallSpec(
                turns(),
                language="uz",
                sentiment_score=0.5,
                intents=["billing"],
                interruptions=0,
                silence_s=0.0,
                duration_s=50.0,
                agent_talk_ratio=0.4,
                created_at=TUESDAY,
            ),
        ),
        (
            dilnoza,
            CallSpec(
                turns("cancellation please"),
                language="en",
                sentiment_score=-0.3,
                intents=["cancellation"],
                issues=["late fee", "rude agent"],
                interruptions=4,
                silence_s=20.0,
                duration_s=200.0,
                agent_talk_ratio=0.5,
                created_at=NEXT_MONDAY,
            ),
        ),
        (
            aziz,
            CallSpec(
                turns(),
                language="en",
                sentiment_score=0.0,
                duration_s=30.0,
                agent_talk_ratio=0.7,
                created_at=TUESDAY,
            ),
        ),
    ]
    for owner, spec in specs:
        await finished_call(resources.sessions, resources.effect_targets, owner.id, spec)


async def stats(
    gql: GraphQLClient, token: str, group_by: list[str], **filters: Any
) -> list[dict[str, Any]]:
    result = await gql(STATS, {"groupBy": group_by, "filter": filters or None}, token=token)
    assert not result.errors, result.errors
    assert result.data is not None
    rows: list[dict[str, Any]] = result.data["callStats"]
    return rows


async def test_one_week_per_agent(gql: GraphQLClient, admin: Person, calls: None) -> None:
    rows = await stats(
        gql,
        admin.token,
        ["AGENT"],
        createdAfter="2026-11-23T00:00:00Z",
        createdBefore="2026-11-30T00:00:00Z",
    )
    by_agent = {row["agent"]["username"]: row for row in rows}
    assert set(by_agent) == {"dilnoza", "aziz"}
    dilnoza = by_agent["dilnoza"]
    assert dilnoza["calls"] == 2
    assert dilnoza["totalDurationSeconds"] == 150.0
    assert dilnoza["meanDurationSeconds"] == 75.0
    assert dilnoza["meanSentimentScore"] == pytest.approx(-0.05)
    assert dilnoza["negativeShare"] == 0.5
    assert dilnoza["meanAgentTalkRatio"] == pytest.approx(0.5)
    assert dilnoza["meanSilenceShare"] == pytest.approx(0.05)
    assert dilnoza["interruptionsPerCall"] == 1.0
    assert dilnoza["meanScorecardScore"] is None
    assert dilnoza["topIntents"] == [
        {"name": "billing", "count": 2},
        {"name": "cancellation", "count": 1},
    ]
    assert dilnoza["topIssues"] == [{"name": "late fee", "count": 1}]
    assert by_agent["aziz"]["calls"] == 1
    assert by_agent["aziz"]["topIntents"] == []


async def test_an_agent_sees_only_their_own_figures(
    gql: GraphQLClient, dilnoza: Person, aziz: Person, calls: None
) -> None:
    rows = await stats(gql, aziz.token, ["AGENT"])
    assert [(row["agent"]["username"], row["calls"]) for row in rows] == [("aziz", 1)]
    overall = await stats(gql, dilnoza.token, [])
    assert [row["calls"] for row in overall] == [3]


async def test_day_week_language_sentiment_and_category(
    gql: GraphQLClient, admin: Person, calls: None
) -> None:
    days = await stats(gql, admin.token, ["DAY"])
    assert [(r["day"], r["calls"]) for r in days] == [
        ("2026-11-23", 1),
        ("2026-11-24", 2),
        ("2026-11-30", 1),
    ]
    weeks = await stats(gql, admin.token, ["WEEK"])
    assert [(r["week"], r["calls"]) for r in weeks] == [("2026-11-23", 3), ("2026-11-30", 1)]
    mixed = await stats(gql, admin.token, ["LANGUAGE", "SENTIMENT"])
    pairs = sorted((r["language"], r["sentiment"], r["calls"]) for r in mixed)
    assert pairs == [("en", "NEGATIVE", 2), ("en", "NEUTRAL", 1), ("uz", "POSITIVE", 1)]
    categories = await stats(gql, admin.token, ["CATEGORY"])
    assert [(r["category"] and r["category"]["name"], r["calls"]) for r in categories] == [
        ("Cancellation", 2),
        (None, 2),
    ]
    nothing = await stats(gql, admin.token, ["AGENT"], createdAfter="2030-01-01T00:00:00Z")
    assert nothing == []


async def test_one_sql_statement_per_query(
    gql: GraphQLClient, admin: Person, resources: Resources, calls: None
) -> None:
    with statements(resources) as seen:
        result = await gql(
            "{ callStats(groupBy: [AGENT, WEEK, CATEGORY]) { calls topIntents { name } } }",
            token=admin.token,
        )
    assert not result.errors
    touching_calls = [s for s in seen if "calls" in s and "FROM users" not in s]
    assert len(touching_calls) == 1, touching_calls


async def test_bad_groupings_are_refused(gql: GraphQLClient, admin: Person) -> None:
    repeated = await gql("{ callStats(groupBy: [DAY, DAY]) { calls } }", token=admin.token)
    assert repeated.codes == ["BAD_USER_INPUT"]
    unknown = await gql("{ callStats(groupBy: [MONTH]) { calls } }", token=admin.token)
    assert unknown.codes == ["BAD_USER_INPUT"]
    anonymous = await gql("{ callStats { calls } }")
    assert anonymous.codes == ["UNAUTHENTICATED"]


@contextmanager
def statements(resources: Resources) -> Iterator[list[str]]:
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]))

    engine = resources.engine.sync_engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)
