"""Starting, finding and stopping a simulated fleet: N hosts, each a host keeper in namespaces of its own.

The client side is files: an inventory, known_hosts, an ssh_config whose ProxyCommand enters the host's
network namespace, the client key, and an `ssh` wrapper that reads that config.
"""

from __future__ import annotations

import contextlib
import os
import select
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleetbus.sandbox.fleet import files, limits
from fleetbus.sandbox.fleet.layout import FULL, PROFILES, FleetPaths, HostPaths, host_address, host_names
from fleetbus.sandbox.layout import CgroupLayout

KEEPER_MODULE = "fleetbus.sandbox.fleet.host_keeper"
DROP_SYS_TIME = ["setpriv", "--inh-caps=-sys_time", "--bounding-set=-sys_time", "--"]
"""No process on a simulated host may set the machine's clock, which is not namespaced."""
HOST_NAMESPACES = ["--net", "--mount", "--uts", "--ipc", "--pid", "--fork", "--mount-proc", "--propagation", "private"]
REQUIRED_PROGRAMS = ("sshd", "ssh", "ssh-keygen", "socat", "iptables", "ip")
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class FleetError(RuntimeError):
    pass


def missing_requirements() -> list[str]:
    """What keeps simulated hosts from starting here, beyond what the sandbox itself needs."""
    return [
        f"program {program!r} not found (simulated hosts need openssh-server, openssh-client, socat, iptables "
        "and iproute2)"
        for program in REQUIRED_PROGRAMS
        if shutil.which(program, path=SYSTEM_PATH) is None
    ]


@dataclass
class SimulatedHost:
    name: str
    address: str
    paths: HostPaths
    keeper_pid: int
    """The host's PID 1 as this side sees it; its namespaces are the host's."""
    launcher: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def netns(self) -> str:
        """Names the host's network namespace for `nsenter --net=` while the host lives, and nothing after: no
        namespace file outlives it (a /run/netns entry or a bind mount would need removing)."""
        return f"/proc/{self.keeper_pid}/ns/net"

    def alive(self) -> bool:
        try:
            cmdline = Path(f"/proc/{self.keeper_pid}/cmdline").read_bytes()
        except OSError:
            return False
        return KEEPER_MODULE.encode() in cmdline and str(self.paths.root).encode() in cmdline

    def in_network(self, argv: Sequence[str]) -> list[str]:
        """argv that runs `argv` in the host's network namespace (and nothing else of the host's)."""
        return ["nsenter", f"--net={self.netns}", "--", *argv]

    def state(self) -> dict[str, Any]:
        return {"name": self.name, "address": self.address, "keeper_pid": self.keeper_pid}

    def entry(self) -> files.HostEntry:
        return files.HostEntry(self.name, self.address, self.paths.host_public_key.read_text().strip(), self.netns)


