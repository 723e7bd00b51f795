"""`fleetbus hosts list|check|trust`: what the inventory holds, what is reachable now, and accepting a host's key
after a person has seen its fingerprint."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable

from fleetbus.command_line import print_error
from fleetbus.config import Settings
from fleetbus.hosts.errors import HostError
from fleetbus.hosts.registry import HostRegistry
from fleetbus.hosts.ssh_options import SshTarget
from fleetbus.runtime import host_registry

FAILED, USAGE = 1, 2


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    add_state_options: Callable[[argparse.ArgumentParser], None],
) -> None:
    hosts = commands.add_parser("hosts", help="the inventory's hosts: list them, check them, trust a host's key")
    actions = hosts.add_subparsers(dest="hosts_action", required=True)
    listing = actions.add_parser("list", help="hosts of the inventory with address and groups (connects to none)")
    add_state_options(listing)
    listing.add_argument("pattern", nargs="?", help="Ansible host pattern (default: all, and local)")
    check = actions.add_parser("check", help="try to reach each host now; exit 1 if any is not reachable")
    add_state_options(check)
    check.add_argument("pattern", nargs="?", help="Ansible host pattern (default: all, and local)")
    trust = actions.add_parser("trust", help="show the key a host offers and add it to fleetbus's known_hosts")
    add_state_options(trust)
    trust.add_argument("name", help="the host's inventory name")
    trust.add_argument("--yes", action="store_true", help="add the key without asking (for scripts)")


def hosts_main(args: argparse.Namespace, settings: Settings) -> int:
    registry = host_registry(settings)
    try:
        if args.hosts_action == "list":
            return _list(registry, args.pattern)
        if args.hosts_action == "check":
            return asyncio.run(_check(registry, args.pattern))
        return _trust(registry, settings, args.name, args.yes, args.command_name)
    finally:
        registry.close()


def _names(registry: HostRegistry, pattern: str | None) -> list[str]:
    return registry.names() if pattern is None else registry.select(pattern)


def _list(registry: HostRegistry, pattern: str | None) -> int:
    for name in _names(registry, pattern):
        entry = registry.entry(name)
        groups = ",".join(registry.inventory.group_names(name)) or "-"
        print(f"{name:<24} {entry.address or '-':<24} {groups}")
    return 0


async def _check(registry: HostRegistry, pattern: str | None) -> int:
    try:
        states = await registry.check(_names(registry, pattern))
    finally:
        await registry.aclose()
    for state in states:
        print(f"{state.name:<24} {state.state:<16} {state.reason or ''}".rstrip())
    return 0 if all(state.state == "reachable" for state in states) else FAILED


def _trust(registry: HostRegistry, settings: Settings, name: str, yes: bool, prog: str) -> int:
    # asyncssh (under trust) only for the command that needs it: every other command starts without it.
    from fleetbus.hosts.trust import add_known_host, known_hosts_file, known_hosts_read, offered_key  # noqa: PLC0415

    entry = registry.entry(name)
    if entry.is_local:
        print_error(prog, "local is this machine: it is reached without SSH and has no host key to trust")
        return USAGE
    path = known_hosts_file(settings.known_hosts)
    target = SshTarget(
        name, address=entry.address, port=entry.port, config=(settings.ssh_config,) if settings.ssh_config else ()
    )
    try:
        read = known_hosts_read(settings.known_hosts)
        offered = asyncio.run(offered_key(target, path, timeout=settings.connect_timeout, read=read))
    except HostError as exc:
        print_error(prog, str(exc))
        return FAILED
    print(f"{name} ({entry.address or name}) offers a {offered.key_type} key with fingerprint {offered.fingerprint}")
    if offered.listed == "same":
        print(f"{path} already trusts this key; nothing to do")
        return 0
    if offered.listed == "other":
        where = offered.listed_in[0] if offered.listed_in else path
        print_error(
            prog,
            f"{where} lists a different key for {name}: the host's key changed, or someone is intercepting the "
            f"connection. If the host was really reinstalled, remove the old entry first (ssh-keygen -f {where} "
            f"-R {name}), then trust the new key.",
        )
        return FAILED
    if not yes:
        if not sys.stdin.isatty():
            print_error(prog, "not a terminal: compare the fingerprint, then repeat with --yes to add the key")
            return FAILED
        answer = input(f"Add it to {path}? Compare the fingerprint with the host's own first. [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("not added")
            return FAILED
    add_known_host(path, offered)
    print(f"added to {path}")
    return 0
