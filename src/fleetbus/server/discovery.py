"""What an OAuth-capable client finds when it asks an HTTP fleetbus how to authenticate.

fleetbus's own tokens come from `fleetbus token mint` on the server, through no OAuth flow, so with only those there
is no authorization server to name. Then no RFC 9728 resource metadata is served (a document naming no authorization
server leaves clients guessing: the SDKs take the MCP server itself for one and probe it for OAuth endpoints), the
401's Bearer challenge (RFC 6750) says which token to send and where it comes from, and the OAuth discovery paths
clients probe answer 404 with the same words. With `[jwt]` configured, the external issuer is the authorization
server: the metadata names it (with fleetbus's scopes), the challenge points at the metadata, and a client that can
run OAuth gets its token there; fleetbus's own tokens keep working beside it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from fleetbus.guard.scopes import SCOPES

REALM = "fleetbus"
WELL_KNOWN_RESOURCE = "/.well-known/oauth-protected-resource"
MINT = "fleetbus token mint --name NAME --scopes read"
OAUTH_PATHS = (
    "/.well-known/oauth-protected-resource",
    "/.well-known/oauth-authorization-server",
    "/.well-known/openid-configuration",
    "/register",
    "/authorize",
    "/token",
)
"""Where OAuth clients look (RFC 9728, RFC 8414, OIDC discovery; the 2025-03-26 default endpoints), each also with
the MCP path appended or inserted; answered only where nothing real is served there."""


@dataclass(frozen=True)
class Discovery:
    """How this server authenticates, as clients are told it: its MCP URL and the external issuer, if any."""

    resource: str
    """The MCP URL, e.g. http://127.0.0.1:8765/mcp: the resource its tokens are for."""
    issuer: str | None = None
    """The external authorization server (`[jwt] issuer`), or None: fleetbus's own tokens only."""

    @property
    def metadata_url(self) -> str | None:
        """RFC 9728 §3.1: the well-known path inserted before the resource's path; None without an issuer."""
        if self.issuer is None:
            return None
        parts = urlsplit(self.resource)
        return f"{parts.scheme}://{parts.netloc}{WELL_KNOWN_RESOURCE}{parts.path}"

    @property
    def explanation(self) -> str:
        """What a person configuring a client must do (plain ASCII without quotes: it goes into a header)."""
        own = f"mint a token on the server with `{MINT}` and send it as the header Authorization: Bearer TOKEN"
        if self.issuer is None:
            return f"fleetbus takes bearer tokens and runs no OAuth authorization server: {own}"
        return f"get a token from the authorization server {self.issuer} (OAuth), or {own}"

    def challenge(self, *, token_sent: bool) -> str:
        """The WWW-Authenticate value of a 401. RFC 6750 §3.1: no error code when the request carried no token."""
        parts = [f'realm="{REALM}"']
        if token_sent:
            parts += ['error="invalid_token"', f'error_description="{self.explanation}"']
        if self.metadata_url is not None:
            parts.append(f'resource_metadata="{self.metadata_url}"')
            parts.append(f'scope="{SCOPES[0]}"')
        return "Bearer " + ", ".join(parts)

    def routes(self) -> list[Route]:
        """The resource metadata when there is an issuer, and explained 404s on the OAuth paths nothing serves."""
        mcp_path = urlsplit(self.resource).path
        served: list[Route] = []
        if self.issuer is not None:
            served = [Route(f"{WELL_KNOWN_RESOURCE}{mcp_path}", self._metadata, methods=["GET", "OPTIONS"])]
        taken = {route.path for route in served}
        paths = [p for base in OAUTH_PATHS for p in (base, base + mcp_path, mcp_path + base) if p not in taken]
        return [*served, *(Route(path, self._not_here, methods=["GET", "POST"]) for path in paths)]

    def metadata(self) -> dict[str, Any]:
        """RFC 9728 resource metadata. URLs are given exactly as configured: clients compare an authorization
        server's issuer with this string (RFC 8414 §3.3), and a normalised "http://idp/" is not "http://idp"."""
        return {
            "resource": self.resource,
            "authorization_servers": [self.issuer],
            "scopes_supported": list(SCOPES),
            "bearer_methods_supported": ["header"],
            "resource_name": REALM,
        }

    async def _metadata(self, request: Request) -> Response:
        # Browser-based clients fetch it from another origin.
        cors = {"access-control-allow-origin": "*", "access-control-allow-methods": "GET, OPTIONS"}
        if request.method == "OPTIONS":
            return Response(status_code=204, headers={**cors, "access-control-allow-headers": "mcp-protocol-version"})
        return JSONResponse(self.metadata(), headers=cors)

    async def _not_here(self, request: Request) -> JSONResponse:
        return JSONResponse({"error": "not_found", "error_description": self.explanation}, status_code=404)


class BearerChallenge:
    """ASGI middleware around the SDK's app: every 401 it sends gets fleetbus's challenge and a JSON body saying
    what to do, instead of the SDK's generic "Authentication required" naming the server as its own OAuth server."""

    def __init__(self, app: ASGIApp, discovery: Discovery) -> None:
        self.app = app
        self.discovery = discovery

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        token_sent = any(name == b"authorization" for name, _ in scope.get("headers", []))
        replaced = False

        async def send_challenge(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start" and message["status"] == 401:
                replaced = True
                body = self._body(token_sent)
                headers = [
                    (name, value)
                    for name, value in message.get("headers", [])
                    if name.lower() not in (b"www-authenticate", b"content-length", b"content-type")
                ]
                headers += [
                    (b"www-authenticate", self.discovery.challenge(token_sent=token_sent).encode()),
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ]
                await send({**message, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            if replaced:  # the SDK's own body for the 401: ours went already
                return
            await send(message)

        await self.app(scope, receive, send_challenge)

    def _body(self, token_sent: bool) -> bytes:
        error = "invalid_token" if token_sent else "unauthorized"
        fields = {"error": error, "error_description": self.discovery.explanation}
        if self.discovery.metadata_url is not None:
            fields["resource_metadata"] = self.discovery.metadata_url
        return json.dumps(fields).encode()
