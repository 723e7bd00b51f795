"""Controlling a sandbox from outside: create it, run commands in it, install units, tear it down.

The real work happens in `keeper`, a process living in the sandbox's namespaces; this side talks to
it through a readiness pipe, signals, and the sandbox directory.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import select
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from fleetbus.sandbox import files
from fleetbus.sandbox.fleet import Fleet
from fleetbus.sandbox.fleet import limits as fleet_limits
from fleetbus.sandbox.fleet import missing_requirements as fleet_requirements
from fleetbus.sandbox.fleet.files import GROUPS_FILE
from fleetbus.sandbox.fleet.layout import FleetPaths
from fleetbus.sandbox.layout import CgroupLayout, SandboxPaths

DIRECTORY_PREFIX = "fleetbus-sandbox-"
DROP_SYS_TIME = ["setpriv", "--inh-caps=-sys_time", "--bounding-set=-sys_time", "--"]
"""No process in a sandbox may set the machine's clock, which is not namespaced."""

REQUIRED_PROGRAMS = ("dbus-daemon", "busctl", "journalctl", "unshare", "nsenter", "setpriv", "mount")


class SandboxError(RuntimeError):
    pass


def missing_requirements(*, hosts: bool = False) -> list[str]:
    """What keeps a sandbox (with simulated `hosts`) from starting on this machine, in words an operator can act on."""
    problems = [f"program {p!r} not found" for p in REQUIRED_PROGRAMS if shutil.which(p) is None]
    if hosts:
        problems += fleet_requirements()
    for executable in ("/lib/systemd/systemd", "/lib/systemd/systemd-journald"):
        if not os.access(executable, os.X_OK):
            problems.append(f"{executable} not found (install the 'systemd' package)")
    if os.geteuid() != 0:
        problems.append("the sandbox needs root (namespaces, mounts, cgroups)")
    return problems


