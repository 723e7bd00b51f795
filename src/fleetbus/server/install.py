"""Running fleetbus as a systemd service: the hardened units (a socket, the service behind it, and a template for
one instance per connection), a default configuration, and the configuration MCP clients paste to reach it.

`fleetbus install` writes files and nothing else — it never runs systemctl — so it can target a staging root
(`--root`, for packages and tests) as safely as the real system. deploy/systemd/ holds what it writes, with
ExecStart=/usr/local/bin/fleetbus; a test keeps the two identical.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fleetbus.executable import checkout_run_script, fleetbus_argv

DEFAULT_EXEC = "/usr/local/bin/fleetbus"
SYSTEM_SOCKET = "/run/fleetbus/fleetbus.sock"
PER_CONNECTION_DROP_IN = "fleetbus-per-connection.conf"

# The hardening both variants share. Why each line is there (and why some are not) is in the unit's comments.
_HARDENING = """\
# fleetbus talks to D-Bus and, for a fleet, to SSH; it needs no capability: systemd and polkit authorise it by uid.
NoNewPrivileges=yes
CapabilityBoundingSet=
AmbientCapabilities=
ProtectSystem=strict
ProtectHome={protect_home}
PrivateTmp=yes
PrivateDevices=yes
PrivateIPC=yes
PrivateMounts=yes
{kernel}ProtectKernelModules=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
# Not ProtectProc=invisible: fleetbus names the processes behind bus peers, which belong to other users.
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
MemoryDenyWriteExecute=yes
RemoveIPC=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service
SystemCallFilter=~@privileged @resources
SystemCallErrorNumber=EPERM
UMask=0077
MemoryMax=512M
TasksMax=256
# Room for http_max_connections (512) besides bus links, SSH channels and the audit log; the 1024 soft limit
# left in place would be reached by ~1,010 idle sockets.
LimitNOFILE=8192
"""


@dataclass(frozen=True)
class Variant:
    """Where one flavour of installation puts things, as systemd specifiers where the unit can say it itself."""

    name: str
    socket: str
    config: str
    protect_home: str
    wanted_by: str
    after: str

    kernel: str

    def hardening(self) -> str:
        return _HARDENING.format(protect_home=self.protect_home, kernel=self.kernel)


SYSTEM = Variant(
    "system",
    socket=SYSTEM_SOCKET,
    config="/etc/fleetbus/config.toml",
    protect_home="yes",
    wanted_by="sockets.target",
    after="dbus.socket",
    kernel="ProtectKernelTunables=yes\nProtectKernelLogs=yes\n",
)
# A user's own manager: its config lives in the (then read-only) home; %t is $XDG_RUNTIME_DIR, %E the config home.
USER = Variant(
    "user",
    socket="%t/fleetbus/fleetbus.sock",
    config="%E/fleetbus/config.toml",
    protect_home="read-only",
    wanted_by="sockets.target",
    after="dbus.socket",
    # A user's manager could not set these two up where fleetbus is tested (exit 226/NAMESPACE); the rest it can.
    kernel="",
)
VARIANTS = {"system": SYSTEM, "user": USER}


def units(variant: Variant, command: str = DEFAULT_EXEC) -> dict[str, str]:
    """Unit file name → text. `command` is how to run fleetbus (e.g. `/opt/fleetbus/.venv/bin/python -m fleetbus`)."""
    service_common = f"""\
Type=notify
NotifyAccess=main
ExecStart={command} serve --config {variant.config}
# State (audit log, approvals, tokens) in %S/fleetbus: /var/lib/fleetbus, or ~/.local/state/fleetbus for a user.
Environment=FLEETBUS_STATE_DIR=%S/fleetbus
StateDirectory=fleetbus
StateDirectoryMode=0700
{variant.hardening()}"""
    return {
        "fleetbus.socket": f"""\
[Unit]
Description=fleetbus MCP server socket

[Socket]
ListenStream={variant.socket}
SocketMode=0600
DirectoryMode=0755
# Accept=no: one long-running fleetbus.service serves every connection (Streamable HTTP, peers identified by uid).
# {PER_CONNECTION_DROP_IN} (in fleetbus.socket.d/) switches to Accept=yes: a fleetbus@.service per connection.
Accept=no
FileDescriptorName=fleetbus
RemoveOnStop=yes

[Install]
WantedBy={variant.wanted_by}
""",
        "fleetbus.service": f"""\
