"""GraphQL over HTTP: the server audit of the npm package `graphql-http` (1.23.1,
`serverAudits`), each check ported to a Python case against the app over ASGI, so the suite
needs no npm. Where node and the package are installed (`GRAPHQL_HTTP_NODE_MODULES` names
the node_modules folder), the audit itself also runs against a real uvicorn."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.api.main import create_app
from app.core.config import Settings
from tests.factories import serving

GRAPHQL_RESPONSE = "application/graphql-response+json"
JSON = "application/json"
TYPE_QUERY = "query Type($name: String!) { __type(name: $name) { name } }"
UNKNOWN_FIELD = "{ 8f31403dfe404bccbb0e835f2629c6a7 }"


@dataclass(frozen=True)
class Audit:
    """One request of the audit and what its answer must show."""

    id: str
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=lambda: {"content-type": JSON})
    body: str | None = None
    params: dict[str, str] = field(default_factory=dict)
    status: tuple[int, int] = (200, 200)  # inclusive range
    content_type: str | None = None
    no_errors: bool = False
    no_data: bool = False


def _post(
    payload: Any, accept: str | None = None, *, raw: str | None = None, **expect: Any
) -> dict[str, Any]:
    headers = {"content-type": JSON}
    if accept is not None:
        headers["accept"] = accept
    return {"headers": headers, "body": raw if raw is not None else json.dumps(payload), **expect}


TYPENAME = {"query": "{ __typename }"}
OK = (200, 200)
BAD = (400, 400)

AUDITS = [
    Audit("22EB", **_post(TYPENAME, GRAPHQL_RESPONSE, content_type=GRAPHQL_RESPONSE)),
    Audit("4655", **_post(TYPENAME, JSON, content_type=JSON)),
    Audit("47DE", **_post(TYPENAME, "*/*", content_type=JSON)),
    Audit("80D8", **_post(TYPENAME, content_type=JSON)),
    Audit("82A3", **_post(TYPENAME)),
    Audit(
        "BF61",
        headers={"content-type": "application/json; charset=utf-8"},
        body=json.dumps({"query": '{ __type(name: "Run🏃Swim🏊") { name } }'}),
    ),
    Audit("78D5", **_post(TYPENAME)),
    Audit("2C94", **_post(TYPENAME)),
    Audit("5A70", method="GET", headers={}, params={"query": "{ __typename }"}),
    Audit(
        "9C48",
        method="GET",
        headers={"accept": GRAPHQL_RESPONSE},
        params={"query": "mutation { __typename }"},
        status=(400, 499),
    ),
    Audit("9ABE", headers={}, body=json.dumps(TYPENAME), status=(400, 499)),
    Audit("03D4", **_post(TYPENAME)),
    Audit("A5BF", headers={"content-type": JSON}, body=None, status=BAD),
    Audit("423L", **_post({"notquery": "{ __typename }"}, GRAPHQL_RESPONSE, status=BAD)),
    *[
        Audit(f"LKJ{index}", **_post({"query": invalid}, status=BAD))
        for index, invalid in enumerate([{"obj": "ect"}, 0, False, ["array"]])
    ],
    Audit("34A2", **_post(TYPENAME, GRAPHQL_RESPONSE)),
    Audit("13EE", **_post(TYPENAME, JSON, no_errors=True)),
    *[
        Audit(
            f"6C0{index}",
            **_post({"operationName": invalid, "query": "{ __typename }"}, status=BAD),
        )
        for index, invalid in enumerate([{"obj": "ect"}, 0, False, ["array"]])
    ],
    Audit(
        "8161",
        **_post(
            {"operationName": "Query", "query": "query Query { __typename }"}, GRAPHQL_RESPONSE
        ),
    ),
    Audit(
        "B8B3",
        **_post(
            {"operationName": "Query", "query": "query Query { __typename }"}, JSON, no_errors=True
        ),
    ),
    *[
        audit
        for index, parameter in enumerate(["variables", "operationName", "extensions"])
        for audit in (
            Audit(
                f"94B{index}",
                **_post({**TYPENAME, parameter: None}, GRAPHQL_RESPONSE, no_errors=True),
            ),
            Audit(f"022{index}", **_post({**TYPENAME, parameter: None}, JSON, no_errors=True)),
        )
    ],
    *[
        Audit(f"476{index}", **_post({**TYPENAME, "variables": invalid}, status=BAD))
        for index, invalid in enumerate(["string", 0, False, ["array"]])
    ],
    Audit(
        "2EA1",
        **_post({"query": TYPE_QUERY, "variables": {"name": "sometype"}}, GRAPHQL_RESPONSE),
    ),
    Audit(
        "28B9",
        **_post({"query": TYPE_QUERY, "variables": {"name": "sometype"}}, JSON, no_errors=True),
    ),
    *[
        Audit(
            audit_id,
            method="GET",
            headers={"accept": accept},
            params={"query": TYPE_QUERY, "variables": json.dumps({"name": "sometype"})},
            no_errors=True,
        )
        for audit_id, accept in (("D6D5", GRAPHQL_RESPONSE), ("6A70", JSON))
    ],
    *[
        Audit(f"58B{index}", **_post({**TYPENAME, "extensions": invalid}, status=BAD))
        for index, invalid in enumerate(["string", 0, False, ["array"]])
    ],
    Audit("428F", **_post({**TYPENAME, "extensions": {"some": "value"}}, GRAPHQL_RESPONSE)),
    Audit("1B7A", **_post({**TYPENAME, "extensions": {"some": "value"}}, JSON, no_errors=True)),
    Audit("B6DC", **_post(None, JSON, raw='{ "not a JSON', status=(200, 599))),
    Audit("BCF8", **_post(None, JSON, raw='{ "not a JSON', status=BAD)),
    Audit("B7N8", **_post(None, GRAPHQL_RESPONSE, raw='{ "not a JSON', status=BAD)),
    Audit("8764", **_post({"qeury": "{ __typename }"}, status=(400, 599))),
    Audit("3E3A", **_post({"qeury": "{ __typename }"}, status=BAD)),
    Audit("572B", **_post({"query": "{"}, JSON)),
    Audit("FDE2", **_post({"query": UNKNOWN_FIELD}, JSON)),
    Audit(
        "7B9B",
        **_post(
            {"query": "query CoerceFailure($id: ID!){ __typename }", "variables": {"id": None}},
            JSON,
        ),
    ),
    Audit("865D", **_post({"query": "{"}, GRAPHQL_RESPONSE, status=(400, 599))),
    Audit("556A", **_post({"query": "{"}, GRAPHQL_RESPONSE, status=BAD)),
    Audit("D586", **_post({"query": "{"}, GRAPHQL_RESPONSE, status=BAD, no_data=True)),
    Audit("51FE", **_post({"query": UNKNOWN_FIELD}, GRAPHQL_RESPONSE, status=(400, 599))),
    Audit("74FF", **_post({"query": UNKNOWN_FIELD}, GRAPHQL_RESPONSE, status=BAD)),
    Audit("5E5B", **_post({"query": UNKNOWN_FIELD}, GRAPHQL_RESPONSE, status=BAD, no_data=True)),
    Audit(
        "86EE",
        **_post(
            {"query": "query CoerceFailure($id: ID!){ __typename }", "variables": {"id": None}},
            GRAPHQL_RESPONSE,
            status=BAD,
        ),
    ),
]


def test_the_port_covers_every_audit_of_the_package() -> None:
    """61 audits in graphql-http 1.23.1's serverAudits, each ported once."""
    ids = [audit.id for audit in AUDITS]
    assert len(ids) == len(set(ids)) == 61


