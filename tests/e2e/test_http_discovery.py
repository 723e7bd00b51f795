"""OAuth discovery against `fleetbus serve --transport http`, followed as an OAuth-capable client follows it (RFC 9728
resource metadata, RFC 8414 authorization server metadata, RFC 6750 challenges), with a plain HTTP client, the SDK's
own OAuth client and the MCP Inspector CLI.

With fleetbus's own tokens only, nothing may claim an authorization server that does not exist: clients learn from
the challenge and the 404s that a bearer token must be configured. With `[jwt]`, the resource metadata names the
external issuer, and an OAuth client reaches that issuer."""

from __future__ import annotations

import contextlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx2
import pytest
from mcp import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken
from pydantic import AnyUrl

from fleetbus.sandbox import Sandbox
from tests.e2e import inspector
from tests.e2e.serving import INITIALIZE, Served, http_server, mint, raw_post

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def own_tokens(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    state = tmp_path_factory.mktemp("discovery") / "state"
    mint(sandbox, state, "someone", "read")
    with http_server(sandbox, state) as served:
        yield served


def origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def test_with_its_own_tokens_fleetbus_names_no_authorization_server(own_tokens: Served) -> None:
    refused = raw_post(own_tokens.url, INITIALIZE)
    assert refused.status_code == 401
    # RFC 6750 §3.1: no error code for a request without a token; no resource metadata to point at.
    assert refused.headers["www-authenticate"] == 'Bearer realm="fleetbus"'
    assert "fleetbus token mint" in refused.json()["error_description"]
    wrong = raw_post(own_tokens.url, INITIALIZE, token="fleetbus_00000000_" + "A" * 43)
    assert wrong.status_code == 401
    challenge = wrong.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="fleetbus", error="invalid_token", error_description="')
    assert "runs no OAuth authorization server" in challenge
    assert "resource_metadata" not in challenge

    # Every place an OAuth client looks says the same, instead of a bare 404 or, worse, a metadata document
    # naming this server as an authorization server it is not.
    for path in (
        "/.well-known/oauth-protected-resource/mcp",
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server/mcp",
        "/.well-known/openid-configuration",
        "/register",
    ):
        answer = httpx2.get(origin(own_tokens.url) + path, timeout=30)
        assert answer.status_code == 404, path
        assert "fleetbus token mint" in answer.json()["error_description"], path


async def test_the_sdk_oauth_client_fails_without_inventing_a_login(own_tokens: Served) -> None:
    # The SDK's OAuth client falls back to probing the server itself; every probe is refused, so it can only fail,
    # never start an authorization anywhere.
    redirected: list[str] = []

    async def redirect(url: str) -> None:
        redirected.append(url)

    oauth = oauth_client(own_tokens.url, redirect)
    with pytest.raises(Exception):  # noqa: B017, PT011 — which exception the SDK raises is its business
        async with (
            httpx2.AsyncClient(auth=oauth, timeout=30) as http,
            Client(streamable_http_client(own_tokens.url, http_client=http)) as client,
        ):
            await client.list_tools()
    assert redirected == []


def test_the_inspector_reports_that_authentication_is_required(own_tokens: Served) -> None:
    refused = inspector.inspector(own_tokens.url, "--method", "tools/list")
    assert refused.returncode != 0
    assert "auth_required" in refused.stdout + refused.stderr


# ---- with an external issuer -------------------------------------------------------------------------------------


@contextlib.contextmanager
def authorization_server() -> Iterator[str]:
    """A stand-in OAuth authorization server on loopback (RFC 8414 metadata, dynamic client registration and a
    JWKS); yields its issuer URL."""

    class Handler(BaseHTTPRequestHandler):
        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            issuer = f"http://127.0.0.1:{port}"
            if self.path == "/.well-known/oauth-authorization-server":
                self._json(
                    200,
                    {
                        "issuer": issuer,
                        "authorization_endpoint": f"{issuer}/authorize",
                        "token_endpoint": f"{issuer}/token",
                        "registration_endpoint": f"{issuer}/register",
                        "response_types_supported": ["code"],
                        "code_challenge_methods_supported": ["S256"],
                    },
                )
            elif self.path == "/.well-known/jwks.json":
                self._json(200, {"keys": []})
            else:
                self._json(404, {"error": "not_found"})

        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", 0))
            registered = json.loads(self.rfile.read(length) or b"{}")
            self._json(201, {**registered, "client_id": "registered-client"})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        server.server_close()


class MemoryStorage:
    def __init__(self) -> None:
        self.tokens: OAuthToken | None = None
        self.client: OAuthClientInformationFull | None = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


class Redirected(Exception):
    """Stops the OAuth client where a person's browser would take over."""


def oauth_client(url: str, redirect: Any) -> OAuthClientProvider:
    metadata = OAuthClientMetadata(
        client_name="discovery-test", redirect_uris=[AnyUrl("http://127.0.0.1:1/callback")], scope="read"
    )

    async def callback() -> Any:
        raise Redirected

    return OAuthClientProvider(url, metadata, MemoryStorage(), redirect_handler=redirect, callback_handler=callback)


@pytest.fixture(scope="module")
def with_issuer(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Served, str]]:
    state = tmp_path_factory.mktemp("discovery-jwt") / "state"
    with authorization_server() as issuer:
        jwt = json.dumps({"issuer": issuer, "jwks_url": f"{issuer}/.well-known/jwks.json"})
        with http_server(sandbox, state, jwt=jwt) as served:
            yield served, issuer


def test_with_jwt_the_resource_metadata_names_the_issuer(with_issuer: tuple[Served, str]) -> None:
    server, issuer = with_issuer
    refused = raw_post(server.url, INITIALIZE)
    assert refused.status_code == 401
    metadata_url = origin(server.url) + "/.well-known/oauth-protected-resource/mcp"
    assert refused.headers["www-authenticate"] == (
        f'Bearer realm="fleetbus", resource_metadata="{metadata_url}", scope="read"'
    )
    metadata = httpx2.get(metadata_url, timeout=30).json()
    assert metadata["resource"] == server.url
    assert metadata["authorization_servers"] == [issuer]
    assert {"read", "units:write", "admin"} <= set(metadata["scopes_supported"])
    assert metadata["bearer_methods_supported"] == ["header"]
    # fleetbus itself is still no authorization server: its own metadata path says where to go instead.
    own = httpx2.get(origin(server.url) + "/.well-known/oauth-authorization-server", timeout=30)
    assert own.status_code == 404
    assert issuer in own.json()["error_description"]


async def test_with_jwt_an_oauth_client_is_sent_to_the_issuer(with_issuer: tuple[Served, str]) -> None:
    server, issuer = with_issuer
    redirected: list[str] = []

    async def redirect(url: str) -> None:
        redirected.append(url)

    oauth = oauth_client(server.url, redirect)
    with pytest.raises(Exception):  # noqa: B017, PT011 — stopped at the browser step (Redirected, wrapped)
        async with (
            httpx2.AsyncClient(auth=oauth, timeout=30) as http,
            Client(streamable_http_client(server.url, http_client=http)) as client,
        ):
            await client.list_tools()
    assert len(redirected) == 1
    authorize = urlsplit(redirected[0])
    assert f"{authorize.scheme}://{authorize.netloc}" == issuer
    query = parse_qs(authorize.query)
    assert query["resource"] == [server.url]  # RFC 8707: a token for this server, which checks the audience
    assert query["client_id"] == ["registered-client"]
