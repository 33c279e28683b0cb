"""call / calls / node queries on calls whose results the worker's own writer stored:
nested fidelity, pagination, filters, result replacement, reprocess, delete, and a
statement count that proves nested lists are batched."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import event
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from app.core.enums import Sentiment
from app.core.ids import parse_global_id
from app.core.queue import QUEUE_NAME
from app.db.engine import SessionFactory
from app.schema.build import build_schema
from app.schema.context import Context
from app.schema.execution import SharingExecutor
from tests.api.helpers import (
    CALL,
    CALLS,
    CALLS_NESTED,
    NESTED,
    GraphQLClient,
    call_row,
    expected_analysis,
    expected_metrics,
    expected_segments,
    resources_of,
    result_row_counts,
    stored_files,
    success_call,
    upload_ok,
    user_id,
    write_results,
)
from tests.factories import make_user, rich_results, simple_results, tone_bytes

# --- nested fidelity ------------------------------------------------------------------------


async def test_nested_call_returns_saved_results_faithfully(
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    agent_token: str,
    audio_dir: Path,
) -> None:
    transcript, insight = rich_results()
    call = await success_call(app, http, agent_token, audio_dir, (transcript, insight))
    result = await gql(CALL, {"id": call["id"]}, token=agent_token)
    assert not result.errors, result.errors
    assert result.data is not None
    got = result.data["call"]
    assert got["status"] == "SUCCESS" and got["stage"] == "DONE" and got["progress"] == 1.0
    assert got["error"] is None and got["finishedAt"] is not None
    assert got["finishedAt"].endswith("+00:00") and got["createdAt"].endswith("+00:00")
    assert got["agent"]["username"] == "agent1" and got["agent"]["role"] == "AGENT"
    assert got["segments"] == expected_segments(insight)
    starts = [s["start"] for s in got["segments"]]
    assert starts == sorted(starts)
    assert got["metrics"] == expected_metrics(transcript, insight)
    assert got["analysis"] == expected_analysis(insight)

    # The same through node(id) and calls.
    node = await gql(
        f"query($id: ID!) {{ node(id: $id) {{ ... on Call {{ {NESTED} }} }} }}",
        {"id": call["id"]},
        token=agent_token,
    )
    assert node.data == {"node": got}, node.errors
    listed = await gql(CALLS_NESTED, {"first": 5}, token=agent_token)
    assert listed.data is not None, listed.errors
    assert [e["node"] for e in listed.data["calls"]["edges"]] == [got]


async def test_a_running_call_has_no_results_yet(
    http: httpx.AsyncClient, gql: GraphQLClient, agent_token: str, audio_dir: Path
) -> None:
    call = await upload_ok(http, tone_bytes(audio_dir), token=agent_token)
    result = await gql(CALL, {"id": call["id"]}, token=agent_token)
    assert result.data is not None, result.errors
    got = result.data["call"]
    assert (got["status"], got["stage"]) == ("RUNNING", "QUEUED")
    assert got["segments"] == [] and got["metrics"] is None and got["analysis"] is None


# --- results are replaced, never duplicated; reprocess; delete ------------------------------


async def test_results_are_replaced_not_duplicated(
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    agent_token: str,
    audio_dir: Path,
) -> None:
    transcript, insight = rich_results()
    call = await success_call(app, http, agent_token, audio_dir, (transcript, insight))
    row = await call_row(app, call["id"])
    assert row is not None
    first_counts = await result_row_counts(app, row.id)
    assert first_counts == {
        "segments": 3,
        "call_analyses": 1,
        "analysis_intents": 2,
        "analysis_entities": 2,
        "analysis_issues": 1,
        "analysis_actions": 2,
        "analysis_keypoints": 2,
        "call_metrics": 1,
        "call_speakers": 2,
    }

    # The same job delivering twice (a redelivered job) changes nothing.
    assert not await write_results(app, call["id"], transcript, insight)
    assert await result_row_counts(app, row.id) == first_counts

    # A re-run: reprocess, then the new job writes other results. They replace the old ones.
    reprocessed = await gql(
        "mutation($id: ID!) { reprocessCall(id: $id) { id status stage } }",
        {"id": call["id"]},
        token=agent_token,
    )
    assert reprocessed.data is not None, reprocessed.errors
    second = simple_results("a completely different conversation")
    assert await write_results(app, call["id"], *second)
    counts = await result_row_counts(app, row.id)
    assert sorted(counts.values()) == [1] * 9, counts
    got = await gql(CALL, {"id": call["id"]}, token=agent_token)
    assert got.data is not None, got.errors
    assert got.data["call"]["segments"] == expected_segments(second[1])
    assert got.data["call"]["analysis"] == expected_analysis(second[1])
    assert got.data["call"]["metrics"] == expected_metrics(*second)
    # Search sees the new transcript only.
    for word, hits in (("kredit", 0), ("different", 1)):
        found = await gql(CALLS, {"filter": {"search": word}}, token=agent_token)
        assert found.data is not None, found.errors
        assert found.data["calls"]["totalCount"] == hits, word


async def test_reprocess_puts_a_call_back_in_the_queue(
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    agent_token: str,
    audio_dir: Path,
) -> None:
    call = await success_call(app, http, agent_token, audio_dir, rich_results())
    before = await call_row(app, call["id"])
    assert before is not None and before.job_id is not None
    result = await gql(
        f"mutation($id: ID!) {{ reprocessCall(id: $id, minSpeakers: 2, maxSpeakers: 2) "
        f"{{ {NESTED} }} }}",
        {"id": call["id"]},
        token=agent_token,
    )
    assert result.data is not None, result.errors
    got = result.data["reprocessCall"]
    assert got["id"] == call["id"]
    assert (got["status"], got["stage"], got["progress"]) == ("RUNNING", "QUEUED", 0.0)
    assert got["error"] is None and got["finishedAt"] is None
    assert got["segments"] == [] and got["metrics"] is None and got["analysis"] is None
    after = await call_row(app, call["id"])
    assert after is not None and after.job_id is not None and after.job_id != before.job_id
    assert (after.min_speakers, after.max_speakers) == (2, 2)
    redis = resources_of(app).redis
    assert await redis.zscore(QUEUE_NAME, after.job_id) is not None
    # Invalid hints change nothing.
    bad = await gql(
        "mutation($id: ID!) { reprocessCall(id: $id, minSpeakers: 3, maxSpeakers: 1) { id } }",
        {"id": call["id"]},
        token=agent_token,
    )
    assert bad.codes == ["BAD_USER_INPUT"]
    unchanged = await call_row(app, call["id"])
    assert unchanged is not None and unchanged.job_id == after.job_id


async def test_delete_removes_the_call_its_results_and_its_audio(
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    agent_token: str,
    settings: Any,
    audio_dir: Path,
) -> None:
    keep = await success_call(app, http, agent_token, audio_dir, simple_results("keep this one"))
    files_before = stored_files(settings)
    call = await success_call(app, http, agent_token, audio_dir, rich_results())
    row = await call_row(app, call["id"])
    assert row is not None
    storage = resources_of(app).storage
    assert await storage.exists(row.storage_key)

    result = await gql(
        "mutation($id: ID!) { deleteCall(id: $id) }", {"id": call["id"]}, token=agent_token
    )
    assert result.data == {"deleteCall": call["id"]}, result.errors
    assert await call_row(app, call["id"]) is None
    assert set((await result_row_counts(app, row.id)).values()) == {0}
    assert not await storage.exists(row.storage_key)
    assert stored_files(settings) == files_before
    gone = await gql(CALL, {"id": call["id"]}, token=agent_token)
    assert gone.codes == ["NOT_FOUND"]
    again = await gql(
        "mutation($id: ID!) { deleteCall(id: $id) }", {"id": call["id"]}, token=agent_token
    )
    assert again.codes == ["NOT_FOUND"]
    # The other call is untouched.
    kept = await gql(CALL, {"id": keep["id"]}, token=agent_token)
    assert kept.data is not None and kept.data["call"]["analysis"]["summary"] == "keep this one"


# --- pagination -----------------------------------------------------------------------------


async def _page(gql: GraphQLClient, token: str, **variables: Any) -> dict[str, Any]:
    result = await gql(CALLS, variables, token=token)
    assert not result.errors, (variables, result.errors)
    assert result.data is not None
    page: dict[str, Any] = result.data["calls"]
    return page


def _ids(page: dict[str, Any]) -> list[str]:
    return [edge["node"]["id"] for edge in page["edges"]]


def _cursor_of(value: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


async def test_pagination_boundaries(
    http: httpx.AsyncClient, gql: GraphQLClient, agent_token: str, audio_dir: Path
) -> None:
    content = tone_bytes(audio_dir, seconds=0.5)
    uploaded = [(await upload_ok(http, content, token=agent_token))["id"] for _ in range(7)]
    newest_first = list(reversed(uploaded))

    everything = await _page(gql, agent_token)
    assert _ids(everything) == newest_first
    created = [edge["node"]["createdAt"] for edge in everything["edges"]]
    assert created == sorted(created, reverse=True)
    assert everything["totalCount"] == 7
    assert everything["pageInfo"]["hasNextPage"] is False
    assert everything["pageInfo"]["hasPreviousPage"] is False

    zero = await _page(gql, agent_token, first=0)
    assert zero["edges"] == [] and zero["totalCount"] == 7
    assert zero["pageInfo"]["startCursor"] is None and zero["pageInfo"]["endCursor"] is None

    one = await _page(gql, agent_token, first=1)
    assert _ids(one) == newest_first[:1]
    assert one["pageInfo"]["hasNextPage"] is True and one["pageInfo"]["hasPreviousPage"] is False
    assert one["pageInfo"]["startCursor"] == one["pageInfo"]["endCursor"]

    exact = await _page(gql, agent_token, first=7)
    assert _ids(exact) == newest_first and exact["pageInfo"]["hasNextPage"] is False

    # Walk forward in pages of 3: 3, 3, 1, then nothing past the end.
    walked: list[str] = []
    after: str | None = None
    sizes = []
    while True:
        page = await _page(gql, agent_token, first=3, after=after)
        sizes.append(len(page["edges"]))
        walked += _ids(page)
        assert page["totalCount"] == 7
        assert page["pageInfo"]["hasPreviousPage"] is (after is not None)
        assert [e["cursor"] for e in page["edges"]][-1:] == (
            [page["pageInfo"]["endCursor"]] if page["edges"] else []
        )
        if not page["pageInfo"]["hasNextPage"]:
            break
        after = page["pageInfo"]["endCursor"]
    assert sizes == [3, 3, 1] and walked == newest_first
    past_end = await _page(gql, agent_token, first=3, after=page["pageInfo"]["endCursor"])
    assert past_end["edges"] == [] and past_end["pageInfo"]["hasNextPage"] is False
    assert past_end["totalCount"] == 7

    # Backwards: last / before.
    oldest_two = await _page(gql, agent_token, last=2)
    assert _ids(oldest_two) == newest_first[-2:]
    assert oldest_two["pageInfo"]["hasPreviousPage"] is True
    assert oldest_two["pageInfo"]["hasNextPage"] is False
    cursors = [e["cursor"] for e in everything["edges"]]
    before_fourth = await _page(gql, agent_token, last=2, before=cursors[3])
    assert _ids(before_fourth) == newest_first[1:3]
    assert before_fourth["pageInfo"]["hasPreviousPage"] is True
    assert before_fourth["pageInfo"]["hasNextPage"] is True
    start = await _page(gql, agent_token, last=5, before=cursors[2])
    assert _ids(start) == newest_first[:2] and start["pageInfo"]["hasPreviousPage"] is False
    nothing_before = await _page(gql, agent_token, last=3, before=cursors[0])
    assert nothing_before["edges"] == []
    between = await _page(gql, agent_token, first=10, after=cursors[1], before=cursors[5])
    assert _ids(between) == newest_first[2:5]

    # Cursors are opaque: URL-safe, distinct, and no raw IDs or timestamps readable in them.
    raw_ids = [str(parse_global_id(call_id)[1]) for call_id in newest_first]
    for cursor, raw_id, stamp in zip(cursors, raw_ids, created, strict=True):
        assert all(c.isalnum() or c in "-_" for c in cursor), cursor
        assert raw_id not in cursor and stamp[:10] not in cursor
    assert len(set(cursors)) == 7

    max_ok = await _page(gql, agent_token, first=100)
    assert len(max_ok["edges"]) == 7
    invalid: list[dict[str, Any]] = [
        {"first": 101},
        {"first": -1},
        {"last": 101},
        {"first": 2, "last": 2},
        {"after": "not-a-cursor"},
        {"after": "eyJ4Ijp9"},  # base64 of broken JSON
        {"after": "WyJ4IiwgInkiXQ"},  # base64 of ["x", "y"]
        {"after": _cursor_of(["2024-01-01T00:00:00+00:00", 5])},  # a number for the ID
        {"after": _cursor_of(["2024-01-01T00:00:00+00:00", None])},
        {"after": _cursor_of({"created": 1})},
        {"before": "%%%"},
        {"after": ""},
    ]
    for variables in invalid:
        result = await gql(CALLS, variables, token=agent_token)
        assert result.codes == ["BAD_USER_INPUT"], (variables, result.errors)


# --- filters --------------------------------------------------------------------------------


async def test_filters_combine_with_and(
    sessions: SessionFactory,
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    admin_token: str,
    agent_token: str,
    settings: Any,
    audio_dir: Path,
) -> None:
    await make_user(sessions, "agent2")
    agent1 = await user_id(gql, agent_token)
    agent2 = await user_id(gql, await gql.login("agent2"))

    a1 = await success_call(
        app,
        http,
        agent_token,
        audio_dir,
        simple_results("kredit jarimasi juda katta", "uz", Sentiment.NEGATIVE),
    )
    a2 = await success_call(
        app,
        http,
        agent_token,
        audio_dir,
        simple_results("спасибо большое за помощь", "ru", Sentiment.POSITIVE),
    )
    a3 = await upload_ok(http, tone_bytes(audio_dir, seconds=0.5), token=agent_token)
    b1 = await success_call(
        app,
        http,
        admin_token,
        audio_dir,
        simple_results("I would like a refund please", "en", Sentiment.NEUTRAL),
        agentId=agent2,
    )
    created = {c["id"]: c["createdAt"] for c in (a1, a2, a3, b1)}
    assert sorted(created.values()) == [created[c["id"]] for c in (a1, a2, a3, b1)]

    async def ids(**filter_: Any) -> list[str]:
        page = await _page(gql, admin_token, filter=filter_)
        assert page["totalCount"] == len(page["edges"])
        return _ids(page)

    assert await ids() == [b1["id"], a3["id"], a2["id"], a1["id"]]
    assert await ids(status="SUCCESS") == [b1["id"], a2["id"], a1["id"]]
    assert await ids(status="RUNNING") == [a3["id"]]
    assert await ids(status="FAIL") == []
    assert await ids(agentId=agent1) == [a3["id"], a2["id"], a1["id"]]
    assert await ids(agentId=agent2) == [b1["id"]]
    assert await ids(language="uz") == [a1["id"]]
    assert await ids(language="RU") == [a2["id"]]
    assert await ids(language="de") == []
    assert await ids(sentiment="NEGATIVE") == [a1["id"]]
    assert await ids(sentiment="NEUTRAL") == [b1["id"]]
    assert await ids(search="refund") == [b1["id"]]
    assert await ids(search="Kredit") == [a1["id"]]
    assert await ids(search="помощь") == [a2["id"]]
    assert await ids(search="refund please") == [b1["id"]]
    assert await ids(search="refund kredit") == []
    assert await ids(search="nonexistentword") == []
    assert await ids(search="   ") == [b1["id"], a3["id"], a2["id"], a1["id"]]
    assert await ids(createdAfter=a2["createdAt"]) == [b1["id"], a3["id"], a2["id"]]
    assert await ids(createdBefore=a2["createdAt"]) == [a1["id"]]
    assert await ids(createdAfter=a2["createdAt"], createdBefore=b1["createdAt"]) == [
        a3["id"],
        a2["id"],
    ]
    assert await ids(createdAfter="2999-01-01T00:00:00+00:00") == []
    # Combined with AND.
    assert await ids(status="SUCCESS", agentId=agent1, sentiment="POSITIVE") == [a2["id"]]
    assert await ids(agentId=agent2, search="kredit") == []
    assert await ids(agentId=agent1, language="uz", search="jarimasi") == [a1["id"]]
    assert await ids(status="RUNNING", agentId=agent2) == []
    assert await ids(status="SUCCESS", createdAfter=a2["createdAt"]) == [b1["id"], a2["id"]]

    # The same filters seen by agent1 never include agent2's call.
    page = await _page(gql, agent_token, filter={"search": "refund"})
    assert page["edges"] == [] and page["totalCount"] == 0
    page = await _page(gql, agent_token, filter={"status": "SUCCESS"})
    assert _ids(page) == [a2["id"], a1["id"]]

    for bad in (
        {"search": "x" * 201},
        {"createdAfter": "yesterday"},
        {"status": "DONE"},
        {"sentiment": "ANGRY"},
        {"agentId": "%%%"},
    ):
        result = await gql(CALLS, {"filter": bad}, token=admin_token)
        assert result.codes == ["BAD_USER_INPUT"], (bad, result.errors)


async def test_nul_characters_in_text_filters_are_bad_user_input(
    http: httpx.AsyncClient, gql: GraphQLClient, agent_token: str, audio_dir: Path
) -> None:
    """PostgreSQL refuses NUL in text parameters; the API must say BAD_USER_INPUT, not leak an
    INTERNAL_SERVER_ERROR."""
    await upload_ok(http, tone_bytes(audio_dir), token=agent_token)
    for bad in ({"search": "refund\x00"}, {"language": "\x00"}):
        result = await gql(CALLS, {"filter": bad}, token=agent_token)
        assert result.codes == ["BAD_USER_INPUT"], (bad, result.errors)


# --- statement count ------------------------------------------------------------------------


@contextmanager
def counting_statements(app: FastAPI) -> Iterator[list[str]]:
    engine = resources_of(app).engine.sync_engine
    statements: list[str] = []

    def before_cursor_execute(
        conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool
    ) -> None:
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", before_cursor_execute)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", before_cursor_execute)


async def test_nested_page_issues_the_same_statements_whatever_its_size(
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    agent_token: str,
    audio_dir: Path,
) -> None:
    transcript, insight = rich_results()
    for _ in range(50):
        await success_call(app, http, agent_token, audio_dir, (transcript, insight))

    async def nested(first: int) -> list[str]:
        with counting_statements(app) as statements:
            result = await gql(CALLS_NESTED, {"first": first}, token=agent_token)
        assert not result.errors, result.errors
        assert result.data is not None
        edges = result.data["calls"]["edges"]
        assert len(edges) == first and result.data["calls"]["totalCount"] == 50
        for edge in edges:
            node = edge["node"]
            assert node["segments"] == expected_segments(insight)
            assert node["analysis"] == expected_analysis(insight)
            assert node["metrics"] == expected_metrics(transcript, insight)
        return list(statements)

    await nested(50)  # warm the pool and the dialect
    five = await nested(5)
    fifty = await nested(50)
    assert len(five) == len(fifty), (five, fifty)
    # viewer, count, page, then one batch each: agents, segments, metrics, speakers,
    # analysis and its five lists; and one insert auditing the transcripts read.
    assert len(fifty) == 14, fifty
    assert sum("INSERT INTO audit_events" in statement for statement in fifty) == 1


# --- big transcripts: words, wordTimings, and the fast execution path ------------------------

WORD_FIELDS = f"""query($id: ID!) {{ call(id: $id) {{ {NESTED}
  again: segments {{ __typename who: speaker wordTimings
                    words {{ __typename text start end confidence }} }} }} }}"""


async def test_words_and_word_timings_agree_and_match_graphql_core(
    app: FastAPI,
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    agent_token: str,
    audio_dir: Path,
) -> None:
    """`words` and `wordTimings` serve the stored words (Uzbek text, a null confidence)
    faithfully; and the API's response body, built by the plain-field executor and encoded
    by orjson, holds exactly what Strawberry's stock executor and the standard library's
    JSON give for the same document: key order, values and all."""
    transcript, insight = rich_results()
    call = await success_call(app, http, agent_token, audio_dir, (transcript, insight))
    variables = {"id": call["id"]}
    response = await http.post(
        "/graphql",
        json={"query": WORD_FIELDS, "variables": variables},
        headers={"Authorization": f"Bearer {agent_token}"},
    )
    body = response.json()
    assert "errors" not in body, body
    got = body["data"]["call"]
    assert got["segments"] == expected_segments(insight)
    for segment, turn in zip(got["again"], insight.segments, strict=True):
        assert segment["__typename"] == "Segment" and segment["who"] == turn.speaker
        assert segment["wordTimings"] == {
            "text": [w.text for w in turn.words],
            "start": [w.start_s for w in turn.words],
            "end": [w.end_s for w in turn.words],
            "confidence": [w.confidence for w in turn.words],
        }
        assert segment["words"] == [
            {
                "__typename": "Word",
                "text": w.text,
                "start": w.start_s,
                "end": w.end_s,
                "confidence": w.confidence,
            }
            for w in turn.words
        ]
    assert any(w.confidence is None for s in insight.segments for w in s.words)

    # The same document through Strawberry's own executor, in this process.
    stock = build_schema(resources_of(app).settings)
    assert stock.execution_context_class is SharingExecutor
    stock.execution_context_class = StrawberryGraphQLCoreExecutionContext
    context = Context(resources_of(app), f"Bearer {agent_token}")
    expected = await stock.execute(WORD_FIELDS, variable_values=variables, context_value=context)
    assert not expected.errors, expected.errors
    assert (
        response.content
        == json.dumps({"data": expected.data}, ensure_ascii=False, separators=(",", ":")).encode()
    )
