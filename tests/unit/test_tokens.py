"""Bearer tokens: minted once, kept only as hashes, verified in constant time, refused when expired or revoked;
and how a token or a socket peer becomes the gateway's Caller."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from pathlib import Path
from typing import Any

import pytest
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken

from fleetbus.guard.scopes import ScopeError
from fleetbus.server import auth
from fleetbus.server.auth import (
    PeerCredentials,
    PeerScopes,
    StoredTokens,
    TokenError,
    TokenStore,
    identify_peer,
    identify_token,
    parse_duration,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> TokenStore:
    return TokenStore(tmp_path / "state" / "tokens.json", clock=clock)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90s", 90), ("15m", 900), ("12h", 43200), ("30d", 2592000), ("2w", 1209600), ("1d12h", 129600)],
)
def test_durations(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("bad", ["", "10", "1y", "h", "-1h", "0s", "1h 30m", "forever"])
def test_bad_durations_are_refused(bad: str) -> None:
    with pytest.raises(TokenError):
        parse_duration(bad)


def test_a_minted_token_is_stored_only_as_its_hash(store: TokenStore) -> None:
    token, record = store.mint("ci-bot", ["read", "units:write:web-*"], ["web-*"], 3600)
    match = auth.TOKEN_PATTERN.fullmatch(token)
    assert match
    text = store.path.read_text()
    assert token not in text
    # The secret part by the pattern: it may itself contain "_", so splitting on the last one could leave a
    # fragment short enough to turn up in the file by chance.
    assert match.group(2) not in text
    assert record.sha256 == hashlib.sha256(token.encode()).hexdigest()
    assert json.loads(text)["tokens"][0]["sha256"] == record.sha256
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert store.path.parent.stat().st_mode & 0o777 == 0o700
    assert record.scopes == ["read", "units:write:web-*"]
    assert record.hosts == ["web-*"]


def test_mint_checks_names_scopes_and_duplicates(store: TokenStore) -> None:
    with pytest.raises(TokenError, match="unknown scope"):
        store.mint("x", ["write"], None, 60)
    with pytest.raises(TokenError, match="at least one scope"):
        store.mint("x", [""], None, 60)
    with pytest.raises(TokenError, match="token name"):
        store.mint("has space", ["read"], None, 60)
    store.mint("twice", ["read"], None, 60)
    with pytest.raises(TokenError, match="active token named 'twice'"):
        store.mint("twice", ["read"], None, 60)
    store.revoke("twice")
    store.mint("twice", ["read"], None, 60)  # a revoked name may be reused


async def test_verification(store: TokenStore, clock: Clock) -> None:
    token, record = store.mint("reader", ["read"], None, 3600)
    verifier = StoredTokens(store)
    access = await verifier.verify_token(token)
    assert access is not None
    assert access.client_id == "reader"
    assert access.scopes == ["read"]
    assert access.expires_at == int(record.expires)
    assert token.rsplit("_", 1)[1] not in access.token  # the secret is not kept once checked

    wrong_secret = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert await verifier.verify_token(wrong_secret) is None
    assert await verifier.verify_token("fleetbus_ffffffff_" + "A" * 43) is None  # no such id
    assert await verifier.verify_token("Bearer " + token) is None
    assert await verifier.verify_token("") is None

    clock.now += 3600
    assert await verifier.verify_token(token) is None  # expired


async def test_revocation_reaches_a_running_verifier(store: TokenStore) -> None:
    token, _ = store.mint("soon-gone", ["read"], None, 3600)
    verifier = StoredTokens(store)
    assert await verifier.verify_token(token) is not None
    revoked = store.revoke("soon-gone")
    assert [r.name for r in revoked] == ["soon-gone"]
    assert await verifier.verify_token(token) is None
    with pytest.raises(TokenError, match="no unrevoked token"):
        store.revoke("soon-gone")


async def test_verification_compares_in_constant_time(store: TokenStore, monkeypatch: pytest.MonkeyPatch) -> None:
    token, _ = store.mint("timed", ["read"], None, 3600)
    compared: list[tuple[str, str]] = []
    real = hmac.compare_digest

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    verifier = StoredTokens(store)
    await verifier.verify_token(token)
    await verifier.verify_token("fleetbus_00000000_" + "A" * 43)  # unknown id: still one comparison
    await verifier.verify_token("garbage")
    assert len(compared) == 3


async def test_an_unsafe_store_authenticates_nobody(store: TokenStore) -> None:
    token, _ = store.mint("t", ["read"], None, 3600)
    os.chmod(store.path, 0o644)
    with pytest.raises(TokenError, match="accessible to others"):
        store.load()
    assert await StoredTokens(store).verify_token(token) is None


def test_list_and_states(store: TokenStore, clock: Clock) -> None:
    store.mint("a", ["read"], None, 10)
    store.mint("b", ["admin"], None, 1000)
    store.revoke("b")
    clock.now += 20
    states = {r.name: r.state(clock.now) for r in store.load()}
    assert states == {"a": "expired", "b": "revoked"}


class Context:
    """The little of ServerRequestContext the identify functions read: the HTTP request's ASGI scope."""

    def __init__(self, scope: dict[str, Any] | None) -> None:
        self.request = type("Request", (), {"scope": scope})() if scope is not None else None


