"""The GraphQL endpoint's transport rules, on top of Strawberry's FastAPI router.

* Every malformed body is a 400 with a message saying what is wrong (Strawberry answers some,
  e.g. a JSON `null` body, invalid UTF-8, JSON nested past the parser's recursion limit or a
  multipart `map` that is a list, with a 500).
* GraphQL over HTTP: a client whose `Accept` prefers `application/graphql-response+json`
  gets that media type, and a request error (a document that does not parse or validate,
  variables that do not coerce) is a 400 without a `data` entry, as the spec says.
  `application/json` answers are Strawberry's: 200 for every well-formed request.
* Subscriptions are served over WebSocket only: one sent over HTTP is a request error
  (BAD_USER_INPUT), not an attempt to stream it.
* Each request runs within a wall-clock budget; past it the answer is an error, never a hang.
* A multipart upload maps each file to exactly one variable: one file feeding two mutations
  would be read twice (the second read sees an exhausted stream), so it is refused up front.
* WebSockets: a per-process cap at the handshake; the token is checked at `connection_init`
  and a bad or missing one closes the socket with 4403 before any operation; a per-user cap;
  and the socket is registered so a credentials change closes it.
* Subscription events shared by many subscribers are relayed as ready-made `next` payloads
  (`SubscriptionLane`, app/schema/fan_out.py): the same frames, without each subscriber
  running Strawberry's per-result pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any, cast

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from graphql import GraphQLError
from starlette.requests import Request
from starlette.responses import Response
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.exceptions import MissingQueryError
from strawberry.fastapi import GraphQLRouter
from strawberry.file_uploads.utils import replace_placeholders_with_files
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
)
from strawberry.types import ExecutionResult
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UNSET
from strawberry.utils.aio import aclosing

from app.api.ws_connections import ConnectionLimitReached
from app.core.errors import ErrorCode, OvozlyError
from app.schema.context import Context
from app.schema.fan_out import SubscriptionLane

if TYPE_CHECKING:
    from strawberry.schema.schema import StreamResult

logger = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403
GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
GRAPHQL_RESPONSE_CONTENT_TYPE = f"{GRAPHQL_RESPONSE_JSON}; charset=utf-8"


def _bad_request(message: str) -> HTTPException:
    return HTTPException(400, message)


def _loaded_json(raw: str | bytes, what: str, not_json: str | None = None) -> Any:
    """json.loads with each way it fails told apart: the standard library raises
    UnicodeDecodeError for bytes that are not UTF-8 and RecursionError for nesting past
    the interpreter's limit (100,000 `[`), neither a JSONDecodeError."""
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise _bad_request(f"{what} is not valid UTF-8") from exc
    except RecursionError as exc:
        raise _bad_request(f"{what} is JSON nested too deeply") from exc
    except json.JSONDecodeError as exc:
        raise _bad_request(not_json or f"{what} is not valid JSON") from exc


def _decoded_json(raw: object, what: str) -> Any:
    if not isinstance(raw, (str, bytes)):
        raise _bad_request(f"{what} must be a JSON text field")
    return _loaded_json(raw, what)


def _quality(parameters: str) -> float:
    for parameter in parameters.split(";"):
        name, _, value = parameter.strip().partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value)
            except ValueError:
                return 0.0
    return 1.0


def prefers_graphql_response_json(accept: str | None) -> bool:
    """Whether `Accept` asks for application/graphql-response+json at least as much as for
    application/json (absent, or `*/*` alone, means application/json)."""
    graphql_quality = json_quality = 0.0
    for item in (accept or "").split(","):
        media_type, _, parameters = item.partition(";")
        media_type = media_type.strip().lower()
        if media_type == GRAPHQL_RESPONSE_JSON:
            graphql_quality = max(graphql_quality, _quality(parameters))
        elif media_type == "application/json":
            json_quality = max(json_quality, _quality(parameters))
    return graphql_quality > 0 and graphql_quality >= json_quality


def is_request_error(result: ExecutionResult) -> bool:
    """No execution started: the document did not parse or validate, or the variables did
    not coerce. Field errors carry a path; these do not."""
    return (
        result.data is None
        and bool(result.errors)
        and all(error.path is None for error in result.errors or ())
    )


def request_error(message: str) -> ExecutionResult:
    """A request error made here, outside the schema's error extension: the code is set
    directly."""
    error = GraphQLError(message, extensions={"code": ErrorCode.BAD_USER_INPUT.value})
    return ExecutionResult(data=None, errors=[error])


def _checked_files_map(files_map: object, file_names: Mapping[str, Any]) -> dict[str, list[str]]:
    """The multipart `map`: an object from file field name to the one variable path it fills."""
    if not isinstance(files_map, dict):
        raise _bad_request(
            'The multipart `map` must be a JSON object such as {"0": ["variables.file"]}'
        )
    for name, paths in files_map.items():
        if name not in file_names:
            raise _bad_request(f"The multipart `map` names file {name!r}, which was not sent")
        if not isinstance(paths, list) or not paths or not all(isinstance(p, str) for p in paths):
            raise _bad_request(
                f"The multipart `map` entry {name!r} must be a list with one variable path"
            )
        if len(paths) > 1:
            raise _bad_request(
                f"File {name!r} is mapped to {len(paths)} variables; each uploaded file may "
                "fill one variable only (send the file once per upload)"
            )
        if not paths[0].startswith("variables."):
            raise _bad_request(f"The multipart `map` path {paths[0]!r} must point into `variables`")
    return cast(dict[str, list[str]], files_map)


class OvozlyTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    async def handle_connection_init(self, message: ConnectionInitMessage) -> None:
        payload = message.get("payload", {})
        if self.connection_init_received or not isinstance(payload, dict):
            # Strawberry answers these protocol errors (4429, 4400).
            await super().handle_connection_init(message)
            return
        context = self.context
        context.connection_params = payload
        try:
            viewer = await context.viewer()
            if viewer is None:
                raise OvozlyError("Authentication required")
        except OvozlyError:
            self.connection_init_received = True
            if self.connection_init_timeout_task:
                self.connection_init_timeout_task.cancel()
            await self.websocket.close(CLOSE_FORBIDDEN, "Forbidden: invalid or missing token")
            return
        websocket = context.connection
        if isinstance(websocket, WebSocket):
            try:
                context.resources.websockets.bind(websocket, viewer.id, viewer.token_version)
            except ConnectionLimitReached as limit:
                self.connection_init_received = True
                if self.connection_init_timeout_task:
                    self.connection_init_timeout_task.cancel()
                await self.websocket.close(limit.code, limit.reason)
                return
        await super().handle_connection_init(message)

    # -- subscription events relayed as ready-made payloads ----------------------------------

    async def run_operation(self, operation: Operation[Context, None]) -> None:
        # Each operation runs in a task of its own, so the lane is this operation's.
        lane = (
            SubscriptionLane.open()
            if self.context.settings.ws_relay_shared_payloads
            and isinstance(self.websocket, ASGIWebSocketAdapter)
            else None
        )
        try:
            await super().run_operation(operation)
        finally:
            if lane is not None:
                lane.close()

    async def _send_result_stream(
        self, operation: Operation[Context, None], result_source: StreamResult
    ) -> None:
        lane = SubscriptionLane.current()
        if lane is None:
            await super()._send_result_stream(operation, result_source)
            return
        relayed = self._relayed(operation, result_source, lane)
        async with aclosing(relayed):
            await super()._send_result_stream(operation, relayed)

    async def _relayed(
        self,
        operation: Operation[Context, None],
        result_source: StreamResult,
        lane: SubscriptionLane,
    ) -> AsyncGenerator[Any, None]:
        """The stock results, and between them the events whose payload is ready-made,
        sent as they come; Strawberry sends what this yields (the first result, and each
        event the lane handed back to the stock pipeline)."""
        frame_start: str | None = None
        async for result in result_source:
            yield result
            if not lane.attached:
                continue
            if frame_start is None:
                try:
                    id_text = orjson.dumps(operation.id).decode()
                except TypeError:
                    continue
                frame_start = f'{{"id":{id_text},"type":"next","payload":'
            while not operation.completed:
                payload = await lane.next_payload()
                if payload is None:
                    break  # the stock pipeline has the event: take its result
                # Byte for byte what encoding the message {"id", "type", "payload"} gives.
                await self._send_text(frame_start + payload + "}")

    async def send_message(self, message: Message) -> None:
        lane = SubscriptionLane.current()
        if lane is None or message["type"] != "next":
            await super().send_message(message)
            return
        # A stock `next` in a lane's operation: its payload is encoded once, and offered to
        # the lane for the other subscribers of the same event.
        payload = message["payload"]
        try:
            payload_text = orjson.dumps(payload).decode()
            id_text = orjson.dumps(message["id"]).decode()
        except TypeError:
            lane.record(None, has_extensions=False)
            await super().send_message(message)
            return
        lane.record(payload_text, has_extensions="extensions" in payload)
        await self._send_text(f'{{"id":{id_text},"type":"next","payload":{payload_text}}}')

    async def _send_text(self, text: str) -> None:
        """What `send_message` does with an encoded message (ASGIWebSocketAdapter)."""
        websocket = cast(ASGIWebSocketAdapter, self.websocket).ws
        try:
            await websocket.send({"type": "websocket.send", "text": text})
        except WebSocketDisconnect as exc:
            raise WebSocketDisconnected from exc