class Sandbox:
    """A running sandbox. Use `Sandbox.create()` (or `with Sandbox.create() as sandbox:`)."""

    def __init__(
        self,
        paths: SandboxPaths,
        keeper_pid: int,
        hostname: str,
        process: subprocess.Popen[bytes] | None = None,
        fleet: Fleet | None = None,
    ) -> None:
        self.paths = paths
        self.keeper_pid = keeper_pid
        self.hostname = hostname
        self.fleet = fleet
        """The simulated hosts (`--hosts N`), or None."""
        self._process = process
        self._cgroups = CgroupLayout.detect()

    # ---- life cycle -----------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        base: Path | None = None,
        *,
        units: Path | None = None,
        hosts: int = 0,
        die_with_parent: bool = False,
        timeout: float = 60.0,
        profile: str = "full",
    ) -> Sandbox:
        """A running sandbox; with `hosts`, also that many simulated hosts (host01…) reachable over SSH, each
        running the services of `profile` ("full", or "light": sshd, bus and hostnamed only)."""
        problems = missing_requirements(hosts=hosts > 0)
        shortage = fleet_limits.check(hosts, profile) if hosts and not problems else None
        if shortage is not None:
            problems.append(shortage)
        if problems:
            raise SandboxError("cannot start a sandbox: " + "; ".join(problems))
        sandbox_id = secrets.token_hex(4)
        paths = SandboxPaths(Path(base or tempfile.gettempdir()) / f"{DIRECTORY_PREFIX}{sandbox_id}")
        paths.root.mkdir(mode=0o755)
        for directory in (paths.run, paths.home, paths.bus_dir, *paths.overlay("etc"), *paths.overlay("var")):
            directory.mkdir(parents=True)
        hostname = f"sandbox-{sandbox_id}"

        ready_read, ready_write = os.pipe()
        argv = [
            *DROP_SYS_TIME,
            "unshare",
            "--mount",
            "--uts",
            "--propagation",
            "private",
            "--",
            sys.executable,
            "-m",
            "fleetbus.sandbox.keeper",
            str(paths.root),
            "--hostname",
            hostname,
            "--ready-fd",
            str(ready_write),
        ]
        if die_with_parent:
            argv += ["--die-with-parent", str(os.getpid())]
        with open(paths.keeper_log, "ab") as log:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                pass_fds=(ready_write,),
                start_new_session=True,
                env=_keeper_env(),
            )
        os.close(ready_write)
        sandbox = cls(paths, process.pid, hostname, process)
        state: dict[str, Any] = {
            "keeper_pid": process.pid,
            "hostname": hostname,
            "cgroup": paths.cgroup_name,
            "created": time.time(),
        }
        paths.write_state(state)
        try:
            if hosts:
                # Side by side with the local keeper's start-up; the hosts live inside the sandbox's cgroup.
                sandbox.fleet = Fleet.start(
                    _fleet_paths(paths), hosts, units=units, lifeline=die_with_parent, timeout=timeout, profile=profile
                )
                state["fleet"] = sandbox.fleet.state()
                paths.write_state(state)
            answer = _read_line(ready_read, timeout)
        except BaseException:
            sandbox.stop()
            raise
        finally:
            os.close(ready_read)
        if answer != "ready":
            detail = answer.removeprefix("error: ") if answer else "the keeper exited without a word"
            logs = sandbox.diagnostics()
            sandbox.stop()
            raise SandboxError(f"sandbox did not start: {detail}\n{logs}")
        if units is not None:
            try:
                sandbox.install_units(units)
            except Exception:
                sandbox.stop()
                raise
        return sandbox

    @classmethod
    def attach(cls, directory: Path) -> Sandbox:
        paths = SandboxPaths(directory.resolve())
        try:
            state = paths.read_state()
        except (OSError, ValueError) as exc:
            raise SandboxError(f"{directory} is not a sandbox directory: {exc}") from exc
        fleet = Fleet.attach(_fleet_paths(paths), state["fleet"]) if state.get("fleet") else None
        return cls(paths, int(state["keeper_pid"]), str(state["hostname"]), fleet=fleet)

    @staticmethod
    def find_all(base: Path | None = None) -> list[Path]:
        root = Path(base or tempfile.gettempdir())
        return sorted(p for p in root.glob(f"{DIRECTORY_PREFIX}*") if (p / "state.json").exists())

    @classmethod
    def running(cls, base: Path | None = None) -> list[Sandbox]:
        """The sandboxes under `base` (default: the temp dir) whose keeper runs, made by this user.

        This is how a plain shell finds a running sandbox (`fleetbus approve` looks in their stores). The temp
        dir is everyone's, so a directory another user owns or may write is never taken for one.
        """
        found = []
        for directory in cls.find_all(base):
            # A sandbox being torn down vanishes, a foreign one may hold anything: neither is one to use.
            with contextlib.suppress(OSError, SandboxError, KeyError, TypeError, ValueError):
                info = directory.stat()
                if info.st_uid != os.geteuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
                    continue
                sandbox = cls.attach(directory)
                if sandbox.keeper_alive():
                    found.append(sandbox)
        return found

    def keeper_alive(self) -> bool:
        if self._process is not None:
            return self._process.poll() is None
        try:
            cmdline = Path(f"/proc/{self.keeper_pid}/cmdline").read_bytes()
        except OSError:
            return False
        return b"fleetbus.sandbox.keeper" in cmdline and str(self.paths.root).encode() in cmdline

    def stop(self, timeout: float = 30.0) -> None:
        """Stop everything the sandbox started, by PID and cgroup, and delete its directory."""
        if self.fleet is not None:
            # Hosts first: the local keeper's own teardown would SIGKILL them with its cgroup.
            self.fleet.stop()
        if self.keeper_alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.keeper_pid, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            while self.keeper_alive() and time.monotonic() < deadline:
                time.sleep(0.05)
            if self.keeper_alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.keeper_pid, signal.SIGKILL)
        if self._process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._process.wait(timeout=5)
        # The keeper cleans up after itself; this covers a keeper that was killed or crashed.
        self._cgroups.kill(self.paths.cgroup_name)
        self._cgroups.remove(self.paths.cgroup_name)
        shutil.rmtree(self.paths.root, ignore_errors=True)

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ---- using it -------------------------------------------------------------------------------

    @property
    def system_bus_address(self) -> str:
        return f"unix:path={self.paths.system_bus_socket}"

    @property
    def session_bus_address(self) -> str:
        return f"unix:path={self.paths.session_bus_socket}"

    def env(self, *, inside: bool = False) -> dict[str, str]:
        """Variables that point clients at the sandbox; `inside` gives the paths as seen in its namespace."""
        if inside:
            system, session = f"unix:path={files.SYSTEM_BUS_SOCKET}", f"unix:path={files.SESSION_BUS_SOCKET}"
            journal = files.JOURNAL_SOCKET
        else:
            system, session = self.system_bus_address, self.session_bus_address
            journal = str(self.paths.run / files.JOURNAL_SOCKET.removeprefix("/run/"))
        # A fleetbus pointed at the sandbox keeps its approvals and audit log there too, and mirrors
        # audit records into the sandbox's journal, so nothing it does lands in the machine's /var.
        variables = {
            "DBUS_SYSTEM_BUS_ADDRESS": system,
            "DBUS_SESSION_BUS_ADDRESS": session,
            "FLEETBUS_SANDBOX": str(self.paths.root),
            "FLEETBUS_STATE_DIR": str(self.paths.state_dir),
            "FLEETBUS_JOURNAL_SOCKET": journal,
        }
        if not inside:
            # Outside, journalctl would read the machine's journal; inside, /run/log/journal is the sandbox's.
            variables["FLEETBUS_JOURNAL_DIRECTORY"] = str(self.paths.journal_dir)
        if self.fleet is not None:
            variables.update(self.fleet.env())
        return variables

    def with_fleet_path(self, env: dict[str, str]) -> dict[str, str]:
        """`env` with the fleet's `ssh` wrapper first on PATH, so `ssh host01`, `busctl -H host01` and
        `systemctl -H host01` reach the simulated hosts."""
        if self.fleet is not None:
            env["PATH"] = f"{self.fleet.path_prefix}:{env.get('PATH') or os.defpath}"
        return env

    def command(self, argv: Sequence[str], *, cwd: str | os.PathLike[str] | None = None) -> list[str]:
        """argv that runs `argv` inside the sandbox: its namespaces, its cgroup, no CAP_SYS_TIME — in `cwd`,
        by default the caller's working directory, as for any child process (entering a mount namespace
        would otherwise start it in `/`, and relative paths such as `.venv/bin/fleetbus` would fail)."""
        targets = [
            str(h / self.paths.cgroup_name / "commands.scope" / "cgroup.procs") for h in self._cgroups.hierarchies
        ]
        join_cgroup = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1"; shift; n=$((n-1)); done; exec "$@"'
        return [
            "/bin/sh",
            "-c",
            join_cgroup,
            "sh",
            str(len(targets)),
            *targets,
            "nsenter",
            f"--target={self.keeper_pid}",
            "--mount",
            "--uts",
            f"--wd={_working_directory(cwd)}",
            "--",
            *DROP_SYS_TIME,
            *argv,
        ]

    def popen(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, **kwargs: Any
    ) -> subprocess.Popen[Any]:
        merged = dict(os.environ if env is None else env)
        merged.update(self.env(inside=True))
        command = self.command(argv, cwd=kwargs.pop("cwd", None))
        return subprocess.Popen(command, env=self.with_fleet_path(merged), **kwargs)

    def run(
        self, argv: Sequence[str], *, env: Mapping[str, str] | None = None, timeout: float | None = 60, **kwargs: Any
    ) -> subprocess.CompletedProcess[Any]:
        merged = dict(os.environ if env is None else env)
        merged.update(self.env(inside=True))
        command = self.command(argv, cwd=kwargs.pop("cwd", None))
        return subprocess.run(command, env=self.with_fleet_path(merged), timeout=timeout, **kwargs)  # noqa: PLW1510

    def busctl(self, *args: str, timeout: float = 30) -> str:
        result = subprocess.run(
            ["busctl", f"--address={self.system_bus_address}", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise SandboxError(f"busctl {' '.join(args)} failed: {result.stderr.strip()}")
        return result.stdout

    def systemd(self, method: str, signature: str = "", *args: str) -> str:
        """Call a method of the sandbox's service manager (org.freedesktop.systemd1.Manager)."""
        return self.busctl(
            "call",
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            method,
            *([signature, *args] if signature else []),
        )

    def journal(self, *args: str) -> str:
        """journalctl over the sandbox's journal (readable from outside, it lives in the sandbox's /run)."""
        result = subprocess.run(
            ["journalctl", f"--directory={self.paths.journal_dir}", "--no-pager", *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout

    def install_units(self, source: Path) -> list[str]:
        """Copy unit files (and their .d/.wants directories) from `source` and reload the manager. With a fleet,
        the hosts' own directories and groups.ini are theirs, not the local manager's."""
        if not source.is_dir():
            raise SandboxError(f"--units: {source} is not a directory")
        installed = []
        for entry in sorted(source.iterdir()):
            if self.fleet is not None and (
                entry.name == GROUPS_FILE or (entry.is_dir() and entry.name in {h.name for h in self.fleet.hosts})
            ):
                continue
            target = self.paths.unit_dir / entry.name
            if entry.is_dir():
                shutil.copytree(entry, target, dirs_exist_ok=True)
            else:
                shutil.copy2(entry, target)
            installed.append(entry.name)
        self.reload()
        return installed

    def write_unit(self, name: str, text: str) -> None:
        (self.paths.unit_dir / name).write_text(text)
        self.reload()

    def reload(self) -> None:
        self.systemd("Reload")

    def diagnostics(self, lines: int = 30) -> str:
        parts = []
        for name in ("keeper", "manager", "journald"):
            log = self.paths.root / f"{name}.log"
            with contextlib.suppress(OSError):
                tail = log.read_text(errors="replace").splitlines()[-lines:]
                if tail:
                    parts.append(f"--- {name}.log ---\n" + "\n".join(tail))
        return "\n".join(parts)


def _fleet_paths(paths: SandboxPaths) -> FleetPaths:
    return FleetPaths(paths.root / "fleet", paths.cgroup_name)


def _working_directory(cwd: str | os.PathLike[str] | None) -> str:
    if cwd is not None:
        return os.path.abspath(cwd)
    try:
        return os.getcwd()
    except FileNotFoundError:  # the caller's directory was removed; it exists nowhere to enter
        return "/"


def _keeper_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "PYTHONPATH", "VIRTUAL_ENV")}
    env.setdefault("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
    return env


def _read_line(fd: int, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    data = b""
    while b"\n" not in data:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return "error: no answer from the keeper within the start-up deadline"
        readable, _, _ = select.select([fd], [], [], remaining)
        if not readable:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()
