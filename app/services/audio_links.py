"""Short-lived links to a call's recording, and the HTTP Range rules for serving it.

A link is `<base>/audio/<call id>?expires=<unix s>&by=<user id>&signature=<hex>`, where the
signature is HMAC-SHA256 over the call id, its storage key, the expiry and the user it was
issued to (named in the audit trail when the recording is streamed), under a key derived from
JWT_KEY (never JWT_KEY itself, so an audio signature can never pass as anything else). The
storage key in the message makes a link die with the recording it was issued for.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from app.core.errors import BadUserInput
from app.storage import ObjectStorage

AUDIO_ROUTE = "/audio"
_KEY_LABEL = b"ovozly/audio-url/v1"
MAX_RANGE_DIGITS = 18


def audio_signing_key(jwt_key: str) -> bytes:
    return hmac.new(jwt_key.encode(), _KEY_LABEL, hashlib.sha256).digest()


def signature(
    key: bytes,
    call_id: uuid.UUID,
    storage_key: str,
    expires: int,
    viewer_id: uuid.UUID | None = None,
) -> str:
    message = f"{call_id}\n{storage_key}\n{expires}"
    if viewer_id is not None:
        message += f"\n{viewer_id}"
    return hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def signature_valid(
    key: bytes,
    call_id: uuid.UUID,
    storage_key: str,
    expires: int,
    given: str,
    now: datetime,
    viewer_id: uuid.UUID | None = None,
) -> bool:
    if expires < int(now.timestamp()):
        return False
    expected = signature(key, call_id, storage_key, expires, viewer_id)
    return hmac.compare_digest(expected.encode(), given.encode())


@dataclass(frozen=True, slots=True)
class AudioLink:
    url: str
    expires_at: datetime


def api_link(
    base_url: str,
    key: bytes,
    call_id: uuid.UUID,
    storage_key: str,
    ttl: timedelta,
    now: datetime,
    viewer_id: uuid.UUID | None = None,
) -> AudioLink:
    """`viewer_id`: the user the link was issued to, signed into it, so the route can name
    them in the audit trail when the recording is streamed."""
    expires_at = (now + ttl).replace(microsecond=0)
    expires = int(expires_at.timestamp())
    sig = signature(key, call_id, storage_key, expires, viewer_id)
    url = f"{base_url.rstrip('/')}{AUDIO_ROUTE}/{call_id}?expires={expires}"
    if viewer_id is not None:
        url += f"&by={viewer_id}"
    url += f"&signature={sig}"
    return AudioLink(url, expires_at.astimezone(UTC))


# --- Range (RFC 9110 section 14) ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FullBody:
    """Serve the whole representation with 200 (no Range, or one we must or may ignore)."""


@dataclass(frozen=True, slots=True)
class PartialBody:
    start: int
    end: int
    """Inclusive."""

    @property
    def length(self) -> int:
        return self.end - self.start + 1


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """416 with `Content-Range: bytes */<size>`."""


RangeDecision = FullBody | PartialBody | Unsatisfiable
_SPEC = re.compile(r"(\d*)-(\d*)")


def _one_range(spec: str, size: int) -> RangeDecision | None:
    """None for a syntactically invalid spec."""
    match = _SPEC.fullmatch(spec.strip())
    if match is None:
        return None
    first, last = match.groups()
    if len(first) > MAX_RANGE_DIGITS or len(last) > MAX_RANGE_DIGITS or not (first or last):
        return None
    if first:
        start = int(first)
        end = int(last) if last else size - 1
        if last and end < start:
            return None
        if start >= size:
            return Unsatisfiable()
        return PartialBody(start, min(end, size - 1))
    suffix = int(last)
    if suffix == 0 or size == 0:
        return Unsatisfiable()
    return PartialBody(max(0, size - suffix), size - 1)


def decide_range(
    header: str | None, size: int, *, if_range: str | None = None, etag: str | None = None
) -> RangeDecision:
    """What to send for a Range header. We serve single ranges only: a syntactically invalid
    header, an unknown unit or a stale If-Range is ignored (200, whole body, as RFC 9110
    requires); a multi-range request gets the whole body when any part is satisfiable (a
    server may ignore Range) and 416 when none is."""
    if header is None:
        return FullBody()
    if if_range is not None and if_range.strip() != etag:
        return FullBody()
    unit, sep, specs = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return FullBody()
    decisions = [_one_range(spec, size) for spec in specs.split(",")]
    if any(decision is None for decision in decisions):
        return FullBody()
    if len(decisions) > 1:
        if all(isinstance(d, Unsatisfiable) for d in decisions):
            return Unsatisfiable()
        return FullBody()
    only = decisions[0]
    assert only is not None
    return only


def link_origin(
    public_base_url: str | None,
    allowed_hosts: Sequence[str],
    *,
    request_origin: str | None,
    request_host: str | None,
) -> str:
    """Where audio links point: PUBLIC_BASE_URL when set. Otherwise the origin the request
    came in on, but only for a Host in ALLOWED_HOSTS when that list is set (production
    requires one of the two): a proxied request with a forged Host must never yield links
    to another site."""
    if public_base_url is not None:
        return public_base_url
    if request_origin is None:
        return ""
    if allowed_hosts:
        host = (request_host or "").strip().lower()
        hostname = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        allowed = {entry.strip().lower() for entry in allowed_hosts}
        if host not in allowed and hostname not in allowed:
            raise BadUserInput("The request's Host is not one this service answers for")
    return request_origin


async def link_for(
    storage: ObjectStorage,
    *,
    jwt_key: str,
    base_url: str,
    call_id: uuid.UUID,
    storage_key: str,
    filename: str,
    ttl: timedelta,
    now: datetime | None = None,
    viewer_id: uuid.UUID | None = None,
) -> AudioLink:
    """The backend's own signed URL when it can sign (GCS with a service account), else the
    API's signed route. The caller has already checked the viewer may see the call."""
    moment = now or datetime.now(UTC)
    direct = await storage.signed_url(storage_key, expires_in=ttl, filename=filename)
    if direct is not None:
        return AudioLink(direct, (moment + ttl).replace(microsecond=0))
    return api_link(
        base_url, audio_signing_key(jwt_key), call_id, storage_key, ttl, moment, viewer_id
    )
