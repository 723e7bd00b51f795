"""`fleetbus sandbox run|start|env|exec|stop`: the sandbox for a person at a shell."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

from fleetbus.sandbox.control import Sandbox, SandboxError
from fleetbus.sandbox.fleet import Fault, FleetError, faults
from fleetbus.sandbox.fleet.layout import FULL, MAX_HOSTS, PROFILES

CHILD_GRACE_SECONDS = 10.0


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "sandbox",
        help="a disposable environment of real services (system bus, systemd, journald, hostnamed…)",
        description="Start real services on a private system bus in private namespaces, without touching "
        "the machine's /run, /etc, clock or network.",
    )
    commands = parser.add_subparsers(dest="sandbox_command", required=True)

    run = commands.add_parser(
        "run", help="start a sandbox, run CMD in it (in this working directory), tear it down; exits with CMD's code"
    )
    _add_common(run)
    run.add_argument("--units", type=Path, help="directory of unit files to install before CMD runs")
    _add_hosts(run)
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD ARGS…")

    start = commands.add_parser("start", help="start a sandbox in the background and print `export` lines")
    _add_common(start)
    start.add_argument("--units", type=Path, help="directory of unit files to install")
    _add_hosts(start)

    env = commands.add_parser("env", help="print `export` lines for a running sandbox")
    env.add_argument("directory", nargs="?", type=Path, help="sandbox directory (default: $FLEETBUS_SANDBOX)")

    exec_ = commands.add_parser(
        "exec",
        help="run CMD inside a running sandbox, in this working directory",
        description="DIR is the sandbox directory (default: $FLEETBUS_SANDBOX); with DIR, `--` must follow it.",
    )
    # One list split at `--` by hand: an optional positional before a REMAINDER would take CMD as DIR.
    exec_.add_argument("words", nargs=argparse.REMAINDER, metavar="[DIR] -- CMD ARGS…")

    fault = commands.add_parser(
        "fault",
        help="put a simulated host in a fault, or clear every fault of it",
        description="drop: packets to its port 22 vanish; reject: port 22 resets connections; freeze-bus: its "
        "dbus-daemon is stopped (SIGSTOP); kill-sshd: its sshd and every session are killed; clear: all undone.",
    )
    fault.add_argument("host", help="the simulated host, e.g. host02")
    fault.add_argument("fault", choices=[f.value for f in Fault])
    fault.add_argument("directory", nargs="?", type=Path, help="sandbox directory (default: $FLEETBUS_SANDBOX)")

    stop = commands.add_parser("stop", help="stop a sandbox and remove everything it made")
    _add_common(stop)
    stop.add_argument("directory", nargs="?", type=Path, help="sandbox directory (default: $FLEETBUS_SANDBOX)")
    stop.add_argument("--all", action="store_true", help="stop every sandbox found under --base")


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--base", type=Path, help="where sandbox directories are made (default: the temp dir)")


def _add_hosts(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hosts",
        type=_host_count,
        default=0,
        metavar="N",
        help="also start N simulated hosts host01…hostNN, each reachable over SSH only (inventory, ssh_config and "
        "known_hosts are exported as FLEETBUS_INVENTORY, FLEETBUS_SSH_CONFIG, FLEETBUS_KNOWN_HOSTS); "
        "--units DIR/*.service go to every host, DIR/HOST/*.service to that host, DIR/groups.ini adds groups",
    )
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default=FULL,
        help="what runs on each simulated host: full (sshd, system bus, systemd manager, journald, bus-activated "
        "services; the default) or light (sshd, system bus and hostnamed only: ~60 %% of the memory, 1/5 of the "
        "inotify instances; for 100+ hosts)",
    )


def _host_count(text: str) -> int:
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of hosts") from None
    if not 0 <= count <= MAX_HOSTS:
        raise argparse.ArgumentTypeError(f"a sandbox has 0 to {MAX_HOSTS} simulated hosts, not {count}")
    return count


def start_timeout(hosts: int) -> float:
    """60 s, and more for big fleets: on 2 cores a hundred hosts take ~0.3 s of CPU each to come up."""
    return max(60.0, hosts * 1.0)


def main(args: argparse.Namespace) -> int:
    """Runs one sandbox command; a SandboxError is reported by the caller, as every command's failure is."""
    handler = {"run": _run, "start": _start, "env": _env, "exec": _exec, "fault": _fault, "stop": _stop}
    return handler[args.sandbox_command](args)