@pytest.mark.parametrize("audit", AUDITS, ids=[audit.id for audit in AUDITS])
async def test_graphql_over_http_audit(http: httpx.AsyncClient, audit: Audit) -> None:
    response = await http.request(
        audit.method,
        "/graphql",
        headers=audit.headers,
        content=audit.body.encode() if audit.body is not None else None,
        params=audit.params,
    )
    low, high = audit.status
    assert low <= response.status_code <= high, (response.status_code, response.text)
    response.content.decode("utf-8")  # 82A3: the answer is UTF-8
    if audit.content_type is not None:
        assert audit.content_type in response.headers["content-type"]
    if audit.no_errors or audit.no_data:
        body = response.json()
        if audit.no_errors:
            assert "errors" not in body, body
        if audit.no_data:
            assert "data" not in body, body


# --- the audit itself, where node and graphql-http are installed ------------------------------

AUDIT_SCRIPT = Path(__file__).with_name("graphql_http_audit.cjs")


def _audit_modules() -> Path | None:
    configured = os.environ.get("GRAPHQL_HTTP_NODE_MODULES")
    if not configured or shutil.which("node") is None:
        return None
    modules = Path(configured)
    return modules if (modules / "graphql-http" / "package.json").is_file() else None


@pytest.mark.skipif(
    _audit_modules() is None,
    reason="node or graphql-http not installed (set GRAPHQL_HTTP_NODE_MODULES to its "
    "node_modules; the Python port above runs every check regardless)",
)
async def test_the_graphql_http_audit_passes_against_uvicorn(
    settings: Settings, clean_database: None
) -> None:
    modules = _audit_modules()
    assert modules is not None
    async with serving(create_app(settings)) as address:
        audit = await asyncio.create_subprocess_exec(
            "node",
            str(AUDIT_SCRIPT),
            f"http://{address}/graphql",
            env={**os.environ, "NODE_PATH": str(modules)},
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        output, _ = await asyncio.wait_for(audit.communicate(), 120)
    text = output.decode()
    counts = json.loads(text.strip().splitlines()[-1])
    assert counts == {"ok": 61, "warn": 0, "error": 0}, text
