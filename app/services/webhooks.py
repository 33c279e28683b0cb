"""Webhooks: ADMIN-registered endpoints, told when a call ends (CALL_SUCCEEDED, CALL_FAILED).

A delivery row is written in the transaction that ends the call (so an event is never lost
or sent for a change that rolled back), and the worker sends it after the commit. Each
attempt is logged. The request carries `Ovozly-Signature: t=<unix s>,v1=<hex>`, the hex being
HMAC-SHA256 under the endpoint's secret of `"<t>.<body>"` (Stripe's scheme): receivers check
it and reject old timestamps to stop replays. Every request is also signed per Standard Webhooks
(`webhook-id`, `webhook-timestamp`, `webhook-signature`, made by the `standardwebhooks`
library), so receivers can verify with that scheme's own tooling: the key is the endpoint's
secret as UTF-8 bytes, given to them as `whsec_<base64>` (`standard_webhooks_secret`).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import json
import secrets
import socket
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession
from standardwebhooks.webhooks import Webhook

from app.core.errors import BadUserInput, NotFound
from app.core.ids import to_global_id
from app.db.models import (
    Call,
    CallStatus,
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
)
from app.services.effects import after_commit

SIGNATURE_HEADER = "Ovozly-Signature"
EVENT_HEADER = "Ovozly-Event"
DELIVERY_HEADER = "Ovozly-Delivery"
MAX_URL_CHARS = 2048
MIN_SECRET_CHARS = 16
MAX_SECRET_CHARS = 200
MAX_ENDPOINTS = 50
RESOLVE_TIMEOUT_S = 5.0
MAX_ERROR_CHARS = 500
RESPONSE_PEEK_BYTES = 1024


# --- endpoints ---------------------------------------------------------------------------------


def _blocked_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return not ip.is_global or ip.is_multicast


def literal_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host that is an IP literal names, read as a resolver reads it: besides
    dotted quads and IPv6, the C library's inet_aton forms (`2130706433`, `0x7f000001`,
    `0177.0.0.1`, `127.1`), which getaddrinfo and so httpx accept too. None for a name."""
    bare = host.split("%", 1)[0]
    try:
        return ipaddress.ip_address(bare)
    except ValueError:
        pass
    candidate = bare[:-1] if bare.endswith(".") else bare
    if not candidate or any(ch not in "0123456789abcdefABCDEFxX." for ch in candidate):
        return None
    try:
        return ipaddress.IPv4Address(socket.inet_aton(candidate))
    except OSError:
        return None


def _sendable_host(host: str) -> bool:
    """Whether both the resolver (IDNA 2003) and httpx (IDNA 2008) accept the host: one they
    refuse can never be sent to, and would crash every attempt instead of failing it."""
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
        return True
    except ValueError:
        pass
    try:
        host.encode("idna")
        httpx.URL(f"http://{host}/")
    except (UnicodeError, httpx.InvalidURL):
        return False
    return True


def validate_url(url: str, *, allow_private: bool) -> str:
    """http(s) with a host and no credentials; a literal private/loopback address or
    `localhost` is refused unless allowed. Host names are checked again when sending, against
    every address they resolve to."""
    cleaned = url.strip()
    if not cleaned or len(cleaned) > MAX_URL_CHARS:
        raise BadUserInput(f"url: 1 to {MAX_URL_CHARS} characters")
    try:
        parts = urlsplit(cleaned)
        port = parts.port
    except ValueError as exc:
        raise BadUserInput(f"url: not a valid URL ({exc})") from None
    if parts.scheme not in {"http", "https"}:
        raise BadUserInput("url: only http and https URLs are allowed")
    host = parts.hostname
    if not host:
        raise BadUserInput("url: has no host")
    if parts.username is not None or parts.password is not None:
        raise BadUserInput("url: must not contain credentials; the signature authenticates us")
    if any(ch.isspace() or ord(ch) < 32 for ch in cleaned):
        raise BadUserInput("url: must not contain spaces or control characters")
    if port == 0:
        raise BadUserInput("url: invalid port")
    if not allow_private:
        literal = literal_address(host)
        name = host.rstrip(".").lower()
        if literal is None and (name == "localhost" or name.endswith(".localhost")):
            raise BadUserInput("url: private and loopback addresses are not allowed")
        if literal is not None and _blocked_address(str(literal)):
            raise BadUserInput("url: private and loopback addresses are not allowed")
    if not _sendable_host(host):
        raise BadUserInput("url: the host is not a valid domain name or IP address")
    return cleaned


