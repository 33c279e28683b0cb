"""Who hears what: agents only the redacted copy (no audio at all for a call without one),
admins the original while it is kept; a job's new copy replaces the old one in storage, and
with KEEP_ORIGINAL_AUDIO off the copy becomes the call's only recording."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from app.api.resources import Resources
from app.core.enums import SpeakerRole
from app.core.ids import to_global_id
from app.db.models import Call, User
from app.services.calls import reprocess_call, save_results
from app.services.effects import unit_of_work
from app.services.redacted_audio import REDACTED_PREFIX, MaskedSpan, StoredRedaction
from app.storage import new_object_key
from tests.api.helpers import GraphQLClient
from tests.factories import CallSpec, Person, Turn, finished_call, spec_results

AUDIO = "query($id: ID!) { call(id: $id) { audioUrl redactions { type start end } } }"
SPEC = CallSpec([Turn(SpeakerRole.CUSTOMER, 0, 3, "my card is ****9012")])


@pytest.fixture
def original(tmp_path: Path) -> Path:
    path = tmp_path / "call.wav"
    path.write_bytes(b"RIFF-original-" + bytes(100))
    return path


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    path = tmp_path / "copy.flac"
    path.write_bytes(b"fLaC-redacted-" + bytes(100))
    return path


async def played(
    gql: GraphQLClient, http: httpx.AsyncClient, call: Call, token: str
) -> bytes | None:
    shown = await gql(AUDIO, {"id": to_global_id("Call", call.id)}, token=token)
    assert shown.data is not None, shown.errors
    url = shown.data["call"]["audioUrl"]
    if url is None:
        return None
    parts = urlsplit(url)
    response = await http.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200
    return response.content


async def test_agents_hear_the_copy_admins_the_original(
    gql: GraphQLClient,
    http: httpx.AsyncClient,
    resources: Resources,
    admin: Person,
    dilnoza: Person,
    original: Path,
    copy: Path,
) -> None:
    call = await finished_call(
        resources.sessions,
        resources.effect_targets,
        dilnoza.id,
        SPEC,
        storage=resources.storage,
        audio=original,
        redacted_audio=copy,
        redactions=[MaskedSpan("CARD", 1.0, 2.5), MaskedSpan("DTMF", 2.6, 2.7)],
    )
    assert await played(gql, http, call, dilnoza.token) == copy.read_bytes()
    assert await played(gql, http, call, admin.token) == original.read_bytes()
    shown = await gql(AUDIO, {"id": to_global_id("Call", call.id)}, token=dilnoza.token)
    assert shown.data is not None
    assert shown.data["call"]["redactions"] == [
        {"type": "CARD", "start": 1.0, "end": 2.5},
        {"type": "DTMF", "start": 2.6, "end": 2.7},
    ]


async def test_without_a_redacted_copy_an_agent_gets_no_audio(
    gql: GraphQLClient,
    http: httpx.AsyncClient,
    resources: Resources,
    admin: Person,
    dilnoza: Person,
    original: Path,
) -> None:
    call = await finished_call(
        resources.sessions,
        resources.effect_targets,
        dilnoza.id,
        SPEC,
        storage=resources.storage,
        audio=original,
    )
    assert await played(gql, http, call, dilnoza.token) is None
    assert await played(gql, http, call, admin.token) == original.read_bytes()


async def rerun(
    resources: Resources, call: Call, owner: Person, copy: Path, *, keep_original: bool
) -> tuple[Call, str]:
    """A reprocess and its job's save, with a new redacted copy."""
    async with unit_of_work(resources.sessions, resources.effect_targets) as session:
        viewer = await session.get(User, owner.id)
        assert viewer is not None
        restarted = await reprocess_call(session, viewer, call.id, None)
    key = new_object_key(REDACTED_PREFIX)
    await resources.storage.put_file(key, copy)
    transcript, insight = spec_results(SPEC, 3.0)
    async with unit_of_work(resources.sessions, resources.effect_targets) as session:
        assert restarted.job_id is not None
        saved = await save_results(
            session,
            call.id,
            restarted.job_id,
            transcript,
            insight,
            analysis_backend="test",
            redaction=StoredRedaction(key, (MaskedSpan("CARD", 1.0, 2.5),)),
            keep_original_audio=keep_original,
        )
    assert saved is not None
    return saved, key


async def test_a_new_copy_replaces_the_old_one_in_storage(
    resources: Resources, dilnoza: Person, original: Path, copy: Path
) -> None:
    call = await finished_call(
        resources.sessions,
        resources.effect_targets,
        dilnoza.id,
        SPEC,
        storage=resources.storage,
        audio=original,
        redacted_audio=copy,
    )
    first_copy = call.redacted_storage_key
    assert first_copy is not None
    saved, second_copy = await rerun(resources, call, dilnoza, copy, keep_original=True)
    assert saved.redacted_storage_key == second_copy
    assert saved.storage_key == call.storage_key
    assert not await resources.storage.exists(first_copy)
    assert await resources.storage.exists(second_copy)
    assert await resources.storage.exists(call.storage_key)
    assert saved.redactions == [{"type": "CARD", "start_s": 1.0, "end_s": 2.5}]


async def test_when_the_original_is_not_kept_the_copy_is_the_only_recording(
    gql: GraphQLClient,
    http: httpx.AsyncClient,
    resources: Resources,
    admin: Person,
    dilnoza: Person,
    original: Path,
    copy: Path,
) -> None:
    call = await finished_call(
        resources.sessions,
        resources.effect_targets,
        dilnoza.id,
        SPEC,
        storage=resources.storage,
        audio=original,
    )
    saved, key = await rerun(resources, call, dilnoza, copy, keep_original=False)
    assert saved.storage_key == saved.redacted_storage_key == key
    assert not await resources.storage.exists(call.storage_key), "the original is deleted"
    assert await played(gql, http, saved, admin.token) == copy.read_bytes()
    assert await played(gql, http, saved, dilnoza.token) == copy.read_bytes()
    # Reprocessed again: the newer copy takes over and the old one is deleted.
    again, newer = await rerun(resources, saved, dilnoza, copy, keep_original=False)
    assert again.storage_key == again.redacted_storage_key == newer
    assert not await resources.storage.exists(key)
    assert await resources.storage.exists(newer)
