"""Every command a person types: serve, tool, tools, explain, approvals/approve/deny, audit, token, install,
client-config, sandbox."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from fleetbus import __version__, oversight
from fleetbus.config import Settings, load_settings
from fleetbus.gateway import Caller
from fleetbus.guard.approvals import ApprovalError
from fleetbus.guard.policy import SAFETY_PRESETS, PolicyError
from fleetbus.runtime import Runtime
from fleetbus.sandbox import cli as sandbox_cli
from fleetbus.server import auth, install, transports
from fleetbus.tools.discovery import DISCOVERY


class UsageError(Exception):
    pass


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetbus",
        description="Inspect and operate Linux hosts through D-Bus, as an MCP server, under operator policy.",
    )
    parser.add_argument("--version", action="version", version=f"fleetbus {__version__}")
    parser.add_argument("--log-level", default="WARNING", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve MCP (stdio, Streamable HTTP, a unix socket, systemd sockets)")
    _add_settings_options(serve)
    transports.add_serve_options(serve)

    tool = commands.add_parser(
        "tool",
        help="run one tool as an MCP client would, and print its result",
        description="Arguments are key=value (a string) or key:=JSON (any JSON value), or --json '{…}'.",
    )
    _add_settings_options(tool)
    tool.add_argument("name", help="tool name, e.g. get_property")
    tool.add_argument("arguments", nargs="*", metavar="key=value|key:=json")
    tool.add_argument("--json", dest="json_arguments", metavar="OBJECT", help="all arguments as one JSON object")

    tools = commands.add_parser("tools", help="list the tools the policy lets clients see, with their titles")
    _add_settings_options(tools)

    explain = commands.add_parser(
        "explain", help="what the policy would decide for a call, without making it (arguments as for `tool`)"
    )
    _add_settings_options(explain)
    explain.add_argument("arguments", nargs="*", metavar="key=value|key:=json")
    explain.add_argument("--json", dest="json_arguments", metavar="OBJECT", help="all arguments as one JSON object")

    oversight.add_parsers(commands, _add_settings_options)
    auth.add_parsers(commands, _add_settings_options)
    install.add_parsers(commands)

    sandbox_cli.add_parser(commands)
    return parser


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="TOML configuration file (default /etc/fleetbus/config.toml)")
    parser.add_argument("--system-bus", metavar="ADDRESS", help="system bus address (overrides the environment)")
    parser.add_argument("--session-bus", metavar="ADDRESS", help="session bus address (overrides the environment)")
    parser.add_argument("--safety", choices=SAFETY_PRESETS, help="safety preset (default readonly)")
    parser.add_argument("--policy", type=Path, metavar="FILE", help="TOML policy rules layered over the preset")
    parser.add_argument("--state-dir", type=Path, metavar="DIR", help="where approvals and the audit log live")
    parser.add_argument(
        "--toolsets", metavar="NAMES", help="toolsets listed from the start, comma-separated (default: default)"
    )


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        args.config,
        system_bus=args.system_bus,
        session_bus=args.session_bus,
        safety=args.safety,
        policy_file=args.policy,
        state_dir=args.state_dir,
        toolsets=args.toolsets.split(",") if args.toolsets else None,
    )


def parse_tool_arguments(items: Sequence[str], json_arguments: str | None) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if json_arguments is not None:
        try:
            loaded = json.loads(json_arguments)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--json is not valid JSON: {exc}") from exc
        if not isinstance(loaded, dict):
            raise UsageError("--json must be a JSON object")
        arguments.update(loaded)
    for item in items:
        if ":=" in item and ("=" not in item or item.index(":=") < item.index("=")):
            key, raw = item.split(":=", 1)
            try:
                arguments[key] = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{key}:= needs a JSON value: {exc}") from exc
        elif "=" in item:
            key, value = item.split("=", 1)
            arguments[key] = value
        else:
            raise UsageError(f"argument {item!r} is neither key=value nor key:=json")
    return arguments


async def _run_tool(runtime: Runtime, name: str, arguments: dict[str, Any]) -> int:
    try:
        if runtime.registry.get(name) is None or name in DISCOVERY:
            await runtime.start(follow=False)  # a pack tool, or a search of the packs' methods: build them once
        result = await runtime.registry.run(runtime.context(Caller("cli")), name, arguments)
    finally:
        await runtime.stop()
        runtime.close()
    if result.is_error:
        print(f"error: {result.text}", file=sys.stderr)
        return 1
    print(json.dumps(result.structured, indent=2, ensure_ascii=False))
    return 0


async def _list_tools(runtime: Runtime) -> int:
    """What a client would see: the policy decides which tools, the budget how many pack tools."""
    try:
        await runtime.start(follow=False)
        for entry in runtime.listed(Caller("cli")):
            kind = "read-only" if entry.annotations.read_only else "changes"
            print(f"{entry.spec.name:<28} {entry.spec.toolset:<10} {kind:<9} {entry.spec.title}")
    finally:
        await runtime.stop()
        runtime.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "sandbox":
        return sandbox_cli.main(args)
    if args.command == "install":
        return install.install_main(args)
    if args.command == "client-config":
        return install.client_config_main(args, transports.default_socket_path)
    try:
        settings = _settings(args)
        if args.command == "serve":
            return transports.serve_command(args, settings)
        if args.command == "tools":
            return asyncio.run(_list_tools(Runtime.build(settings)))
        if args.command in ("tool", "explain"):
            name = args.name if args.command == "tool" else "explain"
            arguments = parse_tool_arguments(args.arguments, args.json_arguments)
            return asyncio.run(_run_tool(Runtime.build(settings), name, arguments))
        if args.command in ("approvals", "approve", "deny"):
            return oversight.approvals_main(args, settings.approvals_directory)
        if args.command == "audit":
            return oversight.audit_main(args, settings.audit_directory)
        if args.command == "token":
            return auth.token_main(args, settings.tokens_path)
    except (UsageError, ValidationError, PolicyError, ApprovalError, ValueError) as exc:
        print(f"fleetbus: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    raise AssertionError(f"unhandled command {args.command}")


if __name__ == "__main__":
    sys.exit(main())
