"""The desk's worker jobs against real PostgreSQL and Redis with a burst-mode arq worker:
re-evaluation after a rule change, signed webhook deliveries to a real loopback receiver
with bounded retries and timeouts, and the whole flow from a real upload."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from app.api.resources import Resources
from app.core.config import Settings
from app.core.enums import SpeakerRole
from app.core.errors import BadUserInput
from app.core.ids import to_global_id
from app.db.models import (
    DeliveryStatus,
    Role,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from app.services.webhooks import (
    EndpointInput,
    TargetRefused,
    check_target,
    create_endpoint,
    standard_webhooks_secret,
    validate_url,
    verify_signature,
)
from app.workers.processor import CallProcessor
from tests.api.helpers import GraphQLClient, upload
from tests.factories import CallSpec, Turn, finished_call, make_user
from tests.workers.helpers import run_worker_burst
from tests.workers.receiver import loopback_receiver

SECRET = "whsec_test_secret_0123456789"

pytestmark = pytest.mark.usefixtures("clean_database")


def quick(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(
        update={
            "webhook_backoff_base_s": 0.05,
            "webhook_backoff_max_s": 0.2,
            "webhook_max_attempts": 3,
            "webhook_timeout_s": 2.0,
            **changes,
        }
    )


async def endpoint(
    resources: Resources, url: str, events: list[WebhookEvent] | None = None
) -> uuid.UUID:
    async with resources.sessions() as session, session.begin():
        created, _ = await create_endpoint(
            session,
            EndpointInput(url, events or [WebhookEvent.CALL_SUCCEEDED], SECRET),
            allow_private=True,
        )
    return created.id


async def deliveries(
    resources: Resources,
) -> dict[uuid.UUID, tuple[WebhookDelivery, list[int | None]]]:
    async with resources.sessions() as session:
        rows = (await session.execute(select(WebhookDelivery))).scalars().all()
        attempts = (
            (await session.execute(select(WebhookAttempt).order_by(WebhookAttempt.number)))
            .scalars()
            .all()
        )
    return {
        row.endpoint_id: (row, [a.status_code for a in attempts if a.delivery_id == row.id])
        for row in rows
    }


async def test_rule_change_reevaluates_existing_calls(
    gql: GraphQLClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
) -> None:
    agent = (await make_user(resources.sessions, "dilnoza")).id
    for text in ("I want to cancel my plan", "thanks, all good", "please cancel it"):
        await finished_call(
            resources.sessions,
            resources.effect_targets,
            agent,
            CallSpec([Turn(SpeakerRole.CUSTOMER, 0, 3, text)]),
        )
    await make_user(resources.sessions, "boss", Role.ADMIN)
    admin = await gql.login("boss")
    created = await gql(
        "mutation($i: CategoryInput!) { createCategory(input: $i) "
        "{ category { id } evaluation { id status total } } }",
        {
            "i": {
                "name": "Cancel",
                "rule": {"conditions": [{"type": "PHRASE", "phrases": ["cancel"]}]},
            }
        },
        token=admin,
    )
    assert not created.errors, created.errors
    assert created.data is not None
    payload = created.data["createCategory"]
    assert payload["evaluation"]["total"] == 3

    await run_worker_burst(settings, processor)

    run = await gql(
        "query($id: ID!) { ruleEvaluation(id: $id) { status processed total progress } }",
        {"id": payload["evaluation"]["id"]},
        token=admin,
    )
    assert run.data == {
        "ruleEvaluation": {"status": "SUCCESS", "processed": 3, "total": 3, "progress": 1.0}
    }
    tagged = await gql(
        "query($c: ID!) { calls(filter: {category: $c}) { totalCount "
        "edges { node { categories { evidence { text } } } } } }",
        {"c": payload["category"]["id"]},
        token=admin,
    )
    assert tagged.data is not None
    assert tagged.data["calls"]["totalCount"] == 2
    texts = sorted(
        e["text"]
        for edge in tagged.data["calls"]["edges"]
        for c in edge["node"]["categories"]
        for e in c["evidence"]
    )
    assert texts == ["cancel", "cancel"]


async def test_signed_deliveries_retry_with_backoff_and_stop(
    gql: GraphQLClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
) -> None:
    with loopback_receiver() as receiver:
        receiver.answers = {"/flaky": [500, 503, 200], "/broken": [400], "/down": [502]}
        flaky = await endpoint(resources, receiver.url + "/flaky")
        broken = await endpoint(resources, receiver.url + "/broken")
        down = await endpoint(resources, receiver.url + "/down")
        failures_only = await endpoint(
            resources, receiver.url + "/failures", [WebhookEvent.CALL_FAILED]
        )
        agent = (await make_user(resources.sessions, "dilnoza")).id
        call = await finished_call(
            resources.sessions,
            resources.effect_targets,
            agent,
            CallSpec([Turn(SpeakerRole.AGENT, 0, 1, "hi")]),
        )
        # Recorded with the call's end and enqueued after its commit; not for the endpoint
        # that only wants failures.
        assert len(await deliveries(resources)) == 3
        started = time.monotonic()
        await run_worker_burst(quick(settings), processor)
        assert time.monotonic() - started < 30

    logged = await deliveries(resources)
    assert failures_only not in logged
    assert logged[flaky][0].status is DeliveryStatus.SUCCEEDED
    assert logged[flaky][1] == [500, 503, 200]
    assert logged[broken][0].status is DeliveryStatus.FAILED
    assert logged[broken][1] == [400]  # a 4xx other than 408/429 is not retried
    assert logged[down][0].status is DeliveryStatus.FAILED
    assert logged[down][1] == [502, 502, 502]  # bounded by WEBHOOK_MAX_ATTEMPTS

    flaky_requests = receiver.at("/flaky")
    assert len(flaky_requests) == 3
    bodies = {r.body for r in flaky_requests}
    assert len(bodies) == 1  # every attempt sends the same signed bytes
    for request in flaky_requests:
        assert verify_signature(SECRET, request.headers["ovozly-signature"], request.body)
        # The same request verifies with the Standard Webhooks library, as a receiver would.
        standard = Webhook(standard_webhooks_secret(SECRET))
        assert standard.verify(request.body, dict(request.headers))["type"] == "CALL_SUCCEEDED"
        assert not verify_signature(
            "another-secret-123456", request.headers["ovozly-signature"], request.body
        )
        assert request.headers["ovozly-event"] == "CALL_SUCCEEDED"
    body = json.loads(flaky_requests[0].body)
    assert body["type"] == "CALL_SUCCEEDED"
    assert body["data"]["call"]["id"] == to_global_id("Call", call.id)
    assert body["data"]["call"]["status"] == "SUCCESS"

    await make_user(resources.sessions, "boss", Role.ADMIN)
    admin = await gql.login("boss")
    listed = await gql(
        "query($e: ID!) { webhookDeliveries(endpointId: $e) { edges { node { status event "
        "attempts { number statusCode error durationMs } } } } }",
        {"e": to_global_id("WebhookEndpoint", flaky)},
        token=admin,
    )
    assert listed.data is not None
    [edge] = listed.data["webhookDeliveries"]["edges"]
    assert edge["node"]["status"] == "SUCCEEDED"
    assert [a["statusCode"] for a in edge["node"]["attempts"]] == [500, 503, 200]


async def test_a_receiver_that_never_answers_costs_bounded_time(
    settings: Settings, resources: Resources, processor: CallProcessor
) -> None:
    with loopback_receiver() as receiver:
        receiver.hang_s = 3.0
        silent = await endpoint(resources, receiver.url + "/silent")
        agent = (await make_user(resources.sessions, "dilnoza")).id
        await finished_call(
            resources.sessions,
            resources.effect_targets,
            agent,
            CallSpec([Turn(SpeakerRole.AGENT, 0, 1, "hi")]),
        )
        started = time.monotonic()
        await run_worker_burst(
            quick(settings, webhook_timeout_s=0.3, webhook_max_attempts=2), processor
        )
        elapsed = time.monotonic() - started
    delivery, codes = (await deliveries(resources))[silent]
    assert delivery.status is DeliveryStatus.FAILED
    assert codes == [None, None]
    async with resources.sessions() as session:
        errors = (await session.execute(select(WebhookAttempt.error))).scalars().all()
    assert errors == ["timed out", "timed out"]
    assert elapsed < 15


async def test_urls_are_checked_on_registration_and_at_send_time(
    gql: GraphQLClient, resources: Resources
) -> None:
    for url, message in [
        ("ftp://example.com/hook", "only http and https"),
        ("javascript:alert(1)", "only http and https"),
        ("https://user:pw@example.com/", "credentials"),
        ("https:///nohost", "no host"),
        ("http://127.0.0.1:8080/hook", "private and loopback"),
        ("http://[::1]/hook", "private and loopback"),
        ("http://10.1.2.3/hook", "private and loopback"),
        ("http://169.254.169.254/latest/meta-data", "private and loopback"),
        ("http://localhost/hook", "private and loopback"),
    ]:
        with pytest.raises(BadUserInput, match=message):
            validate_url(url, allow_private=False)
    assert validate_url("http://127.0.0.1:8080/hook", allow_private=True)
    assert validate_url(" https://crm.example.com/hooks/ovozly ", allow_private=False) == (
        "https://crm.example.com/hooks/ovozly"
    )
    # A host name that resolves to loopback is refused when sending.
    with pytest.raises(TargetRefused):
        await check_target("http://localhost:9/hook", allow_private=False)

    await make_user(resources.sessions, "boss", Role.ADMIN)
    await make_user(resources.sessions, "agent9", Role.AGENT)
    admin = await gql.login("boss")
    create = (
        "mutation($i: WebhookEndpointInput!) { createWebhookEndpoint(input: $i) "
        "{ secret endpoint { id url events isActive } } }"
    )
    refused = await gql(
        create, {"i": {"url": "ftp://x.example", "events": ["CALL_FAILED"]}}, token=admin
    )
    assert refused.codes == ["BAD_USER_INPUT"]
    no_events = await gql(create, {"i": {"url": "https://x.example", "events": []}}, token=admin)
    assert no_events.codes == ["BAD_USER_INPUT"]
    agent = await gql.login("agent9")
    forbidden = await gql(
        create, {"i": {"url": "https://x.example", "events": ["CALL_FAILED"]}}, token=agent
    )
    assert forbidden.codes == ["FORBIDDEN"]
    created = await gql(
        create,
        {"i": {"url": "https://x.example/h", "events": ["CALL_FAILED", "CALL_SUCCEEDED"]}},
        token=admin,
    )
    assert created.data is not None
    payload = created.data["createWebhookEndpoint"]
    assert payload["secret"].startswith("whsec_")
    listed = await gql("{ webhookEndpoints { id url events } }", token=admin)
    assert listed.data == {
        "webhookEndpoints": [
            {
                "id": payload["endpoint"]["id"],
                "url": "https://x.example/h",
                "events": ["CALL_FAILED", "CALL_SUCCEEDED"],
            }
        ]
    }
    assert "secret" not in json.dumps(listed.data)


@pytest.mark.slow
async def test_supervisor_flow_from_a_real_upload(
    http: httpx.AsyncClient,
    gql: GraphQLClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    test_audio_dir: Path,
) -> None:
    """Play the call, see its categories, scorecard and sentiment
    trend, get the week's stats per agent, and a loopback receiver gets a signed webhook."""
    await make_user(resources.sessions, "boss", Role.ADMIN)
    await make_user(resources.sessions, "dilnoza", Role.AGENT)
    admin = await gql.login("boss")
    agent = await gql.login("dilnoza")
    setup = await gql(
        """mutation($c: CategoryInput!, $s: ScorecardInput!) {
             createCategory(input: $c) { category { id } }
             createScorecard(input: $s) { scorecard { id } } }""",
        {
            "c": {
                "name": "Patriotism",
                "rule": {"conditions": [{"type": "PHRASE", "phrases": ["your countr*"]}]},
            },
            "s": {
                "name": "QA",
                "items": [
                    {
                        "name": "Mentions the country",
                        "rule": {"conditions": [{"type": "PHRASE", "phrases": ["country"]}]},
                    },
                    {
                        "name": "No long silence",
                        "shouldMatch": False,
                        "rule": {"conditions": [{"type": "SILENCE", "longerThanSeconds": 30}]},
                    },
                ],
            },
        },
        token=admin,
    )
    assert not setup.errors, setup.errors
    with loopback_receiver() as receiver:
        await gql(
            "mutation($i: WebhookEndpointInput!) { createWebhookEndpoint(input: $i) { secret } }",
            {
                "i": {
                    "url": receiver.url + "/crm",
                    "events": ["CALL_SUCCEEDED", "CALL_FAILED"],
                    "secret": SECRET,
                }
            },
            token=admin,
        )
        audio = (test_audio_dir / "openai_whisper_jfk.flac").read_bytes()
        status, uploaded = await upload(
            http, audio, "jfk.flac", token=agent, content_type="audio/flac"
        )
        assert status == 200, uploaded.errors
        assert uploaded.data is not None
        call_id = uploaded.data["uploadCall"]["id"]
        await run_worker_burst(quick(settings), processor)

    result = await gql(
        """query($id: ID!) { call(id: $id) {
             status audioUrl audioUrlExpiresAt
             categories { category { name } evidence { segmentIndex text } }
             scorecard { score items { name passed evidence { text } } }
             analysis { sentimentTrend { role quarter score sentiment turns } } } }""",
        {"id": call_id},
        token=agent,
    )
    assert not result.errors, result.errors
    assert result.data is not None
    call = result.data["call"]
    assert call["status"] == "SUCCESS"
    assert [c["category"]["name"] for c in call["categories"]] == ["Patriotism"]
    assert "country" in call["categories"][0]["evidence"][0]["text"].lower()
    assert call["scorecard"]["score"] == 1.0
    assert call["analysis"]["sentimentTrend"], "the speech has scored turns"

    # The agent hears the redacted copy (lossless FLAC written by the worker).
    played = await http.get(
        call["audioUrl"].removeprefix("http://testserver"), headers={"Range": "bytes=0-99"}
    )
    assert played.status_code == 206
    assert played.content[:4] == b"fLaC"
    assert played.headers["content-type"] == "audio/flac"

    stats = await gql(
        "{ callStats(groupBy: [AGENT, WEEK]) { agent { username } calls meanScorecardScore } }",
        token=admin,
    )
    assert stats.data == {
        "callStats": [{"agent": {"username": "dilnoza"}, "calls": 1, "meanScorecardScore": 1.0}]
    }

    [request] = receiver.at("/crm")
    assert verify_signature(SECRET, request.headers["ovozly-signature"], request.body)
    assert json.loads(request.body)["data"]["call"]["id"] == call_id


