"""Call.audioUrl: signed links served by the API with HTTP Range (RFC 9110), for the call's
owner (its redacted copy) and admins only; tampered, expired and foreign signatures get 403
and no bytes. The GCS backend streams through the same route from a real emulator, and signs
V4 URLs when its credentials can."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from app.api.resources import Resources
from app.core.enums import SpeakerRole
from app.core.ids import to_global_id
from app.services.audio_links import (
    FullBody,
    PartialBody,
    Unsatisfiable,
    api_link,
    audio_signing_key,
    decide_range,
)
from app.storage import GcsStorage
from tests.api.helpers import GraphQLClient
from tests.factories import CallSpec, Person, Turn, finished_call

AUDIO_QUERY = "query($id: ID!) { call(id: $id) { audioUrl audioUrlExpiresAt } }"
SIZE = 700_001  # not a multiple of the chunk size


@pytest.fixture
def recording(tmp_path: Path) -> tuple[Path, bytes]:
    data = os.urandom(SIZE)
    path = tmp_path / "call.wav"
    path.write_bytes(data)
    return path, data


async def stored_call(resources: Resources, owner: Person, audio: Path) -> str:
    spec = CallSpec([Turn(SpeakerRole.AGENT, 0, 1, "hello")])
    call = await finished_call(
        resources.sessions,
        resources.effect_targets,
        owner.id,
        spec,
        storage=resources.storage,
        audio=audio,
        # The owner (an agent) hears the redacted copy; here it holds the same bytes.
        redacted_audio=audio,
    )
    return to_global_id("Call", call.id)


async def audio_url(gql: GraphQLClient, call_id: str, token: str) -> tuple[str, datetime]:
    result = await gql(AUDIO_QUERY, {"id": call_id}, token=token)
    assert not result.errors, result.errors
    assert result.data is not None
    data = result.data["call"]
    return data["audioUrl"], datetime.fromisoformat(data["audioUrlExpiresAt"])


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


# --- the range rules on their own -----------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, FullBody()),
        ("bytes=0-99", PartialBody(0, 99)),
        ("bytes=100-", PartialBody(100, 999)),
        ("bytes=-10", PartialBody(990, 999)),
        ("bytes=-5000", PartialBody(0, 999)),
        ("bytes=990-5000", PartialBody(990, 999)),
        ("BYTES = 5-6", PartialBody(5, 6)),
        ("bytes=1000-", Unsatisfiable()),
        ("bytes=-0", Unsatisfiable()),
        ("bytes=5-1", FullBody()),  # invalid: ignored
        ("bytes=abc", FullBody()),
        ("bytes=-", FullBody()),
        ("items=0-5", FullBody()),  # unknown unit: ignored
        ("bytes=0-1,5-6", FullBody()),  # multi-range: we may ignore it
        ("bytes=2000-,3000-", Unsatisfiable()),  # ... unless nothing is satisfiable
        ("bytes=" + "9" * 40 + "-", FullBody()),
    ],
)
def test_range_decisions(header: str | None, expected: object) -> None:
    assert decide_range(header, 1000) == expected


def test_a_stale_if_range_gets_the_whole_body() -> None:
    assert decide_range("bytes=0-1", 10, if_range='"old"', etag='"new"') == FullBody()
    assert decide_range("bytes=0-1", 10, if_range='"new"', etag='"new"') == PartialBody(0, 1)


# --- through the API ------------------------------------------------------------------------


async def test_owner_streams_and_seeks(
    gql: GraphQLClient,
    http: httpx.AsyncClient,
    resources: Resources,
    dilnoza: Person,
    recording: tuple[Path, bytes],
) -> None:
    path, data = recording
    call_id = await stored_call(resources, dilnoza, path)
    url, expires_at = await audio_url(gql, call_id, dilnoza.token)
    assert url.startswith("http://testserver/audio/")
    ttl = expires_at - datetime.now(UTC)
    assert timedelta(seconds=800) < ttl <= timedelta(seconds=900)

    whole = await http.get(path_of(url))
    assert whole.status_code == 200
    assert whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    assert whole.headers["content-length"] == str(SIZE)
    assert whole.headers["content-type"].startswith("audio/")

    part = await http.get(path_of(url), headers={"Range": "bytes=1000-300999"})
    assert part.status_code == 206
    assert part.headers["content-range"] == f"bytes 1000-300999/{SIZE}"
    assert part.content == data[1000:301000]

    tail = await http.get(path_of(url), headers={"Range": "bytes=-7"})
    assert (tail.status_code, tail.content) == (206, data[-7:])

    beyond = await http.get(path_of(url), headers={"Range": f"bytes={SIZE}-"})
    assert beyond.status_code == 416
    assert beyond.headers["content-range"] == f"bytes */{SIZE}"
    assert beyond.content == b""

    for ignored in ("bytes=9-2", "bytes=zz", "bytes=0-1,4-5"):
        response = await http.get(path_of(url), headers={"Range": ignored})
        assert (response.status_code, len(response.content)) == (200, SIZE), ignored

    head = await http.head(path_of(url), headers={"Range": "bytes=0-9"})
    assert head.status_code == 206
    assert head.headers["content-length"] == "10"
    assert head.content == b""


async def test_admin_gets_a_link_and_another_agent_sees_nothing(
    gql: GraphQLClient,
    http: httpx.AsyncClient,
    resources: Resources,
    dilnoza: Person,
    aziz: Person,
    admin: Person,
    recording: tuple[Path, bytes],
) -> None:
    call_id = await stored_call(resources, dilnoza, recording[0])
    url, _ = await audio_url(gql, call_id, admin.token)
    assert (await http.get(path_of(url))).status_code == 200
    other = await gql(AUDIO_QUERY, {"id": call_id}, token=aziz.token)
    assert other.codes == ["NOT_FOUND"]
    assert other.data is None


def _with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    query.update(changes)
    return parts.path + "?" + "&".join(f"{k}={v}" for k, v in query.items())


async def test_tampered_expired_and_foreign_signatures_get_403_and_no_bytes(
    gql: GraphQLClient,
    http: httpx.AsyncClient,
    resources: Resources,
    dilnoza: Person,
    aziz: Person,
    recording: tuple[Path, bytes],
    tmp_path: Path,
) -> None:
    call_id = await stored_call(resources, dilnoza, recording[0])
    url, _ = await audio_url(gql, call_id, dilnoza.token)
    other_audio = tmp_path / "other.wav"
    other_audio.write_bytes(b"x" * 100)
    other_id = await stored_call(resources, aziz, other_audio)
    other_url, _ = await audio_url(gql, other_id, aziz.token)
    query = parse_qs(urlsplit(url).query)
    signature = query["signature"][0]
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]
    later = str(int(query["expires"][0]) + 3600)
    other_call_path = urlsplit(other_url).path

    settings = resources.settings
    call_uuid = re.search(r"/audio/([0-9a-f-]+)", url)
    assert call_uuid is not None
    row_key = await _storage_key(resources, call_uuid.group(1))
    expired = api_link(
        "http://testserver",
        audio_signing_key(settings.signing_key),
        __import__("uuid").UUID(call_uuid.group(1)),
        row_key,
        timedelta(seconds=-5),
        datetime.now(UTC),
    )
    wrong_key = api_link(
        "http://testserver",
        audio_signing_key("another-deployment-key-" + "z" * 20),
        __import__("uuid").UUID(call_uuid.group(1)),
        row_key,
        timedelta(seconds=60),
        datetime.now(UTC),
    )
    attempts = {
        "tampered signature": _with_query(url, signature=flipped),
        "extended expiry": _with_query(url, expires=later),
        "no signature": urlsplit(url).path,
        "garbage expiry": _with_query(url, expires="soon"),
        "another call's signature": other_call_path + "?" + urlsplit(url).query,
        "expired": path_of(expired.url),
        "another key": path_of(wrong_key.url),
        "unknown call": "/audio/00000000-0000-0000-0000-000000000000?" + urlsplit(url).query,
    }
    for name, path in attempts.items():
        response = await http.get(path, headers={"Range": "bytes=0-10"})
        assert (response.status_code, response.content) == (403, b""), name


async def _storage_key(resources: Resources, call_id: str) -> str:
    from sqlalchemy import select

    from app.db.models import Call

    async with resources.sessions() as session:
        key = (
            await session.execute(select(Call.storage_key).where(Call.id == call_id))
        ).scalar_one()
    return str(key)


# --- GCS ------------------------------------------------------------------------------------


@pytest.fixture
def gcs_resources(resources: Resources, gcs_storage: GcsStorage) -> Iterator[Resources]:
    """The running app, its recordings in the GCS emulator for the duration of a test."""
    local = resources.storage
    resources.storage = gcs_storage
    try:
        yield resources
    finally:
        resources.storage = local


async def test_gcs_without_signing_credentials_streams_through_the_api(
    gql: GraphQLClient,
    http: httpx.AsyncClient,
    gcs_resources: Resources,
    dilnoza: Person,
    recording: tuple[Path, bytes],
) -> None:
    path, data = recording
    call_id = await stored_call(gcs_resources, dilnoza, path)
    url, _ = await audio_url(gql, call_id, dilnoza.token)
    assert "/audio/" in url  # anonymous emulator credentials cannot sign
    part = await http.get(path_of(url), headers={"Range": "bytes=262000-262999"})
    assert part.status_code == 206
    assert part.content == data[262000:263000]
    whole = await http.get(path_of(url))
    assert whole.content == data


async def test_gcs_with_a_service_account_signs_v4_urls(
    gcs_client: Any, gcs_emulator_host: str, tmp_path: Path, recording: tuple[Path, bytes]
) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from google.cloud import storage
    from google.oauth2 import service_account

    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    credentials = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
        {
            "type": "service_account",
            "client_email": "ovozly-test@ovozly-test.iam.gserviceaccount.com",
            "private_key": pem,
            "private_key_id": "1",
            "token_uri": "https://oauth2.googleapis.com/token",
            "project_id": "ovozly-test",
        }
    )
    signing_client = storage.Client(project="ovozly-test", credentials=credentials)
    path, data = recording
    bucket = GcsStorage("ovozly-test", gcs_client)
    await bucket.put_file("calls/2026/12/01/signed", path)
    signer = GcsStorage("ovozly-test", signing_client)
    url = await signer.signed_url(
        "calls/2026/12/01/signed", expires_in=timedelta(minutes=5), filename="call.wav"
    )
    assert url is not None
    query = parse_qs(urlsplit(url).query)
    assert query["X-Goog-Algorithm"] == ["GOOG4-RSA-SHA256"]
    assert query["X-Goog-Expires"] == ["300"]
    assert "X-Goog-Signature" in query
    assert url.startswith(gcs_emulator_host)
    # The emulator does not check signatures, but it serves the object the URL names.
    async with httpx.AsyncClient() as client:
        response = await client.get(url)
    assert response.content == data