def test_identify_token() -> None:
    access = AccessToken(token="x", client_id="ci", scopes=["read"], claims={"hosts": ["web-*"]})
    caller = identify_token()(Context({"user": AuthenticatedUser(access)}))  # type: ignore[arg-type]
    assert (caller.client, caller.scopes, caller.hosts) == ("ci", frozenset({"read"}), ("web-*",))
    nobody = identify_token()(Context({}))  # type: ignore[arg-type]
    assert nobody.scopes == frozenset()
    anonymous = identify_token(frozenset({"read"}))(Context(None))  # type: ignore[arg-type]
    assert (anonymous.client, anonymous.scopes) == ("http:anonymous", frozenset({"read"}))


def test_peer_scopes() -> None:
    peers = PeerScopes.from_settings({"1000": ["read", "units:write"], "root": ["read"], "*": ["approve"]})
    assert peers.scopes_for(0) == frozenset({"read"})  # mapped: even root is narrowed
    assert peers.scopes_for(1000) == frozenset({"read", "units:write"})
    assert peers.scopes_for(4242) == frozenset({"approve"})
    default = PeerScopes.from_settings({})
    assert default.scopes_for(0) is None
    assert default.scopes_for(os.geteuid()) is None
    assert default.scopes_for(4242) == frozenset({"read"})
    with pytest.raises(ScopeError):
        PeerScopes.from_settings({"1000": ["root"]})
    with pytest.raises(ScopeError, match="no user named"):
        PeerScopes.from_settings({"no-such-user-here": ["read"]})


def test_identify_peer() -> None:
    identify = identify_peer(PeerScopes.from_settings({}))
    ctx = Context({"extensions": {auth.PEER_EXTENSION: PeerCredentials(pid=7, uid=4242, gid=4242)}})
    caller = identify(ctx)  # type: ignore[arg-type]
    assert (caller.client, caller.scopes) == ("uid:4242", frozenset({"read"}))
    unknown = identify(Context({}))  # type: ignore[arg-type]
    assert unknown.scopes == frozenset()


async def test_refusals_of_genuine_tokens_are_reported_at_most_once_a_minute(store: TokenStore, clock: Clock) -> None:
    token, _ = store.mint("old", ["read"], None, 10)
    heard: list[tuple[str, str]] = []
    verifier = StoredTokens(store, on_refused=lambda record, state: heard.append((record.name, state)))
    clock.now += 20
    for _ in range(5):
        assert await verifier.verify_token(token) is None
    await verifier.verify_token("fleetbus_00000000_" + "A" * 43)  # forged: names nobody, reported to nobody
    assert heard == [("old", "expired")]
    clock.now += 61
    await verifier.verify_token(token)
    assert heard == [("old", "expired"), ("old", "expired")]
