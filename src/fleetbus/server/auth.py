"""Who a request comes from: bearer tokens for HTTP (minted once, stored only as hashes, verified in constant
time) and unix-socket peers (SO_PEERCRED), turned into the gateway's Caller with its scopes and hosts.

A token is `fleetbus_<id>_<secret>`: the id finds the record, the SHA-256 of the whole token is compared with
`hmac.compare_digest`. The store is a JSON file only the server's user can read or write; the server re-reads
it when it changes, so `fleetbus token revoke` takes effect on the next request.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import pwd
import re
import secrets
import socket
import stat
import struct
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mcp.server import ServerRequestContext
from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken

from fleetbus.command_line import print_error
from fleetbus.gateway import Caller
from fleetbus.guard.scopes import READ, ScopeError, parse_scopes

if TYPE_CHECKING:
    # Only its type: JWT support (PyJWT, cryptography) is imported when HTTP is served with `[jwt]` configured.
    from fleetbus.server.issuer import IssuedTokens

log = logging.getLogger(__name__)

TOKEN_PREFIX = "fleetbus"
TOKEN_PATTERN = re.compile(r"fleetbus_([0-9a-f]{8})_([A-Za-z0-9_-]{43})")
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")
DURATION_PART = re.compile(r"(\d+)([smhdw])")
DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
PEER_EXTENSION = "fleetbus.peer"
"""Key of the ASGI scope extension where the unix transport puts the connection's peer credentials."""
_NO_MATCH = hashlib.sha256(b"no such token").hexdigest()
"""Compared against when no record matches, so an unknown id costs the same work as a wrong secret."""

Identify = Callable[[ServerRequestContext[Any]], Caller]
"""How a transport says who made a request: the Caller (without `ask`) the gateway decides for."""


class TokenError(Exception):
    """A token command cannot be carried out (unknown name, bad duration, unsafe store)."""


def parse_duration(text: str) -> float:
    """Seconds in "90s", "15m", "12h", "30d", "2w" or combinations such as "1d12h"."""
    compact = text.strip().lower()
    parts = DURATION_PART.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise TokenError(f"{text!r} is not a duration; use e.g. 3600s, 90m, 12h, 30d or 2w")
    seconds = sum(int(number) * DURATION_UNITS[unit] for number, unit in parts)
    if seconds <= 0:
        raise TokenError(f"duration {text!r} must be positive")
    return float(seconds)


@dataclass(frozen=True)
class TokenRecord:
    id: str
    name: str
    sha256: str
    scopes: list[str]
    hosts: list[str] | None
    created: float
    expires: float
    revoked: float | None = None

    def state(self, now: float) -> str:
        if self.revoked is not None:
            return "revoked"
        return "expired" if now >= self.expires else "active"


