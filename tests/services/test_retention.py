"""Retention and legal hold through the API and the worker's sweep: the policy (ADMIN only,
negative days refused naming the field), the sweep removing exactly what the policy says
(storage objects of both copies included) and nothing of a call on hold, a crash half way
finished by the next sweep, and what a call shows once its audio or transcript is gone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select, update

from app.api.resources import Resources
from app.core.enums import SpeakerRole
from app.core.ids import to_global_id
from app.db.models import Call, CallCategory, CallMetrics, CallSpeaker, Segment
from app.services import retention as retention_service
from app.services import rules as rule_service
from app.services.redacted_audio import MaskedSpan
from app.storage import ObjectStorage
from tests.api.helpers import GraphQLClient
from tests.factories import CallSpec, Person, Turn, finished_call

POLICY = "{ retentionPolicy { audioDays transcriptDays } }"
SET_POLICY = """mutation($i: RetentionPolicyInput!) {
  setRetentionPolicy(input: $i) { audioDays transcriptDays } }"""
HOLD = """mutation($id: ID!, $hold: Boolean!) {
  setLegalHold(callId: $id, hold: $hold) { id legalHold audioDeletedAt } }"""
CALL = """query($id: ID!) { call(id: $id) {
  status legalHold audioDeletedAt audioUrl audioUrlExpiresAt redactions { type start end }
  segments { text } analysis { summary } metrics { durationSeconds } } }"""


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "call.wav"
    path.write_bytes(b"RIFF" + bytes(range(256)) * 10)
    return path


@pytest.fixture
def redacted(tmp_path: Path) -> Path:
    path = tmp_path / "redacted.flac"
    path.write_bytes(b"fLaC" + bytes(200))
    return path


async def stored_call(
    resources: Resources,
    owner: Person,
    recording: Path,
    redacted: Path,
    *,
    finished_days_ago: float,
) -> Call:
    spec = CallSpec([Turn(SpeakerRole.AGENT, 0, 2, "my card is ****0366 thank you")])
    call = await finished_call(
        resources.sessions,
        resources.effect_targets,
        owner.id,
        spec,
        storage=resources.storage,
        audio=recording,
        redacted_audio=redacted,
        redactions=[MaskedSpan("CARD", 0.4, 1.6)],
    )
    async with resources.sessions() as session, session.begin():
        await session.execute(
            update(Call)
            .where(Call.id == call.id)
            .values(finished_at=datetime.now(UTC) - timedelta(days=finished_days_ago))
        )
        row = await session.get(Call, call.id)
        assert row is not None
        return row


async def reread(resources: Resources, call_id: uuid.UUID) -> Call:
    async with resources.sessions() as session:
        row = await session.get(Call, call_id)
    assert row is not None
    return row


async def count(resources: Resources, model: type, call_id: uuid.UUID) -> int:
    async with resources.sessions() as session:
        column = model.__table__.c.call_id  # type: ignore[attr-defined]
        return int(
            (await session.execute(select(func.count()).where(column == call_id))).scalar_one()
        )


async def objects_exist(storage: ObjectStorage, *keys: str | None) -> list[bool]:
    return [key is not None and await storage.exists(key) for key in keys]


# --- the policy ---------------------------------------------------------------------------------


async def test_policy_is_admin_only_and_negative_days_are_refused_naming_the_field(
    gql: GraphQLClient, admin: Person, dilnoza: Person
) -> None:
    assert (await gql(POLICY, token=admin.token)).data == {
        "retentionPolicy": {"audioDays": None, "transcriptDays": None}
    }
    saved = await gql(SET_POLICY, {"i": {"audioDays": 30, "transcriptDays": 0}}, token=admin.token)
    assert saved.data == {"setRetentionPolicy": {"audioDays": 30, "transcriptDays": 0}}
    assert (await gql(POLICY, token=admin.token)).data == {
        "retentionPolicy": {"audioDays": 30, "transcriptDays": 0}
    }
    for field in ("audioDays", "transcriptDays"):
        refused = await gql(SET_POLICY, {"i": {field: -1}}, token=admin.token)
        assert refused.codes == ["BAD_USER_INPUT"]
        assert field in refused.errors[0]["message"]
    # Left out or null: kept for ever.
    cleared = await gql(SET_POLICY, {"i": {"audioDays": None}}, token=admin.token)
    assert cleared.data == {"setRetentionPolicy": {"audioDays": None, "transcriptDays": None}}

    assert (await gql(POLICY, token=dilnoza.token)).codes == ["FORBIDDEN"]
    denied = await gql(SET_POLICY, {"i": {"audioDays": 1}}, token=dilnoza.token)
    assert denied.codes == ["FORBIDDEN"]
    assert (await gql(POLICY, token=admin.token)).data == {
        "retentionPolicy": {"audioDays": None, "transcriptDays": None}
    }


async def test_legal_hold_is_admin_only_and_a_missing_call_is_not_found(
    gql: GraphQLClient,
    resources: Resources,
    admin: Person,
    dilnoza: Person,
    recording: Path,
    redacted: Path,
) -> None:
    call = await stored_call(resources, dilnoza, recording, redacted, finished_days_ago=0)
    call_id = to_global_id("Call", call.id)
    held = await gql(HOLD, {"id": call_id, "hold": True}, token=admin.token)
    assert held.data == {"setLegalHold": {"id": call_id, "legalHold": True, "audioDeletedAt": None}}
    assert (await reread(resources, call.id)).legal_hold is True
    assert (await gql(HOLD, {"id": call_id, "hold": False}, token=dilnoza.token)).codes == [
        "FORBIDDEN"
    ]
    missing = await gql(
        HOLD, {"id": to_global_id("Call", uuid.uuid4()), "hold": True}, token=admin.token
    )
    assert missing.codes == ["NOT_FOUND"]
    released = await gql(HOLD, {"id": call_id, "hold": False}, token=admin.token)
    assert released.data is not None and released.data["setLegalHold"]["legalHold"] is False


# --- the sweep ----------------------------------------------------------------------------------


async def test_sweep_removes_exactly_the_expired_audio_and_spares_recent_and_held_calls(
    gql: GraphQLClient,
    resources: Resources,
    admin: Person,
    dilnoza: Person,
    recording: Path,
    redacted: Path,
) -> None:
    old = await stored_call(resources, dilnoza, recording, redacted, finished_days_ago=10)
    recent = await stored_call(resources, dilnoza, recording, redacted, finished_days_ago=3)
    held = await stored_call(resources, dilnoza, recording, redacted, finished_days_ago=40)
    await gql(HOLD, {"id": to_global_id("Call", held.id), "hold": True}, token=admin.token)
    await gql(SET_POLICY, {"i": {"audioDays": 7}}, token=admin.token)

    report = await retention_service.sweep(resources.sessions, resources.storage)
    assert (report.audio_expired, report.audio_purged, report.transcripts_expired) == (1, 1, 0)

    storage = resources.storage
    assert await objects_exist(storage, old.storage_key, old.redacted_storage_key) == [False, False]
    for kept in (recent, held):
        assert await objects_exist(storage, kept.storage_key, kept.redacted_storage_key) == [
            True,
            True,
        ]
    swept = await reread(resources, old.id)
    assert swept.audio_deleted_at is not None and not swept.audio_purge_pending
    assert swept.redacted_storage_key is None

    for token in (dilnoza.token, admin.token):
        shown = await gql(CALL, {"id": to_global_id("Call", old.id)}, token=token)
        call = shown.data["call"] if shown.data else None
        assert call is not None, shown.errors
        assert call["audioUrl"] is None and call["audioUrlExpiresAt"] is None
        assert call["audioDeletedAt"] is not None
        # The transcript is kept (transcriptDays is null), and so are the spans masked in it.
        assert call["segments"] == [{"text": "my card is ****0366 thank you"}]
        assert call["redactions"] == [{"type": "CARD", "start": 0.4, "end": 1.6}]
        for other in (recent, held):
            live = await gql(CALL, {"id": to_global_id("Call", other.id)}, token=token)
            assert live.data is not None and live.data["call"]["audioUrl"] is not None

    refused = await gql(
        "mutation($id: ID!) { reprocessCall(id: $id) { id } }",
        {"id": to_global_id("Call", old.id)},
        token=dilnoza.token,
    )
    assert refused.codes == ["BAD_USER_INPUT"]
    assert "retention" in refused.errors[0]["message"]

    # Idempotent: the next sweep finds nothing more to do.
    again = await retention_service.sweep(resources.sessions, resources.storage)
    assert (again.audio_expired, again.audio_purged) == (0, 0)


async def test_expired_transcripts_go_while_the_call_its_metrics_and_categories_stay(
    gql: GraphQLClient,
    resources: Resources,
    admin: Person,
    dilnoza: Person,
    recording: Path,
    redacted: Path,
) -> None:
    created = await gql(
        """mutation($c: CategoryInput!) { createCategory(input: $c) { category { id } } }""",
        {"c": {"name": "Cards", "rule": {"conditions": [{"type": "PHRASE", "phrases": ["card"]}]}}},
        token=admin.token,
    )
    assert not created.errors, created.errors
    expired = await stored_call(resources, dilnoza, recording, redacted, finished_days_ago=0)
    held = await stored_call(resources, dilnoza, recording, redacted, finished_days_ago=0)
    await gql(HOLD, {"id": to_global_id("Call", held.id), "hold": True}, token=admin.token)
    await gql(SET_POLICY, {"i": {"transcriptDays": 0}}, token=admin.token)
    assert await count(resources, CallCategory, expired.id) == 1

    report = await retention_service.sweep(resources.sessions, resources.storage)
    assert (report.audio_expired, report.transcripts_expired) == (0, 1)

    assert await count(resources, Segment, expired.id) == 0
    assert await count(resources, CallMetrics, expired.id) == 1
    assert await count(resources, CallSpeaker, expired.id) == 1 + 1
    assert await count(resources, CallCategory, expired.id) == 1
    async with resources.sessions() as session:
        evidence = (
            await session.execute(
                select(CallCategory.evidence).where(CallCategory.call_id == expired.id)
            )
        ).scalar_one()
    assert evidence == [], "quotes of the transcript go with it"
    shown = await gql(CALL, {"id": to_global_id("Call", expired.id)}, token=admin.token)
    assert shown.data is not None
    call = shown.data["call"]
    assert call["segments"] == [] and call["analysis"] is None
    assert call["metrics"] == {"durationSeconds": 2.0}
    assert call["audioUrl"] is not None, "audioDays is null: the recording stays"
    assert await count(resources, Segment, held.id) == 1

    # A later evaluation of the rules (a category edited) leaves the expired call's tags.
    async with resources.sessions() as session, session.begin():
        await rule_service.evaluate_calls(session, [expired.id, held.id])
    assert await count(resources, CallCategory, expired.id) == 1
    assert await count(resources, CallCategory, held.id) == 1

    stats = await gql("{ callStats { calls } }", token=admin.token)
    assert stats.data == {"callStats": [{"calls": 2}]}


class FlakyStorage:
    """The real storage, but the first delete dies (a crash between the two objects)."""

    def __init__(self, inner: ObjectStorage) -> None:
        self.inner = inner
        self.failures = 1

    async def delete(self, key: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("storage went away")
        await self.inner.delete(key)


async def test_a_sweep_that_dies_half_way_is_finished_by_the_next(
    gql: GraphQLClient,
    resources: Resources,
    admin: Person,
    dilnoza: Person,
    recording: Path,
    redacted: Path,
) -> None:
    call = await stored_call(resources, dilnoza, recording, redacted, finished_days_ago=1)
    await gql(SET_POLICY, {"i": {"audioDays": 0}}, token=admin.token)
    flaky = FlakyStorage(resources.storage)
    with pytest.raises(ConnectionError):
        await retention_service.sweep(resources.sessions, flaky)  # type: ignore[arg-type]
    marked = await reread(resources, call.id)
    # Marked first: never served again, even though its objects are still there.
    assert marked.audio_deleted_at is not None and marked.audio_purge_pending
    assert await objects_exist(resources.storage, call.storage_key, call.redacted_storage_key) == [
        True,
        True,
    ]
    shown = await gql(CALL, {"id": to_global_id("Call", call.id)}, token=admin.token)
    assert shown.data is not None and shown.data["call"]["audioUrl"] is None

    report = await retention_service.sweep(resources.sessions, resources.storage)
    assert (report.audio_expired, report.audio_purged) == (0, 1)
    assert await objects_exist(resources.storage, call.storage_key, call.redacted_storage_key) == [
        False,
        False,
    ]
    assert not (await reread(resources, call.id)).audio_purge_pending


async def test_a_link_issued_before_the_sweep_stops_working(
    gql: GraphQLClient,
    http: httpx.AsyncClient,
    resources: Resources,
    admin: Person,
    dilnoza: Person,
    recording: Path,
    redacted: Path,
) -> None:
    call = await stored_call(resources, dilnoza, recording, redacted, finished_days_ago=1)
    shown = await gql(CALL, {"id": to_global_id("Call", call.id)}, token=dilnoza.token)
    assert shown.data is not None
    url = shown.data["call"]["audioUrl"].removeprefix("http://testserver")
    assert (await http.get(url)).status_code == 200
    await gql(SET_POLICY, {"i": {"audioDays": 0}}, token=admin.token)
    await retention_service.sweep(resources.sessions, resources.storage)
    gone = await http.get(url)
    # The copy's key is cleared with the objects, so the link's signature names nothing.
    assert (gone.status_code, gone.content) == (403, b"")