async def test_the_sweep_requeues_deliveries_and_evaluations_whose_jobs_were_lost(
    settings: Settings, resources: Resources, processor: CallProcessor
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import update

    from app.db.models import EvaluationStatus, RuleEvaluation
    from app.services.effects import unit_of_work
    from app.services.rules import start_evaluation
    from app.workers.desk import recover_desk_jobs
    from app.workers.jobs import WorkerState

    with loopback_receiver() as receiver:
        hook = await endpoint(resources, receiver.url + "/late")
        agent = (await make_user(resources.sessions, "dilnoza")).id
        await finished_call(
            resources.sessions,
            resources.effect_targets,
            agent,
            CallSpec([Turn(SpeakerRole.AGENT, 0, 1, "hi")]),
        )
        async with unit_of_work(resources.sessions, resources.effect_targets) as session:
            run = await start_evaluation(session, "test")
        # Both jobs are lost (as if Redis had lost them after the commits); time passes.
        await resources.redis.flushdb()
        long_ago = datetime.now(UTC) - timedelta(hours=1)
        async with resources.sessions() as session, session.begin():
            await session.execute(update(WebhookDelivery).values(created_at=long_ago))
            await session.execute(update(RuleEvaluation).values(updated_at=long_ago))
        state = WorkerState(
            settings=settings,
            sessions=resources.sessions,
            redis=resources.redis,
            storage=resources.storage,
            queue=resources.queue,
            publisher=resources.publisher,
            processor=processor,
        )
        assert await recover_desk_jobs(state) == 2
        await run_worker_burst(quick(settings), processor)

    delivery, codes = (await deliveries(resources))[hook]
    assert (delivery.status, codes) == (DeliveryStatus.SUCCEEDED, [200])
    assert len(receiver.at("/late")) == 1
    async with resources.sessions() as session:
        finished = await session.get(RuleEvaluation, run.id)
        assert finished is not None and finished.status is EvaluationStatus.SUCCESS
        assert finished.processed == 1


async def test_a_failed_call_is_announced_to_endpoints_that_want_failures(
    gql: GraphQLClient,
    settings: Settings,
    resources: Resources,
    processor: CallProcessor,
    garbage_audio: Path,
) -> None:
    from app.services import calls as call_service
    from app.services.effects import unit_of_work
    from tests.factories import make_call

    with loopback_receiver() as receiver:
        await endpoint(resources, receiver.url + "/failures", [WebhookEvent.CALL_FAILED])
        await endpoint(resources, receiver.url + "/successes", [WebhookEvent.CALL_SUCCEEDED])
        agent = (await make_user(resources.sessions, "dilnoza")).id
        calls = [
            await make_call(
                resources.sessions, resources.storage, agent, garbage_audio, probe=False
            )
            for _ in range(3)
        ]
        for call in calls:
            async with unit_of_work(resources.sessions, resources.effect_targets) as session:
                failed = await call_service.fail(session, call.id, call.job_id, "Unreadable audio")
            assert failed is not None
        await run_worker_burst(quick(settings), processor)

    assert receiver.at("/successes") == []
    received = receiver.at("/failures")
    assert len(received) == 3
    for request in received:
        body = json.loads(request.body)
        assert (body["type"], body["data"]["call"]["status"]) == ("CALL_FAILED", "FAIL")
        assert body["data"]["call"]["error"] == "Unreadable audio"
        assert verify_signature(SECRET, request.headers["ovozly-signature"], request.body)

    await make_user(resources.sessions, "boss", Role.ADMIN)
    admin = await gql.login("boss")
    page = (
        "query($after: String) { webhookDeliveries(first: 2, after: $after) "
        "{ hasNextPage endCursor edges { node { event status callId } } } }"
    )
    first = await gql(page, {"after": None}, token=admin)
    assert first.data is not None
    assert first.data["webhookDeliveries"]["hasNextPage"] is True
    second = await gql(page, {"after": first.data["webhookDeliveries"]["endCursor"]}, token=admin)
    assert second.data is not None
    assert second.data["webhookDeliveries"]["hasNextPage"] is False
    nodes = [
        edge["node"]
        for result in (first, second)
        for edge in result.data["webhookDeliveries"]["edges"]  # type: ignore[index]
    ]
    assert sorted(n["callId"] for n in nodes) == sorted(to_global_id("Call", c.id) for c in calls)
    assert {(n["event"], n["status"]) for n in nodes} == {("CALL_FAILED", "SUCCEEDED")}
    bad_cursor = await gql(page, {"after": "not-a-cursor"}, token=admin)
    assert bad_cursor.codes == ["BAD_USER_INPUT"]


async def test_a_host_nobody_can_send_to_is_refused_and_a_stored_one_fails_once(
    settings: Settings, resources: Resources, processor: CallProcessor
) -> None:
    """Hosts the resolver or httpx cannot encode ("a..b", a zero-width space) must not pass
    registration and then crash every attempt (no attempt logged, the delivery PENDING, and
    the sweep sending it again every few minutes for ever)."""
    for url in ("http://a..b/hook", "http://exa\u200bmple.com/hook", "http://x\ufffd.com/h"):
        with pytest.raises(BadUserInput, match="not a valid domain name"):
            validate_url(url, allow_private=True)
    with pytest.raises(TargetRefused):
        await check_target("http://a..b/hook", allow_private=False)

    # An endpoint stored before registration checked this fails its delivery, once.
    async with resources.sessions() as session, session.begin():
        stored = WebhookEndpoint(
            url="http://exa\u200bmple.com/hook",
            events=[WebhookEvent.CALL_SUCCEEDED],
            secret=SECRET,
            is_active=True,
        )
        session.add(stored)
    agent = (await make_user(resources.sessions, "dilnoza")).id
    await finished_call(
        resources.sessions,
        resources.effect_targets,
        agent,
        CallSpec([Turn(SpeakerRole.AGENT, 0, 1, "hi")]),
    )
    await run_worker_burst(quick(settings, webhook_allow_private=True), processor)
    delivery, codes = (await deliveries(resources))[stored.id]
    assert delivery.status is DeliveryStatus.FAILED
    assert codes == [None]
    async with resources.sessions() as session:
        [error] = (await session.execute(select(WebhookAttempt.error))).scalars().all()
    assert error is not None and error.startswith("refused:")