class TokenStore:
    """The token file: records of minted tokens, never the tokens themselves."""

    def __init__(self, path: Path, *, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path.with_name(self.path.name + ".lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def exists(self) -> bool:
        return self.path.exists()

    def load(self) -> list[TokenRecord]:
        try:
            info = self.path.stat()
        except FileNotFoundError:
            return []
        check_private(self.path, info)
        try:
            data = json.loads(self.path.read_text())
            return [TokenRecord(**entry) for entry in data["tokens"]]
        except (ValueError, TypeError, KeyError) as exc:
            raise TokenError(f"token store {self.path} is damaged: {exc}") from exc

    def _save(self, records: Sequence[TokenRecord]) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump({"version": 1, "tokens": [asdict(r) for r in records]}, handle, indent=1)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.replace(self.path)

    def mint(
        self, name: str, scopes: Sequence[str], hosts: Sequence[str] | None, ttl: float
    ) -> tuple[str, TokenRecord]:
        """A new token (returned once, never stored) and its record."""
        if not NAME_PATTERN.fullmatch(name):
            raise TokenError(f"token name {name!r}: use letters, digits and . _ @ - (at most 64)")
        try:
            checked = sorted(parse_scopes(scopes))
        except ScopeError as exc:
            raise TokenError(str(exc)) from exc
        if not checked:
            raise TokenError("a token needs at least one scope (e.g. --scopes read)")
        now = self.clock()
        with self._locked():
            records = self.load()
            if any(r.name == name and r.state(now) == "active" for r in records):
                raise TokenError(f"an active token named {name!r} exists; revoke it first or pick another name")
            token_id = secrets.token_hex(4)
            while any(r.id == token_id for r in records):
                token_id = secrets.token_hex(4)
            token = f"{TOKEN_PREFIX}_{token_id}_{secrets.token_urlsafe(32)}"
            record = TokenRecord(token_id, name, digest(token), checked, list(hosts) if hosts else None, now, now + ttl)
            self._save([*records, record])
        return token, record

    def revoke(self, name_or_id: str) -> list[TokenRecord]:
        """Revoke the active tokens with this name or id; returns what was revoked."""
        now = self.clock()
        with self._locked():
            records = self.load()
            hits = [r for r in records if name_or_id in (r.name, r.id) and r.revoked is None]
            if not hits:
                raise TokenError(f"no unrevoked token named {name_or_id!r} (see `fleetbus token list`)")
            revoked = {r.id: TokenRecord(**{**asdict(r), "revoked": now}) for r in hits}
            self._save([revoked.get(r.id, r) for r in records])
        return list(revoked.values())


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_private(path: Path, info: os.stat_result | None = None) -> None:
    """Tokens decide who may act: their store must be the server user's, and nobody else's to read or write."""
    info = info or path.stat()
    if info.st_uid != os.geteuid():
        raise TokenError(f"token store {path} belongs to uid {info.st_uid}, not to this user (uid {os.geteuid()})")
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise TokenError(f"token store {path} is accessible to others; chmod 600 it")


REFUSAL_RECORD_INTERVAL = 60.0
"""Seconds between audit records of one expired or revoked token's refusals: a client retrying in a loop must not
fill the disk."""


class StoredTokens:
    """The SDK's TokenVerifier over the token store, re-read whenever the file changes.

    `on_refused(record, state)` hears of genuine tokens refused because they expired or were revoked (at most once
    a minute per token), so the audit log can name who was turned away; unknown or forged tokens name nobody.
    """

    def __init__(self, store: TokenStore, on_refused: Callable[[TokenRecord, str], None] | None = None) -> None:
        self.store = store
        self.on_refused = on_refused
        self._seen: tuple[int, int, int] | None = None
        self._by_id: dict[str, TokenRecord] = {}
        self._reported: dict[str, float] = {}

    def _current(self) -> dict[str, TokenRecord]:
        try:
            info = self.store.path.stat()
        except FileNotFoundError:
            self._seen, self._by_id = None, {}
            return self._by_id
        key = (info.st_ino, info.st_mtime_ns, info.st_size)
        if key != self._seen:
            try:
                self._by_id = {r.id: r for r in self.store.load()}
            except TokenError:
                # An unsafe or damaged store authenticates nobody, rather than the last good copy.
                log.exception("cannot read the token store; refusing every token until it is fixed")
                self._by_id = {}
            self._seen = key
        return self._by_id

    async def verify_token(self, token: str) -> AccessToken | None:
        match = TOKEN_PATTERN.fullmatch(token)
        record = self._current().get(match.group(1)) if match else None
        genuine = hmac.compare_digest(digest(token), record.sha256 if record else _NO_MATCH)
        if record is None or not genuine:
            return None
        now = self.store.clock()
        state = record.state(now)
        if state != "active":
            log.info("refused %s token %r (%s)", state, record.name, record.id)
            if self.on_refused is not None and now - self._reported.get(record.id, -1e18) >= REFUSAL_RECORD_INTERVAL:
                self._reported[record.id] = now
                self.on_refused(record, state)
            return None
        return AccessToken(
            token=f"{TOKEN_PREFIX}_{record.id}",  # never keep the secret around once it is checked
            client_id=record.name,
            scopes=list(record.scopes),
            expires_at=int(record.expires),
            claims={"hosts": record.hosts, "token_id": record.id},
        )


class Verifiers:
    """fleetbus's own tokens (recognised by their prefix) and, when configured, an external issuer's JWTs."""

    def __init__(self, stored: StoredTokens, issued: IssuedTokens | None = None) -> None:
        self.stored = stored
        self.issued = issued

    async def verify_token(self, token: str) -> AccessToken | None:
        if token.startswith(TOKEN_PREFIX + "_") or self.issued is None:
            return await self.stored.verify_token(token)
        return await self.issued.verify_token(token)


def token_caller(access: AccessToken) -> Caller:
    hosts = (access.claims or {}).get("hosts")
    return Caller(
        access.client_id,
        scopes=frozenset(access.scopes),
        hosts=tuple(str(h) for h in hosts) if isinstance(hosts, list) else None,
    )


def _asgi_scope(ctx: ServerRequestContext[Any]) -> Mapping[str, Any]:
    scope = getattr(ctx.request, "scope", None)
    return scope if isinstance(scope, Mapping) else {}


def identify_token(anonymous: frozenset[str] | None = None) -> Identify:
    """HTTP: the token's name and scopes; with `anonymous` (--insecure-no-auth), unauthenticated requests get those
    scopes as "http:anonymous". Without either, an unauthenticated request (which the SDK should have refused with
    401 already) gets no scope at all."""

    def identify(ctx: ServerRequestContext[Any]) -> Caller:
        user = _asgi_scope(ctx).get("user")
        if isinstance(user, AuthenticatedUser):
            return token_caller(user.access_token)
        if anonymous is not None:
            return Caller("http:anonymous", scopes=anonymous)
        return Caller("http:unauthenticated", scopes=frozenset())

    return identify


@dataclass(frozen=True)
class PeerCredentials:
    pid: int
    uid: int
    gid: int

    @property
    def client(self) -> str:
        return f"uid:{self.uid}"


def peer_credentials(sock: socket.socket) -> PeerCredentials | None:
    """The connecting process's pid, uid and gid, as the kernel recorded them at connect (SO_PEERCRED)."""
    if sock.family != socket.AF_UNIX:
        return None
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid, uid, gid = struct.unpack("3i", raw)
    return PeerCredentials(pid, uid, gid)


@dataclass(frozen=True)
class PeerScopes:
    """Scopes of unix-socket peers by uid. Unmapped: root and the server's own user are the operator (no
    restriction), everyone else gets `default`."""

    mapping: Mapping[int, frozenset[str]] = field(default_factory=dict)
    default: frozenset[str] = frozenset({READ})
    unrestricted: frozenset[int] = field(default_factory=lambda: frozenset({0, os.geteuid()}))

    @classmethod
    def from_settings(cls, configured: Mapping[str, Sequence[str]]) -> PeerScopes:
        """`{"1000": ["read"], "alice": ["units:write"], "*": ["read"]}`: a uid, a user name, or * for the rest."""
        mapping: dict[int, frozenset[str]] = {}
        default = frozenset({READ})
        for key, granted in configured.items():
            scopes = parse_scopes(granted)
            if key == "*":
                default = scopes
            elif key.isdigit():
                mapping[int(key)] = scopes
            else:
                try:
                    mapping[pwd.getpwnam(key).pw_uid] = scopes
                except KeyError:
                    raise ScopeError(f"peer_scopes: no user named {key!r}") from None
        return cls(mapping, default)

    def scopes_for(self, uid: int) -> frozenset[str] | None:
        if uid in self.mapping:
            return self.mapping[uid]
        return None if uid in self.unrestricted else self.default


def identify_peer(peers: PeerScopes) -> Identify:
    """Unix socket: the peer's uid is the client identity, its scopes come from the mapping."""

    def identify(ctx: ServerRequestContext[Any]) -> Caller:
        credentials = _asgi_scope(ctx).get("extensions", {}).get(PEER_EXTENSION)
        if not isinstance(credentials, PeerCredentials):
            return Caller("unix:unknown-peer", scopes=frozenset())
        return peer_caller(credentials, peers)

    return identify


def peer_caller(credentials: PeerCredentials, peers: PeerScopes) -> Caller:
    return Caller(credentials.client, scopes=peers.scopes_for(credentials.uid))


# ---- the `fleetbus token` command -------------------------------------------------------------------


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    add_settings: Callable[[argparse.ArgumentParser], None],
) -> None:
    token = commands.add_parser("token", help="mint, list and revoke bearer tokens for the HTTP transport")
    add_settings(token)
    actions = token.add_subparsers(dest="token_command", required=True)
    mint = actions.add_parser("mint", help="create a token and print it once (only its hash is kept)")
    mint.add_argument("--name", required=True, help="who uses it; the audit log records calls under this name")
    mint.add_argument(
        "--scopes",
        required=True,
        help="comma-separated: read, units:write, units:write:GLOB, exec, approve, admin (admin implies all)",
    )
    mint.add_argument(
        "--hosts",
        action="append",
        metavar="PATTERN",
        help="hosts it may touch, an Ansible pattern such as web:!web03 (repeatable; default any)",
    )
    mint.add_argument("--ttl", default="30d", help="lifetime, e.g. 12h, 30d, 2w (default 30d)")
    mint.add_argument("--json", action="store_true", help="print the token and its record as JSON")
    listing = actions.add_parser("list", help="tokens with their state, scopes, hosts and expiry (never the secrets)")
    listing.add_argument("--json", action="store_true")
    revoke = actions.add_parser("revoke", help="revoke tokens by name or id; the next request with them gets 401")
    revoke.add_argument("name_or_id")


def _when(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def token_main(args: argparse.Namespace, tokens_file: Path) -> int:
    store = TokenStore(tokens_file)
    try:
        if args.token_command == "mint":
            hosts = [h for item in args.hosts or [] for h in item.split(",") if h]
            token, record = store.mint(args.name, args.scopes.split(","), hosts or None, parse_duration(args.ttl))
            if args.json:
                print(json.dumps({"token": token, **asdict(record)}, indent=2))
            else:
                print(token)
                print(
                    f"token {record.name!r} ({record.id}): scopes {','.join(record.scopes)}, hosts "
                    f"{','.join(record.hosts or ['*'])}, expires {_when(record.expires)}. It is shown only now; "
                    f"clients send it as 'Authorization: Bearer <token>'.",
                    file=sys.stderr,
                )
            return 0
        if args.token_command == "list":
            now = time.time()
            records = store.load()
            if args.json:
                print(json.dumps([{**asdict(r), "state": r.state(now)} for r in records], indent=2))
                return 0
            for r in records:
                print(
                    f"{r.name:<20} {r.id}  {r.state(now):<7}  scopes={','.join(r.scopes)}  "
                    f"hosts={','.join(r.hosts or ['*'])}  expires={_when(r.expires)}"
                )
            return 0
        if args.token_command == "revoke":
            for r in store.revoke(args.name_or_id):
                print(f"revoked token {r.name!r} ({r.id})")
            return 0
    except TokenError as exc:
        print_error(args.command_name, str(exc))
        return 1
    raise AssertionError(f"unhandled token command {args.token_command}")
