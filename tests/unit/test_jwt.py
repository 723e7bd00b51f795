"""JWTs from an external issuer: signature checked against its JWKS (served here on loopback), issuer, audience
and expiry required, scopes mapped to fleetbus's and everything else ignored."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from fleetbus.config import JwtSettings
from fleetbus.server.auth import StoredTokens, TokenStore, Verifiers
from fleetbus.server.issuer import IssuedTokens

ISSUER = "https://idp.example"
AUDIENCE = "http://127.0.0.1:8765/mcp"


def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


KEY = private_key()
OTHER_KEY = private_key()


@contextlib.contextmanager
def serving_jwks() -> Iterator[str]:
    """The issuer's JWKS (KEY's public half) on a loopback port; yields its URL."""
    public = json.loads(RSAAlgorithm.to_jwk(KEY.public_key()))
    body = json.dumps({"keys": [{**public, "kid": "k1", "use": "sig", "alg": "RS256"}]}).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def jwks_url() -> Iterator[str]:
    with serving_jwks() as url:
        yield url


def issued(jwks_url: str, **extra: Any) -> IssuedTokens:
    return IssuedTokens(JwtSettings(issuer=ISSUER, jwks_url=jwks_url, **extra), AUDIENCE)


def token(key: rsa.RSAPrivateKey = KEY, audience: str = AUDIENCE, **claims: Any) -> str:
    body = {"sub": "alice", "iss": ISSUER, "aud": audience, "exp": int(time.time()) + 300, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, key, algorithm="RS256", headers={"kid": "k1"})


async def test_a_valid_jwt_maps_to_fleetbus_scopes(jwks_url: str) -> None:
    access = await issued(jwks_url).verify_token(token(scope="openid read units:write:web-* email"))
    assert access is not None
    assert access.client_id == "jwt:alice"
    assert access.scopes == ["read", "units:write:web-*"]
    assert access.subject == "alice"
    assert (access.claims or {})["iss"] == ISSUER


async def test_scopes_as_a_list_names_and_hosts_from_other_claims(jwks_url: str) -> None:
    verifier = issued(jwks_url, scope_claim="scp", name_claim="client_id", hosts_claim="hosts")
    access = await verifier.verify_token(token(scp=["admin", "x"], client_id="ci", hosts=["web-*"]))
    assert access is not None
    assert (access.client_id, access.scopes, (access.claims or {})["hosts"]) == ("jwt:ci", ["admin"], ["web-*"])


@pytest.mark.parametrize(
    "bad",
    [
        {"aud": "http://elsewhere/mcp"},
        {"iss": "https://evil.example"},
        {"exp": int(time.time()) - 10},
        {"exp": None},
        {"aud": None},
        {"sub": None},
    ],
)
async def test_what_is_refused(jwks_url: str, bad: dict[str, Any]) -> None:
    assert await issued(jwks_url).verify_token(token(scope="read", **bad)) is None


async def test_a_foreign_signature_is_refused(jwks_url: str) -> None:
    assert await issued(jwks_url).verify_token(token(OTHER_KEY, scope="read")) is None
    assert await issued(jwks_url).verify_token("not.a.jwt") is None


async def test_fleetbus_tokens_and_jwts_each_go_to_their_verifier(jwks_url: str, tmp_path: Any) -> None:
    store = TokenStore(tmp_path / "tokens.json")
    own, _ = store.mint("local", ["read"], None, 60)
    both = Verifiers(StoredTokens(store), issued(jwks_url))
    local = await both.verify_token(own)
    external = await both.verify_token(token(scope="read"))
    assert local is not None
    assert external is not None
    assert (local.client_id, external.client_id) == ("local", "jwt:alice")
    only_own = Verifiers(StoredTokens(store))
    assert await only_own.verify_token(token(scope="read")) is None