def _secret(given: str | None) -> str:
    if given is None:
        return "whsec_" + secrets.token_urlsafe(32)
    if not MIN_SECRET_CHARS <= len(given) <= MAX_SECRET_CHARS or not given.isprintable():
        raise BadUserInput(f"secret: {MIN_SECRET_CHARS} to {MAX_SECRET_CHARS} printable characters")
    return given


@dataclass(frozen=True, slots=True)
class EndpointInput:
    url: str
    events: Sequence[WebhookEvent]
    secret: str | None = None
    description: str | None = None


async def create_endpoint(
    session: AsyncSession, data: EndpointInput, *, allow_private: bool
) -> tuple[WebhookEndpoint, str]:
    """The endpoint and its secret (shown to the admin once, at creation)."""
    url = validate_url(data.url, allow_private=allow_private)
    events = list(dict.fromkeys(data.events))
    if not events:
        raise BadUserInput("events: choose at least one event")
    if data.description is not None and (
        len(data.description) > 2000 or "\x00" in data.description
    ):
        raise BadUserInput("description: at most 2000 characters, no NUL characters")
    count = (await session.execute(select(func.count()).select_from(WebhookEndpoint))).scalar_one()
    if count >= MAX_ENDPOINTS:
        raise BadUserInput(f"At most {MAX_ENDPOINTS} webhook endpoints")
    secret = _secret(data.secret)
    endpoint = WebhookEndpoint(
        url=url, events=events, secret=secret, description=data.description, is_active=True
    )
    session.add(endpoint)
    await session.flush()
    await session.refresh(endpoint)
    return endpoint, secret


async def delete_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> None:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound("Webhook endpoint")
    await session.delete(endpoint)
    await session.flush()


