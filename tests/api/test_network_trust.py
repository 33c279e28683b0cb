"""What the API believes about the network: X-Forwarded-For only from trusted proxies, audio
link origins never from a forged Host, webhook hosts read as a resolver reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.api.main import create_app
from app.core.config import Environment, Settings
from app.core.errors import BadUserInput
from app.db.engine import SessionFactory
from app.db.models import Role
from app.services.audio_links import link_origin
from app.services.webhooks import validate_url
from tests.api.helpers import GraphQLClient, upload_ok
from tests.factories import make_user, tone_bytes

LOGIN = "mutation($u: String!, $p: String!) { login(username: $u, password: $p) { accessToken } }"
AUDIO = "query($id: ID!) { call(id: $id) { audioUrl } }"
PROXY = "10.0.0.5"


@pytest.fixture(scope="module")
async def proxied_app(settings: Settings) -> AsyncIterator[FastAPI]:
    """Production behind one trusted proxy, serving links for one allowed host."""
    production = settings.model_copy(
        update={
            "environment": Environment.PRODUCTION,
            "forwarded_allow_ips": [PROXY],
            "allowed_hosts": ["ovozly.example"],
        }
    )
    application = create_app(production)
    async with application.router.lifespan_context(application):
        yield application


def _client(app: FastAPI, peer: str) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(peer, 50000))
    return httpx.AsyncClient(transport=transport, base_url="http://testserver")


async def _failures_from_forged_addresses(client: httpx.AsyncClient, attempts: int) -> list[str]:
    codes = []
    for n in range(attempts):
        response = await client.post(
            "/graphql",
            json={"query": LOGIN, "variables": {"u": "agent1", "p": "wrong-password"}},
            headers={"X-Forwarded-For": f"198.51.100.{n + 1}"},
        )
        codes.append(response.json()["errors"][0]["extensions"]["code"])
    return codes


async def test_x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    app: FastAPI,
    proxied_app: FastAPI,
    http: httpx.AsyncClient,
    sessions: SessionFactory,
    settings: Settings,
) -> None:
    await make_user(sessions, "agent1")
    attempts = settings.login_free_failures + 2
    # A local client (the default: no proxy trusted) cannot pick a fresh throttle bucket
    # per request: its own address is the one counted, and the pair blocks.
    async with _client(app, "127.0.0.1") as local:
        codes = await _failures_from_forged_addresses(local, attempts)
    assert codes[-1] == "TOO_MANY_REQUESTS", codes
    # An untrusted peer of the proxied deployment is not believed either.
    async with _client(proxied_app, "192.0.2.50") as stranger:
        codes = await _failures_from_forged_addresses(stranger, attempts)
    assert codes[-1] == "TOO_MANY_REQUESTS", codes
    # The trusted proxy's forwarded clients are told apart: each its own pair.
    async with _client(proxied_app, PROXY) as proxy:
        codes = await _failures_from_forged_addresses(proxy, attempts)
    assert codes == ["UNAUTHENTICATED"] * attempts


async def test_audio_links_never_take_their_origin_from_a_forged_host(
    proxied_app: FastAPI, http: httpx.AsyncClient, sessions: SessionFactory, audio_dir: Path
) -> None:
    # An admin hears the original at once (agents only ever get the redacted copy, which a
    # just-uploaded call does not have yet).
    await make_user(sessions, "admin1", Role.ADMIN)
    async with _client(proxied_app, PROXY) as client:
        gql = GraphQLClient(client)
        token = await gql.login("admin1")
        call = await upload_ok(client, tone_bytes(audio_dir), token=token)
        headers = {"Authorization": f"Bearer {token}"}

        async def audio_url(host: str, **extra: str) -> dict[str, Any]:
            response = await client.post(
                "/graphql",
                json={"query": AUDIO, "variables": {"id": call["id"]}},
                headers={**headers, "Host": host, **extra},
            )
            body: dict[str, Any] = response.json()
            return body

        forged = await audio_url("evil.example")
        assert forged["data"] == {"call": {"audioUrl": None}}
        assert [e["extensions"]["code"] for e in forged["errors"]] == ["BAD_USER_INPUT"]
        served = await audio_url("ovozly.example", **{"X-Forwarded-Proto": "https"})
        assert str(served["data"]["call"]["audioUrl"]).startswith("https://ovozly.example/audio/")


def test_link_origin_rules() -> None:
    def origin(public: str | None, allowed: list[str], host: str) -> str:
        return link_origin(public, allowed, request_origin=f"http://{host}/", request_host=host)

    assert origin("https://o.example", [], "evil.example") == "https://o.example"
    assert origin("https://o.example", ["a.example"], "evil.example") == "https://o.example"
    assert origin(None, ["a.example"], "a.example:8443") == "http://a.example:8443/"
    assert origin(None, [], "localhost:8000") == "http://localhost:8000/"
    with pytest.raises(BadUserInput):
        origin(None, ["a.example"], "evil.example")


@pytest.mark.parametrize(
    "url",
    [
        "http://2130706433/",
        "http://0x7f000001/",
        "http://0x7F.1/",
        "http://0177.0.0.1/",
        "http://127.1/",
        "http://127.0.1/",
        "http://127.1./",
        "http://10.1/",
        "http://0xa9fea9fe/latest/meta-data/",
        "http://0/",
        "http://[::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://localhost./",
    ],
)
def test_webhook_hosts_are_read_as_a_resolver_reads_them(url: str) -> None:
    with pytest.raises(BadUserInput, match="private and loopback"):
        validate_url(url, allow_private=False)
    if "0177" not in url:  # httpx refuses leading zeros: never sendable, refused anyway
        assert validate_url(url, allow_private=True) == url


@pytest.mark.parametrize(
    "url",
    ["https://hooks.example.com/x", "http://93.184.215.14/", "http://1572394766/", "http://cafe/"],
)
def test_public_webhook_hosts_stay_accepted(url: str) -> None:
    assert validate_url(url, allow_private=False) == url


async def test_production_refuses_numeric_loopback_webhooks_at_registration(
    proxied_app: FastAPI, http: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    from app.db.models import Role

    await make_user(sessions, "admin", Role.ADMIN)
    create = (
        "mutation($url: String!) { createWebhookEndpoint(input: "
        "{url: $url, events: [CALL_SUCCEEDED]}) { endpoint { id } } }"
    )
    async with _client(proxied_app, PROXY) as client:
        gql = GraphQLClient(client)
        token = await gql.login("admin")
        for url in ("http://2130706433/", "http://0x7f000001/", "http://127.1/"):
            refused = await gql(create, {"url": url}, token=token)
            assert refused.codes == ["BAD_USER_INPUT"], (url, refused.errors)
            assert "private and loopback" in refused.errors[0]["message"]
        assert (await gql("{ webhookEndpoints { id } }", token=token)).data == {
            "webhookEndpoints": []
        }