class OvozlyGraphQLRouter(GraphQLRouter[Context, None]):
    graphql_transport_ws_handler_class = OvozlyTransportWSHandler

    def __init__(
        self, *args: Any, request_budget_s: float, upload_budget_s: float, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.request_budget_s = request_budget_s
        self.upload_budget_s = upload_budget_s

    def encode_json(self, data: object) -> str:
        """orjson: a 60-minute call's transcript is a ~1 MB response, which the standard
        library encodes about ten times slower. Text, not bytes, so WebSocket messages stay
        text frames. Anything orjson refuses (an integer beyond 64 bits, a non-string key)
        goes to the standard library, as before."""
        try:
            return orjson.dumps(data).decode()
        except TypeError:
            return json.dumps(data, separators=(",", ":"))

    def parse_json(self, data: str | bytes) -> Any:
        parsed = _loaded_json(data, "The request body", "Unable to parse request body as JSON")
        if not isinstance(parsed, (dict, list)):
            raise _bad_request(
                'The request body must be a JSON object such as {"query": "{ me { id } }"}'
            )
        return parsed

    async def parse_multipart(self, request: AsyncHTTPRequestAdapter) -> dict[str, str]:
        try:
            form_data = await request.get_form_data()
        except ValueError as exc:
            raise _bad_request("Unable to parse the multipart body") from exc
        if "operations" not in form_data.form:
            raise _bad_request("The multipart body has no `operations` field")
        operations = _decoded_json(form_data.form["operations"], "The multipart `operations`")
        if not isinstance(operations, dict):
            raise _bad_request("The multipart `operations` must be one JSON object")
        files_map = _checked_files_map(
            _decoded_json(form_data.form.get("map", "{}"), "The multipart `map`"),
            form_data.files,
        )
        try:
            return replace_placeholders_with_files(operations, files_map, form_data.files)
        except (KeyError, IndexError, ValueError, TypeError) as exc:
            raise _bad_request(
                "A multipart `map` path does not name a variable of the operation"
            ) from exc

    async def parse_http_body(
        self, request: AsyncHTTPRequestAdapter
    ) -> GraphQLRequestData | list[GraphQLRequestData]:
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData) and not isinstance(
            data.operation_name, (str, type(None))
        ):
            raise _bad_request("The GraphQL operation's `operationName` must be a string or null")
        return data

    async def execute_single(
        self,
        request: Any,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Any,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry 0.341.2's (pinned), within the request budget, and without
        subscriptions: Strawberry would accept one over HTTP and fail inside the executor
        (they are served over WebSocket only).

        A mutation stopped by the budget is rolled back with its unit of work; one stopped
        between its commit and its effects leaves its job to the recovery sweep, as a
        worker crash would."""
        method = request_adapter.method
        allowed = {OperationType.QUERY, OperationType.MUTATION}
        if method == "GET":
            allowed = {OperationType.QUERY} if self.allow_queries_via_get else set()
        content_type = (request_adapter.content_type or "").lower()
        uploading = content_type.startswith("multipart/form-data")
        budget_s, setting = (
            (self.upload_budget_s, "GRAPHQL_UPLOAD_BUDGET_S")
            if uploading
            else (self.request_budget_s, "GRAPHQL_REQUEST_BUDGET_S")
        )
        try:
            async with asyncio.timeout(budget_s):
                return await self.schema.execute(
                    request_data.query,
                    root_value=root_value,
                    variable_values=request_data.variables,
                    context_value=context,
                    operation_name=request_data.operation_name,
                    allowed_operation_types=allowed,
                    operation_extensions=request_data.extensions,
                )
        except InvalidOperationTypeError as exc:
            if exc.operation_type is OperationType.SUBSCRIPTION:
                return request_error(
                    "Subscriptions are served over WebSocket (the graphql-transport-ws "
                    "protocol at /graphql), not over HTTP"
                )
            raise HTTPException(400, exc.as_http_error_reason(method)) from exc
        except TimeoutError:
            logger.warning("GraphQL request stopped after its %s s budget (%s)", budget_s, setting)
            return request_error(
                f"The request did not finish within its {budget_s:g} s budget and was "
                f"stopped (limit set by {setting})"
            )
        except CannotGetOperationTypeError as exc:  # as Strawberry's view answers them
            raise HTTPException(400, exc.as_http_error_reason()) from exc
        except MissingQueryError as exc:
            raise HTTPException(400, "No GraphQL query found in the request") from exc

    async def process_result(self, request: Any, result: ExecutionResult) -> GraphQLHTTPResponse:
        processed = await super().process_result(request, result)
        if isinstance(request, Request) and prefers_graphql_response_json(
            request.headers.get("accept")
        ):
            request.state.graphql_response_json = True
            if is_request_error(result):
                # The spec: a request error has no `data` entry and a 4xx status.
                processed.pop("data", None)
                request.state.graphql_request_error = True
        return processed

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        if not self.is_websocket_request(request):
            response = await super().run(request, context, root_value)
            state = request.state
            if isinstance(response, Response) and getattr(state, "graphql_response_json", False):
                response.headers["content-type"] = GRAPHQL_RESPONSE_CONTENT_TYPE
                if getattr(state, "graphql_request_error", False):
                    response.status_code = 400
            return response
        websocket_context = cast(Context, context)
        registry = websocket_context.resources.websockets
        try:
            registry.admit(request)
        except ConnectionLimitReached as limit:
            subprotocol = await self.pick_websocket_subprotocol(request)
            await request.accept(subprotocol=subprotocol)
            with contextlib.suppress(Exception):
                await request.close(limit.code, limit.reason)
            return request
        try:
            return await super().run(request, context, root_value)
        finally:
            registry.release(request)