async def list_endpoints(session: AsyncSession) -> Sequence[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    return (await session.execute(query)).scalars().all()


# --- deliveries --------------------------------------------------------------------------------


def event_for(call: Call) -> WebhookEvent | None:
    if call.status is CallStatus.SUCCESS:
        return WebhookEvent.CALL_SUCCEEDED
    if call.status is CallStatus.FAIL:
        return WebhookEvent.CALL_FAILED
    return None


def _body(delivery_id: uuid.UUID, event: WebhookEvent, call: Call) -> str:
    payload = {
        "id": str(delivery_id),
        "type": event.value,
        "createdAt": datetime.now(UTC).isoformat(),
        "data": {
            "call": {
                "id": to_global_id("Call", call.id),
                "status": call.status.value,
                "error": call.error,
                "filename": call.filename,
                "agentId": to_global_id("User", call.owner_id),
                "durationSeconds": call.duration_s,
                "finishedAt": call.finished_at.isoformat() if call.finished_at else None,
            }
        },
    }
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


async def record_call_event(session: AsyncSession, call: Call) -> list[uuid.UUID]:
    """In the transaction that ends `call`: one PENDING delivery per subscribed endpoint.
    Returns their ids for the worker to send after the commit."""
    event = event_for(call)
    if event is None:
        return []
    endpoints = (
        await session.execute(
            select(WebhookEndpoint.id).where(
                WebhookEndpoint.is_active.is_(True), WebhookEndpoint.events.contains([event])
            )
        )
    ).scalars()
    ids = []
    for endpoint_id in endpoints:
        delivery_id = uuid.uuid4()
        session.add(
            WebhookDelivery(
                id=delivery_id,
                endpoint_id=endpoint_id,
                call_id=call.id,
                event=event,
                body=_body(delivery_id, event, call),
                status=DeliveryStatus.PENDING,
                attempts=0,
            )
        )
        ids.append(delivery_id)
    await session.flush()
    return ids


@dataclass(frozen=True, slots=True)
class DeliveryPage:
    deliveries: Sequence[WebhookDelivery]
    attempts: dict[uuid.UUID, list[WebhookAttempt]]
    has_next_page: bool


async def list_deliveries(
    session: AsyncSession,
    *,
    endpoint_id: uuid.UUID | None,
    call_id: uuid.UUID | None,
    first: int,
    after: tuple[datetime, uuid.UUID] | None,
) -> DeliveryPage:
    """Newest first, keyset-paginated on (created_at, id), with every attempt."""
    query = select(WebhookDelivery)
    if endpoint_id is not None:
        query = query.where(WebhookDelivery.endpoint_id == endpoint_id)
    if call_id is not None:
        query = query.where(WebhookDelivery.call_id == call_id)
    if after is not None:
        created_at, delivery_id = after
        query = query.where(
            or_(
                WebhookDelivery.created_at < created_at,
                and_(WebhookDelivery.created_at == created_at, WebhookDelivery.id < delivery_id),
            )
        )
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    rows = list((await session.execute(query.limit(first + 1))).scalars())
    page = rows[:first]
    attempts: dict[uuid.UUID, list[WebhookAttempt]] = {d.id: [] for d in page}
    if page:
        for attempt in (
            await session.execute(
                select(WebhookAttempt)
                .where(WebhookAttempt.delivery_id.in_(list(attempts)))
                .order_by(WebhookAttempt.delivery_id, WebhookAttempt.number)
            )
        ).scalars():
            attempts[attempt.delivery_id].append(attempt)
    return DeliveryPage(page, attempts, len(rows) > first)


# --- sending (worker side) ---------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: str) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256)
    return f"t={timestamp},v1={digest.hexdigest()}"


def standard_webhooks_secret(secret: str) -> str:
    """The endpoint's secret in the Standard Webhooks form (`whsec_` + base64 of its bytes)."""
    return "whsec_" + base64.b64encode(secret.encode()).decode()


def standard_webhooks_headers(
    secret: str, delivery_id: uuid.UUID, timestamp: int, body: str
) -> dict[str, str]:
    signed_at = datetime.fromtimestamp(timestamp, tz=UTC)
    signature = Webhook(secret.encode()).sign(str(delivery_id), signed_at, body)
    return {
        "webhook-id": str(delivery_id),
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature,
    }


def verify_signature(secret: str, header: str, body: str, *, tolerance_s: int = 300) -> bool:
    """What a receiver does (used by our tests, and documented for integrators)."""
    fields = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    try:
        timestamp = int(fields["t"])
    except (KeyError, ValueError):
        return False
    if abs(time.time() - timestamp) > tolerance_s:
        return False
    expected = sign(secret, timestamp, body).split("v1=", 1)[1]
    return hmac.compare_digest(expected, fields.get("v1", ""))


class TargetRefused(Exception):
    """The endpoint resolves to an address we may not call."""


async def check_target(url: str, *, allow_private: bool) -> None:
    """At send time: every address the host resolves to must be public (unless allowed)."""
    if allow_private:
        return
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(RESOLVE_TIMEOUT_S):
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise TargetRefused(f"could not resolve {host}: {exc}") from None
    for info in infos:
        address = str(info[4][0])
        if _blocked_address(address):
            raise TargetRefused(f"{host} resolves to a private or loopback address")


@dataclass(frozen=True, slots=True)
class SendOutcome:
    status_code: int | None
    error: str | None
    duration_ms: int

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        """Network faults, timeouts, 408, 429 and 5xx may pass later; other answers will not."""
        if self.status_code is None:
            return self.error is None or not self.error.startswith("refused:")
        return self.status_code in {408, 429} or self.status_code >= 500


async def send(
    client: httpx.AsyncClient,
    delivery: WebhookDelivery,
    endpoint: WebhookEndpoint,
    *,
    allow_private: bool,
) -> SendOutcome:
    started = time.monotonic()

    def elapsed() -> int:
        return int((time.monotonic() - started) * 1000)

    try:
        await check_target(endpoint.url, allow_private=allow_private)
    except TargetRefused as exc:
        return SendOutcome(None, f"refused: {exc}"[:MAX_ERROR_CHARS], elapsed())
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Ovozly-Webhooks/1",
        SIGNATURE_HEADER: sign(endpoint.secret, timestamp, delivery.body),
        EVENT_HEADER: delivery.event.value,
        DELIVERY_HEADER: str(delivery.id),
        **standard_webhooks_headers(endpoint.secret, delivery.id, timestamp, delivery.body),
    }
    try:
        async with client.stream(
            "POST", endpoint.url, content=delivery.body.encode(), headers=headers
        ) as response:
            # Read at most a little of the answer: a receiver cannot make us buffer a lot.
            async for _ in response.aiter_raw(RESPONSE_PEEK_BYTES):
                break
            return SendOutcome(response.status_code, None, elapsed())
    except httpx.InvalidURL as exc:
        # Not an HTTPError: without this the job would crash, log no attempt, and the sweep
        # would send it again every few minutes, for ever.
        return SendOutcome(None, f"refused: {exc}"[:MAX_ERROR_CHARS], elapsed())
    except httpx.TimeoutException:
        return SendOutcome(None, "timed out", elapsed())
    except httpx.HTTPError as exc:
        return SendOutcome(None, f"{type(exc).__name__}: {exc}"[:MAX_ERROR_CHARS], elapsed())


