"""`GET/HEAD /audio/<call id>?expires=..&signature=..`: a call's recording, streamed from
storage with single-range support so an `<audio>` element can seek.

The signature is the only credential (an `<audio src>` sends no bearer header): anything
wrong with it, an expired link, or a call that no longer exists is 403 with no body, so the
route tells a stranger nothing.
"""

from __future__ import annotations

import mimetypes
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy import select

from app.api.resources import Resources
from app.db.models import Call
from app.services import audit
from app.services.audio_links import (
    AUDIO_ROUTE,
    FullBody,
    PartialBody,
    Unsatisfiable,
    audio_signing_key,
    decide_range,
    signature_valid,
)
from app.services.redacted_audio import REDACTED_CONTENT_TYPE
from app.storage import ObjectNotFound

router = APIRouter()

_FORBIDDEN_HEADERS = {"Cache-Control": "no-store"}


def _forbidden() -> Response:
    return Response(status_code=403, headers=_FORBIDDEN_HEADERS)


def _content_type(filename: str) -> str:
    guessed, _ = mimetypes.guess_type(filename)
    return guessed if guessed and guessed.startswith(("audio/", "video/")) else "audio/mpeg"


@dataclass(frozen=True, slots=True)
class _LinkClaims:
    call_id: uuid.UUID
    expires_at: int
    signature: str
    now: datetime
    viewer_id: uuid.UUID | None


def _signed_recording(
    key: bytes,
    claims: _LinkClaims,
    original_key: str,
    redacted_key: str | None,
    filename: str,
    sha256: str,
) -> tuple[str, str, str] | None:
    """(storage key, ETag, media type) of the recording the link was issued for: its key is
    in the signature (the redacted copy, or the original for an admin), and so is the person
    it was issued to. None when the link signs neither."""

    def signs(storage_key: str) -> bool:
        return signature_valid(
            key,
            claims.call_id,
            storage_key,
            claims.expires_at,
            claims.signature,
            claims.now,
            claims.viewer_id,
        )

    if redacted_key is not None and signs(redacted_key):
        return redacted_key, f'"{redacted_key.rsplit("/", 1)[-1]}"', REDACTED_CONTENT_TYPE
    if signs(original_key):
        return original_key, f'"{sha256}"', _content_type(filename)
    return None


async def _stored_recording(resources: Resources, call_id: uuid.UUID) -> Any:
    """(original key, redacted copy's key, filename, sha256, audio deleted at), or None."""
    async with resources.sessions() as session:
        return (
            await session.execute(
                select(
                    Call.storage_key,
                    Call.redacted_storage_key,
                    Call.filename,
                    Call.sha256,
                    Call.audio_deleted_at,
                ).where(Call.id == call_id)
            )
        ).one_or_none()


@router.api_route(f"{AUDIO_ROUTE}/{{call_id}}", methods=["GET", "HEAD"], include_in_schema=False)
async def stream_audio(
    request: Request,
    call_id: str,
    expires: Annotated[str, Query(max_length=20)] = "",
    signature: Annotated[str, Query(max_length=128)] = "",
    by: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    resources: Resources = request.app.state.resources
    try:
        call_uuid = uuid.UUID(call_id)
        expires_at = int(expires)
        viewer_id = uuid.UUID(by) if by else None
    except ValueError:
        return _forbidden()
    now = datetime.now(UTC)
    if expires_at < int(now.timestamp()):
        return _forbidden()
    row = await _stored_recording(resources, call_uuid)
    if row is None:
        return _forbidden()
    original_key, redacted_key, filename, sha256, audio_deleted_at = row
    signed = _signed_recording(
        audio_signing_key(resources.settings.signing_key),
        _LinkClaims(call_uuid, expires_at, signature, now, viewer_id),
        original_key,
        redacted_key,
        filename,
        sha256,
    )
    if signed is None:
        return _forbidden()
    storage_key, etag, media_type = signed
    if audio_deleted_at is not None:
        # Retention took the recording: a link issued before is dead.
        return Response(status_code=404, headers=_FORBIDDEN_HEADERS)

    storage = resources.storage
    try:
        size = await storage.size(storage_key)
    except ObjectNotFound:
        return Response(status_code=404, headers=_FORBIDDEN_HEADERS)
    headers = {
        "Accept-Ranges": "bytes",
        "ETag": etag,
        "Cache-Control": f"private, max-age={max(0, expires_at - int(now.timestamp()))}",
        "X-Content-Type-Options": "nosniff",
    }
    decision = decide_range(
        request.headers.get("range"), size, if_range=request.headers.get("if-range"), etag=etag
    )
    match decision:
        case Unsatisfiable():
            return Response(
                status_code=416, headers={**headers, "Content-Range": f"bytes */{size}"}
            )
        case PartialBody(start=start, end=end):
            status = 206
            headers["Content-Range"] = f"bytes {start}-{end}/{size}"
            length = decision.length
        case FullBody():
            status, start, end, length = 200, 0, size - 1, size
    headers["Content-Length"] = str(length)
    if request.method == "HEAD" or length == 0:
        return Response(status_code=status, headers=headers, media_type=media_type)
    if start == 0:
        # A playback (or download) starting: audited before a byte is sent. A player's
        # later range requests, seeking within the same recording, are not events.
        client = request.client.host if request.client else None
        await audit.record_committed(
            resources.sessions,
            audit.AuditAction.CALL_AUDIO_OPENED,
            audit.Actor(viewer_id, client),
            call_ids=[call_uuid],
            detail="streamed",
        )
    return StreamingResponse(
        storage.iter_range(storage_key, start, end),
        status_code=status,
        headers=headers,
        media_type=media_type,
    )