def _command(argv: list[str], usage: str = "fleetbus sandbox run -- CMD ARGS…") -> list[str]:
    command = argv[1:] if argv[:1] == ["--"] else argv
    if not command:
        raise SandboxError(f"no command given; usage: {usage}")
    return command


def split_exec_words(words: list[str]) -> tuple[Path | None, list[str]]:
    """`[DIR] -- CMD…` as (DIR, CMD); without `--`, every word is the command."""
    if "--" not in words:
        return None, _command(words, "fleetbus sandbox exec [DIR] -- CMD ARGS…")
    cut = words.index("--")
    before, command = words[:cut], words[cut + 1 :]
    if len(before) > 1:
        raise SandboxError(f"exec takes at most one sandbox directory before `--`, got {before}")
    return (Path(before[0]) if before else None), _command(command, "fleetbus sandbox exec [DIR] -- CMD ARGS…")


def _run(args: argparse.Namespace) -> int:
    command = _command(args.argv)
    sandbox = Sandbox.create(
        args.base,
        units=args.units,
        hosts=args.hosts,
        die_with_parent=True,
        profile=args.profile,
        timeout=start_timeout(args.hosts),
    )
    try:
        return _run_child(sandbox, command)
    finally:
        sandbox.stop()


def _run_child(sandbox: Sandbox, command: list[str]) -> int:
    child = sandbox.popen(command)

    # Ctrl-C reaches the child through the terminal; a SIGTERM for us is passed on. Either way
    # we wait for the child (for a while) so the sandbox is torn down after it, not under it.
    def forward(signum: int, _frame: object) -> None:
        if signum == signal.SIGTERM:
            child.send_signal(signum)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        while True:
            try:
                code = child.wait()
                break
            except KeyboardInterrupt:
                continue
    except BaseException:
        try:
            child.wait(timeout=CHILD_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            child.kill()
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 128 - code if code < 0 else code


def _start(args: argparse.Namespace) -> int:
    sandbox = Sandbox.create(
        args.base, units=args.units, hosts=args.hosts, profile=args.profile, timeout=start_timeout(args.hosts)
    )
    print(_exports(sandbox))
    print(f"# stop it with: fleetbus sandbox stop {shlex.quote(str(sandbox.paths.root))}")
    # Its directory is how other shells find it: `fleetbus approvals|approve` look in running sandboxes' stores.
    print("# fleetbus approvals / approve ID find its servers' approval requests from any shell, without these")
    return 0


def _attach(directory: Path | None) -> Sandbox:
    chosen = directory or (Path(os.environ["FLEETBUS_SANDBOX"]) if os.environ.get("FLEETBUS_SANDBOX") else None)
    if chosen is None:
        raise SandboxError("which sandbox? give its directory or set FLEETBUS_SANDBOX")
    return Sandbox.attach(chosen)


def _env(args: argparse.Namespace) -> int:
    print(_exports(_attach(args.directory)))
    return 0


def _exec(args: argparse.Namespace) -> int:
    directory, command = split_exec_words(args.words)
    sandbox = _attach(directory)
    if not sandbox.keeper_alive():
        raise SandboxError(f"sandbox {sandbox.paths.root} is not running")
    return _run_child(sandbox, command)


def _fault(args: argparse.Namespace) -> int:
    sandbox = _attach(args.directory)
    if sandbox.fleet is None:
        raise SandboxError(f"sandbox {sandbox.paths.root} has no simulated hosts (start it with --hosts N)")
    try:
        faults.apply(sandbox.fleet, args.host, Fault(args.fault))
    except FleetError as exc:
        raise SandboxError(str(exc)) from exc
    return 0


def _stop(args: argparse.Namespace) -> int:
    targets = Sandbox.find_all(args.base) if args.all else [_attach(args.directory).paths.root]
    for directory in targets:
        Sandbox.attach(directory).stop()
        print(f"stopped {directory}", file=sys.stderr)
    return 0


def _exports(sandbox: Sandbox) -> str:
    lines = [f"export {name}={shlex.quote(value)}" for name, value in sandbox.env().items()]
    if sandbox.fleet is not None:
        lines.append(f'export PATH={shlex.quote(sandbox.fleet.path_prefix)}:"$PATH"')
    return "\n".join(lines)