def backoff_s(attempt: int, *, base_s: float, max_s: float) -> float:
    """Delay before attempt `attempt + 1`: base * 2^(attempt-1), capped, with up to 10 %
    jitter so many failed deliveries do not retry in lockstep."""
    delay = min(max_s, base_s * 2 ** max(0, attempt - 1))
    return float(delay * (1 + secrets.randbelow(100) / 1000))


async def _locked_pending(session: AsyncSession, delivery_id: uuid.UUID) -> WebhookDelivery | None:
    """The delivery, row-locked, while it is still PENDING; None once it is settled or gone."""
    query = select(WebhookDelivery).where(WebhookDelivery.id == delivery_id).with_for_update()
    delivery = (await session.execute(query)).scalar_one_or_none()
    if delivery is None or delivery.status is not DeliveryStatus.PENDING:
        return None
    return delivery


async def lock_pending(
    session: AsyncSession, delivery_id: uuid.UUID
) -> tuple[WebhookDelivery, WebhookEndpoint] | None:
    delivery = await _locked_pending(session, delivery_id)
    if delivery is None:
        return None
    endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.is_active:
        delivery.status = DeliveryStatus.FAILED
        delivery.finished_at = datetime.now(UTC)
        await session.flush()
        return None
    return delivery, endpoint


async def record_attempt(
    session: AsyncSession,
    delivery_id: uuid.UUID,
    outcome: SendOutcome,
    *,
    max_attempts: int,
    backoff_base_s: float,
    backoff_max_s: float,
) -> WebhookDelivery | None:
    """Logs the attempt; a delivery still PENDING gets its next attempt enqueued, deferred
    by the backoff, after the commit."""
    delivery = await _locked_pending(session, delivery_id)
    if delivery is None:
        return None
    delivery.attempts += 1
    session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            number=delivery.attempts,
            status_code=outcome.status_code,
            error=outcome.error,
            duration_ms=outcome.duration_ms,
        )
    )
    if outcome.succeeded:
        delivery.status = DeliveryStatus.SUCCEEDED
    elif not outcome.retryable or delivery.attempts >= max_attempts:
        delivery.status = DeliveryStatus.FAILED
    if delivery.status is not DeliveryStatus.PENDING:
        delivery.finished_at = datetime.now(UTC)
    else:
        delay = backoff_s(delivery.attempts, base_s=backoff_base_s, max_s=backoff_max_s)
        after_commit(session).enqueue_webhook_delivery(
            delivery.id, delivery.attempts + 1, defer_s=delay
        )
    await session.flush()
    return delivery


async def stranded_deliveries(
    session: AsyncSession, *, first_after_s: float, retry_after_s: float, limit: int = 500
) -> list[tuple[uuid.UUID, int]]:
    """PENDING deliveries whose next attempt was evidently never queued (Redis lost the job,
    or the enqueue after the commit failed): never tried for `first_after_s`, or last tried
    longer ago than any backoff. Returns (delivery id, next attempt number)."""
    now = datetime.now(UTC)
    last_attempt = (
        select(func.max(WebhookAttempt.created_at))
        .where(WebhookAttempt.delivery_id == WebhookDelivery.id)
        .scalar_subquery()
    )
    rows = await session.execute(
        select(WebhookDelivery.id, WebhookDelivery.attempts)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            or_(
                and_(
                    WebhookDelivery.attempts == 0,
                    WebhookDelivery.created_at < now - timedelta(seconds=first_after_s),
                ),
                and_(
                    WebhookDelivery.attempts > 0,
                    last_attempt < now - timedelta(seconds=retry_after_s),
                ),
            ),
        )
        .order_by(WebhookDelivery.created_at)
        .limit(limit)
    )
    return [(row.id, row.attempts + 1) for row in rows]
