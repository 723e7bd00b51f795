"""The JSON-RPC answer to a malformed POST body on Streamable HTTP, as on stdio (fleetbus.server.frames).

The SDK answers a body that parses but is no message with -32602 "Validation error" (JSON-RPC says -32600), a batch
likewise, and takes `"id": null`, `1.5` or `true` for a notification (202, no answer ever). This wrapper sits
behind the SDK's authentication, in front of its transport: an unauthenticated client costs no parsing.
"""

from __future__ import annotations

import logging

from mcp.server.auth.middleware.bearer_auth import RequireAuthMiddleware
from starlette.applications import Starlette
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetbus.server.frames import BadFrame, decode

log = logging.getLogger(__name__)


class FrameCheck:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") != "POST":
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        decoded = decode(body)
        if isinstance(decoded, BadFrame):
            log.warning("HTTP: a bad body of %d bytes answered with %d: %s", len(body), decoded.code, decoded.message)
            payload = decoded.answer().model_dump_json(by_alias=True, exclude_unset=True).encode()
            headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
            await send({"type": "http.response.start", "status": 400, "headers": headers})
            await send({"type": "http.response.body", "body": payload})
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def check_frames(app: Starlette, path: str) -> None:
    """Put FrameCheck in front of the SDK's transport on `path` of its Starlette app — inside the SDK's
    RequireAuthMiddleware when there is one, so only an authenticated body is read."""
    for route in app.routes:
        if isinstance(route, Route) and route.path == path:
            endpoint = route.app
            if isinstance(endpoint, RequireAuthMiddleware):
                endpoint.app = FrameCheck(endpoint.app)
            else:
                route.app = FrameCheck(endpoint)
            return
    raise RuntimeError(f"the SDK's app has no route {path}")