class Fleet:
    """The simulated hosts of one sandbox. Made by `Fleet.start()`, found again by `Fleet.attach()`."""

    def __init__(self, paths: FleetPaths, hosts: list[SimulatedHost], lifeline: int | None = None) -> None:
        self.paths = paths
        self.hosts = hosts
        self._lifeline = lifeline
        self.cgroups = CgroupLayout.detect()

    # ---- life cycle -----------------------------------------------------------------------------

    @classmethod
    def start(
        cls,
        paths: FleetPaths,
        count: int,
        *,
        units: Path | None = None,
        lifeline: bool = False,
        timeout: float = 60,
        profile: str = FULL,
    ) -> Fleet:
        """Start `count` hosts side by side and wait until each answers on ssh. With `lifeline`, the hosts stop
        by themselves when this process ends. `profile` is what runs on each host (layout.PROFILES)."""
        names = host_names(count)
        if profile not in PROFILES:
            raise FleetError(f"unknown host profile {profile!r}: one of {', '.join(PROFILES)}")
        if units is not None and not units.is_dir():
            raise FleetError(f"--units: {units} is not a directory")
        problem = limits.check(count, profile)
        if problem is not None:
            raise FleetError(problem)
        paths.root.mkdir(mode=0o755)
        paths.bin_dir.mkdir()
        _keygen(paths.client_key, "fleetbus-sandbox-client")
        lifeline_read, lifeline_write = os.pipe() if lifeline else (-1, None)
        fleet = cls(paths, [], lifeline_write)
        readiness: dict[str, int] = {}
        try:
            for index, name in enumerate(names, start=1):
                host_paths = paths.host(name)
                address = host_address(index)
                _prepare_host(host_paths, name, address, paths.client_public_key.read_text(), units)
                launcher, ready = _launch(host_paths, name, address, lifeline_read, profile)
                readiness[name] = ready
                fleet.hosts.append(SimulatedHost(name, address, host_paths, 0, launcher))
            answers = _read_answers(readiness, timeout)
            for host in fleet.hosts:
                answer = answers.get(host.name, "")
                if answer != "ready":
                    detail = answer.removeprefix("error: ") or "its keeper exited without a word"
                    raise FleetError(f"simulated host {host.name} did not start: {detail}\n{host_diagnostics(host)}")
                assert host.launcher is not None
                host.keeper_pid = _forked_child(host.launcher.pid)
            fleet.write_client_files(units)
        except BaseException:
            fleet.stop()
            raise
        finally:
            for fd in readiness.values():
                with contextlib.suppress(OSError):
                    os.close(fd)
            if lifeline_read >= 0:
                os.close(lifeline_read)
        return fleet

    @classmethod
    def attach(cls, paths: FleetPaths, state: Sequence[dict[str, Any]]) -> Fleet:
        hosts = [
            SimulatedHost(str(h["name"]), str(h["address"]), paths.host(str(h["name"])), int(h["keeper_pid"]))
            for h in state
        ]
        return cls(paths, hosts)

    def state(self) -> list[dict[str, Any]]:
        return [host.state() for host in self.hosts]

    def stop(self, timeout: float = 30) -> None:
        """Stop every host (by its PID 1: the kernel ends the rest of its PID namespace), then its cgroups."""
        for host in self.hosts:
            if host.alive():
                # A frozen bus would keep the manager from stopping its units in time.
                self.resume_bus(host)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(host.keeper_pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(host.alive() for host in self.hosts) and time.monotonic() < deadline:
            time.sleep(0.05)
        for host in self.hosts:
            if host.alive():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(host.keeper_pid, signal.SIGKILL)
            if host.launcher is not None:
                if host.launcher.poll() is None and host.keeper_pid == 0:
                    host.launcher.kill()  # never got as far as forking the host: nothing else to stop
                with contextlib.suppress(subprocess.TimeoutExpired):
                    host.launcher.wait(timeout=10)
        for host in self.hosts:
            self.cgroups.kill(host.paths.cgroup_name)
            self.cgroups.remove(host.paths.cgroup_name)
        if self._lifeline is not None:
            os.close(self._lifeline)
            self._lifeline = None

    # ---- what clients use -----------------------------------------------------------------------

    def host(self, name: str) -> SimulatedHost:
        for host in self.hosts:
            if host.name == name:
                return host
        known = ", ".join(h.name for h in self.hosts)
        raise FleetError(f"no simulated host {name!r} in this fleet (it has {known})")

    def write_client_files(self, units: Path | None = None) -> None:
        entries = [host.entry() for host in self.hosts]
        groups_file = units / files.GROUPS_FILE if units is not None else None
        groups = groups_file.read_text() if groups_file is not None and groups_file.is_file() else ""
        paths = self.paths
        paths.known_hosts.write_text(files.known_hosts(entries))
        paths.ssh_config.write_text(files.ssh_config(entries, paths.known_hosts, paths.client_key))
        paths.inventory.write_text(files.inventory(entries, paths.ssh_config, paths.client_key, groups))
        wrapper = paths.bin_dir / "ssh"
        wrapper.write_text(files.ssh_wrapper(paths.ssh_config))
        wrapper.chmod(0o755)

    def env(self) -> dict[str, str]:
        """What a client needs to reach the hosts (besides PATH, which `path_prefix` extends)."""
        return {
            "FLEETBUS_INVENTORY": str(self.paths.inventory),
            "FLEETBUS_SSH_CONFIG": str(self.paths.ssh_config),
            "FLEETBUS_KNOWN_HOSTS": str(self.paths.known_hosts),
            "FLEETBUS_SSH_KEY": str(self.paths.client_key),
        }

    @property
    def path_prefix(self) -> str:
        return str(self.paths.bin_dir)

    # ---- the host's system bus ------------------------------------------------------------------

    def bus_pids(self, host: SimulatedHost) -> set[int]:
        """The host's system bus daemon: its service manager's dbus.service, wherever the manager put that unit."""
        found: set[int] = set()
        for hierarchy in self.cgroups.hierarchies:
            for unit in (hierarchy / host.paths.cgroup_name).rglob("dbus.service"):
                with contextlib.suppress(OSError):
                    found |= {int(pid) for pid in (unit / "cgroup.procs").read_text().split()}
        return found

    def resume_bus(self, host: SimulatedHost) -> None:
        for pid in self.bus_pids(host):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


def host_diagnostics(host: SimulatedHost, lines: int = 20) -> str:
    parts = []
    for name in ("keeper", "manager", "journald", "bus", "sshd"):
        with contextlib.suppress(OSError):
            tail = (host.paths.root / f"{name}.log").read_text(errors="replace").splitlines()[-lines:]
            if tail:
                parts.append(f"--- {host.name} {name}.log ---\n" + "\n".join(tail))
    return "\n".join(parts)


def _keygen(path: Path, comment: str) -> None:
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        check=True,
        capture_output=True,
        timeout=30,
    )


