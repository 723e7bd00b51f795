"""What `fleetbus serve` tells the person who started it, on stderr, once it listens over HTTP or a unix socket: where,
the MCP URL, how a client authenticates (and how to get a token), and a client configuration to paste. stdio says
nothing: there stderr belongs to the MCP client's log."""

from __future__ import annotations

import json
import os
import pwd
import shlex
import stat
import time
from pathlib import Path

from fleetbus.config import Settings, default_state_dir
from fleetbus.server.auth import TokenError, TokenStore
from fleetbus.server.discovery import Discovery


def http_banner(settings: Settings, url: str, *, authenticated: bool, issuer: str | None = None) -> str:
    if not authenticated:
        scopes = ",".join(settings.anonymous_scopes)
        client = _config({"type": "http", "url": url})
        return (
            f"fleetbus serves MCP (Streamable HTTP) at {url} WITHOUT authentication (--insecure-no-auth): every "
            f"client gets scopes {scopes}\n  client config: {client}\n"
        )
    lines = [f"fleetbus serves MCP (Streamable HTTP) at {url}", f"  tokens: {_tokens(settings)}"]
    if issuer is not None:
        metadata = Discovery(url, issuer).metadata_url
        lines.append(f"  also JWTs from {issuer}; OAuth clients discover it at {metadata}")
    client = _config({"type": "http", "url": url, "headers": {"Authorization": "Bearer <token>"}})
    lines.append(f"  client config: {client}")
    return "\n".join(lines) + "\n"


def unix_banner(settings: Settings, paths: list[str]) -> str:
    lines = []
    for path in paths:
        lines.append(f"fleetbus serves MCP (Streamable HTTP) on the unix socket {path} ({_access(path)})")
        lines.append(
            f"  clients send requests to http://localhost/mcp through it (curl --unix-socket {shlex.quote(path)} …)"
        )
    lines.append(f"  callers are identified by uid: {_peers(settings)}")
    lines.append(
        "  clients that only speak stdio: install the per-connection units (fleetbus install --per-connection) and "
        "run `socat UNIX-CONNECT:PATH STDIO`"
    )
    return "\n".join(lines) + "\n"


def _tokens(settings: Settings) -> str:
    try:
        active = [r for r in TokenStore(settings.tokens_path).load() if r.state(time.time()) == "active"]
        held = f"{len(active)} active in {settings.tokens_path}"
    except TokenError as exc:
        held = str(exc)
    return f"{held}; mint one (shown once) with `{_mint_command(settings)}`"


def _mint_command(settings: Settings) -> str:
    """A command that mints into the store this server reads, from any shell on this host."""
    command = ["fleetbus", "token"]
    if settings.tokens_file is None and settings.state_dir != default_state_dir():
        command += ["--state-dir", str(settings.state_dir)]
    command += ["mint", "--name", "NAME", "--scopes", "read"]
    text = shlex.join(command)
    if settings.tokens_file is not None:
        text += f"  (with the configuration that sets tokens_file = {settings.tokens_file})"
    return text


def _peers(settings: Settings) -> str:
    mapped = ", ".join(f"{who}: {','.join(scopes)}" for who, scopes in settings.peer_scopes.items() if who != "*")
    others = ",".join(settings.peer_scopes.get("*", ["read"]))
    operators = " and ".join(dict.fromkeys(["root", _user(os.geteuid())]))
    return f"{operators} unrestricted{', ' + mapped if mapped else ''}, everyone else {others} (peer_scopes)"


def _access(path: str) -> str:
    try:
        info = Path(path).stat()
    except OSError:
        return "passed by systemd"
    return f"mode {stat.S_IMODE(info.st_mode):04o}, owner {_user(info.st_uid)}"


def _user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def _config(server: dict[str, object]) -> str:
    return json.dumps({"mcpServers": {"fleetbus": server}}, separators=(",", ":"))