[Unit]
Description=fleetbus MCP server (D-Bus under operator policy)
Requires=fleetbus.socket
After=fleetbus.socket {variant.after}

[Service]
{service_common}# A stop lets calls in flight finish (shutdown_timeout, 20 s by default) before cancelling them.
TimeoutStopSec=30
WatchdogSec=60
Restart=on-failure
RestartSec=2

[Install]
Also=fleetbus.socket
""",
        "fleetbus@.service": f"""\
[Unit]
Description=fleetbus MCP server for one connection (%i)
After={variant.after}

[Service]
# The connection arrives as fd 3 (LISTEN_FDS=1); fleetbus speaks MCP's stdio framing over it.
{service_common}TimeoutStopSec=30
CollectMode=inactive-or-failed
""",
        PER_CONNECTION_DROP_IN: """\
# Put this in fleetbus.socket.d/ for an instance of fleetbus@.service per connection (clients use
# `socat UNIX-CONNECT:<socket> STDIO` as their stdio command).
[Socket]
Accept=yes
""",
    }


DEFAULT_CONFIG = """\
# fleetbus configuration, written by `fleetbus install`. Every setting, with its default, is in the README.
safety = "readonly"          # readonly | operator | admin
# policy_file = "/etc/fleetbus/policy.toml"

# Who may connect to the unix socket, by uid, user name or "*" (unmapped: root and fleetbus's own user are
# unrestricted, everyone else gets read):
# peer_scopes = { "1000" = ["read", "units:write:web-*"], "*" = ["read"] }
"""


@dataclass(frozen=True)
class Plan:
    unit_dir: Path
    config_file: Path
    files: dict[Path, str]


def plan(
    variant: Variant,
    *,
    root: Path | None = None,
    command: str = DEFAULT_EXEC,
    per_connection: bool = False,
    home: Path | None = None,
) -> Plan:
    """What `install` writes, and where: the system's or this user's unit directory, under `root` if given."""
    if variant is SYSTEM:
        unit_dir, config_file = Path("/etc/systemd/system"), Path("/etc/fleetbus/config.toml")
    else:
        config_home = Path(os.environ.get("XDG_CONFIG_HOME") or (home or Path.home()) / ".config")
        unit_dir, config_file = config_home / "systemd" / "user", config_home / "fleetbus" / "config.toml"
    if root is not None:
        unit_dir = root / unit_dir.relative_to("/")
        config_file = root / config_file.relative_to("/")
    texts = units(variant, command)
    drop_in = texts.pop(PER_CONNECTION_DROP_IN)
    files = {unit_dir / name: text for name, text in texts.items()}
    if per_connection:
        files[unit_dir / "fleetbus.socket.d" / PER_CONNECTION_DROP_IN] = drop_in
    return Plan(unit_dir, config_file, files)


def install(target: Plan, *, force_config: bool = False) -> list[Path]:
    """Write the units (replacing older ones) and the configuration (only if there is none yet)."""
    written = []
    for path, text in target.files.items():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        path.write_text(text)
        path.chmod(0o644)
        written.append(path)
    if force_config or not target.config_file.exists():
        target.config_file.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        target.config_file.write_text(DEFAULT_CONFIG)
        target.config_file.chmod(0o644)
        written.append(target.config_file)
    return written


def default_command() -> str:
    """How this fleetbus runs, as one shell word list: its console script, else `python -m fleetbus`."""
    return shlex.join(fleetbus_argv())


@dataclass(frozen=True)
class StdioCommand:
    """The command an MCP client runs to get fleetbus on stdio, and why it is that one."""

    argv: list[str]
    why: str


def stdio_command(program: list[str], *, system_bus_answers: bool, run_script: Path | None) -> StdioCommand:
    """What works on this machine: `fleetbus serve` where a system bus answers; else the sandbox of real services
    — through the checkout's scripts/run.sh when there is one (it sets up, then picks), or `fleetbus sandbox run`."""
    if system_bus_answers:
        return StdioCommand([*program, "serve"], "A system bus answers here: this serves it.")
    if run_script is not None:
        return StdioCommand(
            [str(run_script)], "No system bus answers here: run.sh serves inside the sandbox of real services (root)."
        )
    return StdioCommand(
        [*program, "sandbox", "run", "--", *program, "serve"],
        "No system bus answers here: this serves inside the sandbox of real services (needs root).",
    )


