"""Every command a person types: serve, tool, tools, explain, approvals/approve/deny, audit, token, hosts, install,
client-config, sandbox. Settings are read here, once, and passed down."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Collection, Sequence
from pathlib import Path

from pydantic import ValidationError

from fleetbus import __version__, host_commands, oversight, tool_arguments
from fleetbus.command_line import print_error
from fleetbus.config import Settings, load_settings
from fleetbus.gateway import Caller
from fleetbus.guard.approvals import ApprovalError
from fleetbus.guard.policy import SAFETY_PRESETS, PolicyError
from fleetbus.runtime import Runtime, audit_key
from fleetbus.sandbox import cli as sandbox_cli
from fleetbus.sandbox.control import SandboxError
from fleetbus.server import auth, install, transports
from fleetbus.tools.discovery import DISCOVERY

FAILED, USAGE = 1, 2
# A request that cannot be decided (used, expired, unknown) is a failure, not a usage error: `approve` says 1.
FAILURES: tuple[type[Exception], ...] = (ApprovalError,)
USAGE_ERRORS: tuple[type[Exception], ...] = (ValidationError, PolicyError, SandboxError, ValueError)
DASH_VALUE_OPTIONS = {"audit": ("--since",)}
"""Options whose value may start with '-' (`--since -15m`), which argparse would take for an option."""


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
        description="Arguments are key=value (text, or the integer, number or boolean the tool's schema asks "
        "for), key:=JSON (any JSON value: arrays, objects), or --json '{…}' for all of them.",
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

    oversight.add_parsers(commands, _add_state_options, _add_approvals_options)
    auth.add_parsers(commands, _add_state_options)
    host_commands.add_parsers(commands, _add_state_options)
    install.add_parsers(commands)
    sandbox_cli.add_parser(commands)
    _name_commands(parser)
    return parser


def _add_state_options(parser: argparse.ArgumentParser) -> None:
    """What a command needs that only reads or writes fleetbus's state (audit log, tokens)."""
    parser.add_argument("--config", type=Path, help="TOML configuration file (default /etc/fleetbus/config.toml)")
    parser.add_argument("--state-dir", type=Path, metavar="DIR", help="where approvals and the audit log live")


def _add_approvals_options(parser: argparse.ArgumentParser) -> None:
    _add_state_options(parser)
    parser.add_argument(
        "--approvals-dir", type=Path, metavar="DIR", help="the approval store (default STATE_DIR/approvals)"
    )


def _add_settings_options(parser: argparse.ArgumentParser) -> None:
    """What a command needs that talks to buses under the policy."""
    _add_state_options(parser)
    parser.add_argument("--system-bus", metavar="ADDRESS", help="system bus address (overrides the environment)")
    parser.add_argument("--session-bus", metavar="ADDRESS", help="session bus address (overrides the environment)")
    parser.add_argument("--safety", choices=SAFETY_PRESETS, help="safety preset (default readonly)")
    parser.add_argument("--policy", type=Path, metavar="FILE", help="TOML policy rules layered over the preset")
    parser.add_argument(
        "--toolsets", metavar="NAMES", help="toolsets listed from the start, comma-separated (default: default)"
    )


def _name_commands(parser: argparse.ArgumentParser) -> None:
    """Give every (sub)command its full name, e.g. `fleetbus audit query`, for its error messages."""
    parser.set_defaults(command_name=parser.prog)
    for child in _subcommands(parser).values():
        _name_commands(child)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    # argparse has no public way to walk its tree; its actions list is the documented-enough one.
    found: dict[str, argparse.ArgumentParser] = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found.update(action.choices)
    return found


def _settings(args: argparse.Namespace) -> Settings:
    """The settings as the server would resolve them, with whichever of the command's flags were given."""
    return load_settings(
        getattr(args, "config", None),
        system_bus=getattr(args, "system_bus", None),
        session_bus=getattr(args, "session_bus", None),
        safety=getattr(args, "safety", None),
        policy_file=getattr(args, "policy", None),
        state_dir=getattr(args, "state_dir", None),
        approvals_dir=getattr(args, "approvals_dir", None),
        toolsets=args.toolsets.split(",") if getattr(args, "toolsets", None) else None,
    )


def values_may_start_with_dash(argv: Sequence[str], commands: Collection[str]) -> list[str]:
    """`--since -15m` as `--since=-15m` for the options that take such values, before a bare `--` only.

    `commands` are the top-level command names: the first of them in `argv` is the command being run.
    """
    words = list(argv)
    command = next((word for word in words if word in commands), None)
    options = DASH_VALUE_OPTIONS.get(command or "", ())
    rewritten: list[str] = []
    index = 0
    while index < len(words):
        word = words[index]
        if word == "--":
            return rewritten + words[index:]
        following = words[index + 1] if index + 1 < len(words) else None
        if word in options and following is not None and following.startswith("-"):
            rewritten.append(f"{word}={following}")
            index += 2
            continue
        rewritten.append(word)
        index += 1
    return rewritten


async def _run_tool(runtime: Runtime, name: str, given: tool_arguments.ToolArguments, prog: str) -> int:
    try:
        spec = runtime.registry.get(name)
        if spec is None or name in DISCOVERY:
            await runtime.start(follow=False)  # a pack tool, or a search of the packs' methods: build them once
            spec = runtime.registry.get(name)
        arguments = given.for_schema(spec.input_schema if spec is not None else None)
        result = await runtime.registry.run(runtime.context(Caller("cli")), name, arguments)
    finally:
        await runtime.stop()
        runtime.close()
    if result.is_error:
        print_error(prog, result.text)
        return FAILED
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


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "sandbox":
        return sandbox_cli.main(args)
    if args.command == "install":
        return install.install_main(args)
    settings = _settings(args)
    if args.command == "client-config":
        return install.client_config_main(args, settings.system_bus, transports.default_socket_path)
    if args.command == "serve":
        return transports.serve_command(args, settings)
    if args.command == "tools":
        return asyncio.run(_list_tools(Runtime.build(settings)))
    if args.command in ("tool", "explain"):
        name = args.name if args.command == "tool" else "explain"
        given = tool_arguments.parse(args.arguments, args.json_arguments)
        return asyncio.run(_run_tool(Runtime.build(settings), name, given, args.command_name))
    if args.command in ("approvals", "approve", "deny"):
        return oversight.approvals_main(args, settings)
    if args.command == "audit":
        return oversight.audit_main(args, settings.audit_directory, audit_key(settings))
    if args.command == "token":
        return auth.token_main(args, settings.tokens_path)
    if args.command == "hosts":
        return host_commands.hosts_main(args, settings)
    raise AssertionError(f"unhandled command {args.command}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    words = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(values_may_start_with_dash(words, _subcommands(parser)))
    logging.basicConfig(level=args.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")
    try:
        return _dispatch(args)
    except FAILURES as exc:
        print_error(args.command_name, str(exc))
        return FAILED
    except USAGE_ERRORS as exc:
        print_error(args.command_name, str(exc))
        return USAGE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