def _prepare_host(paths: HostPaths, name: str, address: str, client_key: str, units: Path | None) -> None:
    paths.root.mkdir(parents=True, mode=0o755)
    overlays = (*paths.overlay("etc"), *paths.overlay("var"), *paths.overlay("root"))
    for directory in (paths.run, paths.home, paths.bus_dir, *overlays):
        directory.mkdir(parents=True)
    # sshd's StrictModes: root's home and its .ssh belong to root and nobody else may write them. A stock
    # .bashrc: sshd runs commands through root's shell, which reads it, and stdio-bridge needs a silent one.
    paths.root_home.chmod(0o700)
    for dotfile in (".bashrc", ".profile"):
        with contextlib.suppress(OSError):
            shutil.copy2(Path("/etc/skel") / dotfile, paths.root_home / dotfile)
    ssh_home = paths.root_home / ".ssh"
    ssh_home.mkdir(mode=0o700)
    authorized = ssh_home / "authorized_keys"
    authorized.write_text(client_key)
    authorized.chmod(0o600)
    paths.ssh_dir.mkdir(mode=0o700)
    _keygen(paths.host_key, name)
    paths.sshd_config.write_text(files.sshd_config(address, paths.host_key))
    paths.unit_dir.mkdir(parents=True)
    if units is not None:
        for source in (units, units / name):
            for entry in files.unit_entries(source):
                target = paths.unit_dir / entry.name
                if entry.is_dir():
                    shutil.copytree(entry, target, dirs_exist_ok=True)
                else:
                    shutil.copy2(entry, target)


def _launch(
    paths: HostPaths, name: str, address: str, lifeline: int, profile: str = FULL
) -> tuple[subprocess.Popen[bytes], int]:
    ready_read, ready_write = os.pipe()
    argv = [
        *DROP_SYS_TIME,
        "unshare",
        *HOST_NAMESPACES,
        # If the launcher dies, so does the host's PID 1, and with it the whole host.
        "--kill-child",
        "--",
        sys.executable,
        "-m",
        KEEPER_MODULE,
        str(paths.root),
        "--hostname",
        name,
        "--address",
        address,
        "--cgroup",
        paths.cgroup_name,
        "--ready-fd",
        str(ready_write),
        "--profile",
        profile,
    ]
    passed = [ready_write]
    if lifeline >= 0:
        argv += ["--lifeline-fd", str(lifeline)]
        passed.append(lifeline)
    with open(paths.keeper_log, "ab") as log:
        launcher = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            pass_fds=passed,
            start_new_session=True,
            env=_keeper_env(),
        )
    os.close(ready_write)
    return launcher, ready_read


def _read_answers(readiness: dict[str, int], timeout: float) -> dict[str, str]:
    """Each host's first line on its readiness pipe (empty if it closed without one), read side by side."""
    deadline = time.monotonic() + timeout
    pending = {fd: name for name, fd in readiness.items()}
    buffers: dict[str, bytes] = {name: b"" for name in readiness}
    answers: dict[str, str] = {}
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            for name in pending.values():
                answers[name] = "error: no answer from its keeper within the start-up deadline"
            break
        readable, _, _ = select.select(list(pending), [], [], remaining)
        for fd in readable:
            name = pending[fd]
            chunk = os.read(fd, 4096)
            buffers[name] += chunk
            if not chunk or b"\n" in buffers[name]:
                answers[name] = buffers[name].decode(errors="replace").strip()
                del pending[fd]
    return answers


def _forked_child(launcher_pid: int) -> int:
    """The host's PID 1 as seen from here: `unshare --fork` forks it and waits for it."""
    children = Path(f"/proc/{launcher_pid}/task/{launcher_pid}/children").read_text().split()
    if len(children) != 1:
        raise FleetError(f"expected one child of the host launcher {launcher_pid}, found {children}")
    return int(children[0])


def _keeper_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "PYTHONPATH", "VIRTUAL_ENV")}
    env.setdefault("PATH", SYSTEM_PATH)
    return env