def bus_answers(address: str, timeout: float = 1.0) -> bool:
    """Whether something accepts connections at a D-Bus address; only `unix:` ones are checked."""
    if not address.startswith("unix:"):
        return True
    options = dict(part.split("=", 1) for part in address.removeprefix("unix:").split(",") if "=" in part)
    if "path" in options:
        target = options["path"]
    elif "abstract" in options:
        target = "\0" + options["abstract"]
    else:
        return True
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(timeout)
        try:
            probe.connect(target)
        except OSError:
            return False
    return True


def client_config(stdio: StdioCommand, url: str, socket_path: str) -> str:
    program, *arguments = stdio.argv
    stdio_block = {"mcpServers": {"fleetbus": {"command": program, "args": arguments}}}
    http = {
        "mcpServers": {
            "fleetbus": {
                "type": "http",
                "url": url,
                "headers": {"Authorization": "Bearer <token printed by `fleetbus token mint`>"},
            }
        }
    }
    socat = {"mcpServers": {"fleetbus": {"command": "socat", "args": [f"UNIX-CONNECT:{socket_path}", "STDIO"]}}}
    return f"""\
# 1. stdio — the client starts fleetbus itself, as the user the client runs as. {stdio.why}
{json.dumps(stdio_block, indent=2)}

# 2. Streamable HTTP — `fleetbus serve --transport http --listen …`; mint a token with
#    `fleetbus token mint --name my-client --scopes read` and put it in the header:
{json.dumps(http, indent=2)}

# 3. The unix socket of fleetbus.socket with the per-connection drop-in (Accept=yes; `fleetbus install
#    --per-connection`): the client runs socat, fleetbus identifies it by its uid (peer_scopes):
{json.dumps(socat, indent=2)}

# Without the drop-in (Accept=no), {socket_path} speaks Streamable HTTP: clients that can use a unix socket
# send requests to http://localhost/mcp through it.
"""


# ---- the commands -----------------------------------------------------------------------------------


def add_parsers(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    installer = commands.add_parser(
        "install", help="write systemd units (socket activation, hardened) and a default configuration"
    )
    scope = installer.add_mutually_exclusive_group(required=True)
    scope.add_argument("--system", action="store_const", const="system", dest="variant", help="system units")
    scope.add_argument("--user", action="store_const", const="user", dest="variant", help="this user's units")
    installer.add_argument("--root", type=Path, metavar="DIR", help="write under DIR instead of / (staging, tests)")
    installer.add_argument("--exec", dest="exec_command", metavar="COMMAND", help="how units run fleetbus")
    installer.add_argument(
        "--per-connection", action="store_true", help="Accept=yes: a fleetbus@.service instance per connection"
    )
    installer.add_argument("--force-config", action="store_true", help="replace an existing configuration")
    config = commands.add_parser("client-config", help="print configuration to paste into MCP clients")
    config.add_argument("--url", default="http://127.0.0.1:8765/mcp", help="the HTTP transport's URL")
    config.add_argument("--socket", help="the unix socket (default: the installed socket's path)")
    config.add_argument(
        "--exec",
        dest="exec_command",
        metavar="COMMAND",
        help="how clients run fleetbus; `serve` is added (scripts/run.sh takes it too). Default: what works here",
    )


def install_main(args: argparse.Namespace) -> int:
    variant = VARIANTS[args.variant]
    target = plan(
        variant, root=args.root, command=args.exec_command or default_command(), per_connection=args.per_connection
    )
    for path in install(target, force_config=args.force_config):
        print(f"wrote {path}")
    manager = "systemctl" if variant is SYSTEM else "systemctl --user"
    print(f"next: {manager} daemon-reload && {manager} enable --now fleetbus.socket", file=sys.stderr)
    return 0


def client_config_main(args: argparse.Namespace, system_bus: str, user_socket: Callable[[], Path]) -> int:
    socket_path = args.socket or (SYSTEM_SOCKET if os.geteuid() == 0 else str(user_socket()))
    if args.exec_command:
        stdio = StdioCommand([*shlex.split(args.exec_command), "serve"], "The command given with --exec.")
    else:
        stdio = stdio_command(
            fleetbus_argv(), system_bus_answers=bus_answers(system_bus), run_script=checkout_run_script()
        )
    print(client_config(stdio, args.url, socket_path), end="")
    return 0
