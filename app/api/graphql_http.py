"""The GraphQL endpoint's transport rules, on top of Strawberry's FastAPI router.

* Every malformed body is a 400 with a message saying what is wrong (Strawberry answers some,
  e.g. a JSON `null` body or a multipart `map` that is a list, with a 500).
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

import contextlib
import json
from collections.abc import AsyncGenerator, Mapping
from typing import TYPE_CHECKING, Any, cast

import orjson
from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.websockets import WebSocket, WebSocketDisconnect
from strawberry.asgi import ASGIWebSocketAdapter
from strawberry.fastapi import GraphQLRouter
from strawberry.file_uploads.utils import replace_placeholders_with_files
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
    Operation,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ConnectionInitMessage,
    Message,
)
from strawberry.types.unset import UNSET
from strawberry.utils.aio import aclosing

from app.api.ws_connections import ConnectionLimitReached
from app.core.errors import OvozlyError
from app.schema.context import Context
from app.schema.fan_out import SubscriptionLane

if TYPE_CHECKING:
    from strawberry.schema.schema import StreamResult

CLOSE_FORBIDDEN = 4403


def _bad_request(message: str) -> HTTPException:
    return HTTPException(400, message)


def _decoded_json(raw: object, what: str) -> Any:
    if not isinstance(raw, (str, bytes)):
        raise _bad_request(f"{what} must be a JSON text field")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise _bad_request(f"{what} is not valid JSON") from exc


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
        parsed = super().parse_json(data)
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

    async def run(self, request: Any, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        if not self.is_websocket_request(request):
            return await super().run(request, context, root_value)
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
