"""Fan-out to simulated fleets of N hosts, against Ansible ad-hoc and parallel `busctl -H` in the same run.

For each N (full hosts: sshd, bus, systemd, journald, hostnamed; light hosts: sshd, bus, hostnamed only):

  fleet start    `Sandbox.create(hosts=N)` wall time, memory per host (PSS/RSS of its processes)
  cold           one fan-out from nothing: SSH handshake (ProxyCommand, key exchange, login), bus relay, Hello, read
                 (get_property; the health read comes after it, on the open connections: its "first" is not cold)
  warm           the same fan-out again on the open connections (median of --rounds)
  reads          get_property   hostname1 `Hostname`
                 delayed        `org.fleetbus.Bench1` `Delayed`, answered --host-delay-ms after it arrives by one
                                helper process (bench/slow_service.py) on every host's bus: a latency-bound read,
                                where the others are CPU-bound on this machine, so t(N) shows the fan-out's
                                concurrency itself (with Σ per-host time / wall time: how many hosts overlapped)
                 health         a health_check-like read: ListUnits, failed units, NRestarts of every running service
                                (full hosts only: light hosts have no service manager)
  references     ansible        `ansible -i INV fleet -f 50 -m command -a 'systemctl is-active dbus.service'`
                                (ControlPersist + pipelining; `hostname` on light hosts), first run and warm median
                 busctl -H      `xargs -P 50 busctl -H HOST get-property … Hostname` (a login per host per run)
  client cost    RSS and fds this process gains per connected host, its ProxyCommand processes, handshake times

Reads go through fleetbus's fan_out engine over hosts.ssh.SshHost connections (one relay link per host). With
`--via runtime` (available once fleetbus.hosts.registry exists) they go through Runtime's tool registry instead:
`get_property` and `health_check` with `host=`, as an MCP client's call would.

Run as root: python bench/bench_fleet.py [--sizes 5,20,50] [--light-sizes 100] [--rounds 5] [--no-ansible]
    [--inotify-instances 1024] [--host-delay-ms 20 (0: no delayed read)]
A full host holds 5 inotify instances, a light one 1, against fs.inotify.max_user_instances (128 by default, shared
by every root process): `--inotify-instances N` raises that limit for the run and puts the old value back after.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import importlib.util
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fleetbus.config import load_settings
from fleetbus.dbus.link import BusLink
from fleetbus.gateway import Caller
from fleetbus.hosts.ssh import HandshakeGate, SshHost, SshLimits, SshTarget
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from fleetbus.sandbox.fleet import Fleet, limits
from fleetbus.sandbox.layout import CgroupLayout
from fleetbus.tools.fanout.engine import FanOutResult, fan_out
from fleetbus.tools.fanout.grouping import group_outcomes
from fleetbus.tools.registry import ToolContext

HAVE_REGISTRY = importlib.util.find_spec("fleetbus.hosts.registry") is not None
"""Hosts landed: Runtime can run a tool on a host, and `--via runtime` measures that path."""

HOSTNAME = ("org.freedesktop.hostname1", "/org/freedesktop/hostname1")
PROPERTIES = "org.freedesktop.DBus.Properties"
SD, SD_PATH, MANAGER = "org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager"
SERVICE = "org.freedesktop.systemd1.Service"
UNIT = "dbus.service"
"""What Ansible asks `systemctl is-active` about: a full host's system bus is a unit of its service manager."""
DEADLINE = 10.0
FORKS = 50
SLOW_SERVICE = Path(__file__).with_name("slow_service.py")
DELAYED = ("org.fleetbus.Bench1", "/org/fleetbus/Bench1", "org.fleetbus.Bench1", "Delayed")
"""The latency-bound read: slow_service.py's name, object, interface and property on every host."""


# ---- measuring this process and the hosts ---------------------------------------------------------------------


def memory_of(pids: set[int]) -> tuple[float, float]:
    """(PSS, RSS) in MiB summed over `pids`."""
    pss = rss = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
    return pss / 1024, rss / 1024


def own_rss() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def own_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def child_processes(command: str) -> set[int]:
    """This process's children whose command is `command` (the ProxyCommands: nsenter execs socat)."""
    found = set()
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == command:
                    found.add(int(pid))
    return found


def median(samples: list[float]) -> float:
    return statistics.median(samples) if samples else float("nan")


# ---- the reads ---------------------------------------------------------------------------------------------


class Reader(Protocol):
    async def hostname(self, host: str) -> str: ...
    async def delayed(self, host: str) -> str: ...
    async def health(self, host: str) -> Mapping[str, Any]: ...
    async def close(self) -> None: ...


@dataclass
class DirectReader:
    """One SshHost and one system-bus relay link per host, made on first use and kept (what a HostRegistry does),
    the handshakes bounded by one shared gate."""

    fleet: Fleet
    limits: SshLimits = field(default_factory=lambda: SshLimits(connect_timeout=DEADLINE, bus_setup_timeout=DEADLINE))
    gate: HandshakeGate = field(default_factory=HandshakeGate)
    hosts: dict[str, SshHost] = field(default_factory=dict)
    links: dict[str, BusLink] = field(default_factory=dict)
    handshakes: list[float] = field(default_factory=list)
    """Seconds per SshHost.connect() (waiting for a handshake slot included)."""

    async def link(self, name: str) -> BusLink:
        link = self.links.get(name)
        if link is None:
            target = SshTarget(name, config=(self.fleet.paths.ssh_config,), known_hosts=(self.fleet.paths.known_hosts,))
            host = self.hosts.setdefault(name, SshHost(target, self.limits, handshakes=self.gate))
            began = time.perf_counter()
            connection = await host.connect()
            self.handshakes.append(time.perf_counter() - began)
            link = self.links[name] = await connection.open_link("system", connect_timeout=DEADLINE)
        return link

    async def hostname(self, host: str) -> str:
        link = await self.link(host)
        reply = await link.call(*HOSTNAME, PROPERTIES, "Get", "ss", ["org.freedesktop.hostname1", "Hostname"],
                                timeout=DEADLINE)  # fmt: skip
        return str(reply.body[0].value)

    async def delayed(self, host: str) -> str:
        link = await self.link(host)
        service, path, interface, prop = DELAYED
        reply = await link.call(service, path, PROPERTIES, "Get", "ss", [interface, prop], timeout=DEADLINE)
        return str(reply.body[0].value)

    async def health(self, host: str) -> Mapping[str, Any]:
        # What health_check reads first: every unit, the failed ones, and the restart count of each running service.
        link = await self.link(host)
        (rows,) = (await link.call(SD, SD_PATH, MANAGER, "ListUnits", "", [], timeout=DEADLINE)).body
        failed = sorted(row[0] for row in rows if row[3] == "failed")
        running = [row for row in rows if row[0].endswith(".service") and row[2] == "loaded" and row[3] == "active"]

        async def restarts(row: list[Any]) -> tuple[str, int]:
            reply = await link.call(SD, row[6], PROPERTIES, "Get", "ss", [SERVICE, "NRestarts"], timeout=DEADLINE)
            return row[0], int(reply.body[0].value)

        counts = await asyncio.gather(*(restarts(row) for row in running))
        return {"failed": failed, "restarted": sorted(unit for unit, count in counts if count), "units": len(rows)}

    async def close(self) -> None:
        for link in self.links.values():
            link.close()
        for host in self.hosts.values():
            await host.close()
        self.links.clear()
        self.hosts.clear()


class RuntimeReader:
    """The tools themselves, through the runtime an MCP server runs (`host=` on every call)."""

    def __init__(self, sandbox: Sandbox, state: Path) -> None:
        fleet = sandbox.fleet
        assert fleet is not None
        settings = load_settings(
            system_bus=sandbox.system_bus_address,
            session_bus=sandbox.session_bus_address,
            state_dir=state,
            inventory=fleet.paths.inventory,
            ssh_config=fleet.paths.ssh_config,
            known_hosts=fleet.paths.known_hosts,
            ssh_key=fleet.paths.client_key,
        )
        self.runtime = Runtime.build(settings)
        self.context = ToolContext(self.runtime.gateway, Caller("bench"))
        self.handshakes: list[float] = []  # the registry does not expose them; the direct path measures them

    async def _run(self, tool: str, **arguments: Any) -> Mapping[str, Any]:
        result = await self.runtime.registry.run(self.context, tool, arguments)
        if result.is_error:
            raise RuntimeError(result.text)
        structured: Mapping[str, Any] = result.structured
        return structured

    async def hostname(self, host: str) -> str:
        answer = await self._run("get_property", service=HOSTNAME[0], path=HOSTNAME[1],
                                 interface="org.freedesktop.hostname1", property="Hostname", host=host)  # fmt: skip
        return str(answer["value"])

    async def delayed(self, host: str) -> str:
        service, path, interface, prop = DELAYED
        answer = await self._run("get_property", service=service, path=path, interface=interface, property=prop,
                                 host=host)  # fmt: skip
        return str(answer["value"])

    async def health(self, host: str) -> Mapping[str, Any]:
        return await self._run("health_check", host=host)

    async def fanned(self, tool: str, **arguments: Any) -> Mapping[str, Any]:
        """One call of the tool with hosts=all: the fan-out as a client makes it (grouped answer)."""
        return await self._run(tool, hosts="all", per_host_timeout=DEADLINE, overall_timeout=120, **arguments)

    async def fanned_hostname(self) -> float:
        began = time.perf_counter()
        answer = await self.fanned("get_property", service=HOSTNAME[0], path=HOSTNAME[1],
                                   interface="org.freedesktop.hostname1", property="Hostname")  # fmt: skip
        took = time.perf_counter() - began
        if answer["failed"]:
            raise RuntimeError(f"hosts=all get_property: {answer['failures']}")
        return took

    async def fanned_delayed(self) -> float:
        service, path, interface, prop = DELAYED
        began = time.perf_counter()
        answer = await self.fanned("get_property", service=service, path=path, interface=interface, property=prop)
        took = time.perf_counter() - began
        if answer["failed"]:
            raise RuntimeError(f"hosts=all get_property (delayed): {answer['failures']}")
        return took

    async def fanned_health(self) -> tuple[float, int]:
        began = time.perf_counter()
        answer = await self.fanned("health_check")
        return time.perf_counter() - began, len(answer["groups"])

    async def close(self) -> None:
        await getattr(self.runtime.gateway, "hosts").aclose()  # noqa: B009 - the attribute arrives with hosts
        self.runtime.close()


async def fan(
    hosts: list[str], read: Callable[[str], Awaitable[Any]], deadline: float = DEADLINE
) -> tuple[float, FanOutResult[Any]]:
    began = time.perf_counter()
    result = await fan_out(hosts, read, per_host_deadline=deadline, overall_deadline=120)
    return time.perf_counter() - began, result


def failures(result: FanOutResult[Any]) -> str:
    failed = [o for o in result.outcomes if not o.ok]
    if not failed:
        return ""
    return f"{len(failed)} failed (e.g. {failed[0].host}: {failed[0].kind}: {failed[0].message})"


async def warm(hosts: list[str], read: Callable[[str], Awaitable[Any]]) -> float:
    elapsed, result = await fan(hosts, read)
    if failures(result):
        raise AssertionError(f"a warm fan-out failed: {failures(result)}")
    return elapsed


async def warm_overlapping(hosts: list[str], read: Callable[[str], Awaitable[Any]]) -> tuple[float, float]:
    """A warm fan-out's wall time, and how many hosts it had in flight on average: the sum of the hosts' own
    times over the wall time (1 if they ran one after another, N if all N overlapped from start to end)."""
    elapsed, result = await fan(hosts, read)
    if failures(result):
        raise AssertionError(f"a warm fan-out failed: {failures(result)}")
    if any(o.value != o.host for o in result.outcomes):
        raise AssertionError("a host answered the delayed read with another's name")
    return elapsed, sum(o.elapsed for o in result.outcomes) / elapsed


# ---- the latency-bound service -------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def slow_service(fleet: Fleet, delay_ms: float) -> AsyncIterator[int]:
    """bench/slow_service.py on every host's system bus (reached from here through the socket under the host's
    /run), until the block ends; yields its PID. It is a process of its own, so its CPU is not counted as this
    one's; it reads its stdin, whose write end only this process holds, so it ends with the bench however the
    bench ends, and it is stopped by PID here."""
    targets = [f"{host.name}={host.paths.system_bus_socket}" for host in fleet.hosts]
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(SLOW_SERVICE), "--delay-ms", str(delay_ms), *targets,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert process.stdout is not None
        ready = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        if ready.split() != [b"ready", str(len(targets)).encode()]:
            raise RuntimeError(f"slow_service.py did not start (said {ready!r}, rc {process.returncode})")
        yield process.pid
    finally:
        if process.returncode is None:
            os.kill(process.pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), timeout=5)
            except TimeoutError:
                os.kill(process.pid, signal.SIGKILL)
                await process.wait()


# ---- the references ----------------------------------------------------------------------------------------


def ansible_config(directory: Path) -> Path:
    config = directory / "ansible.cfg"
    config.write_text(
        "[defaults]\n"
        f"forks = {FORKS}\n"
        "host_key_checking = True\n"
        "gathering = explicit\n"
        "interpreter_python = /usr/bin/python3\n"
        "retry_files_enabled = False\n"
        f"local_tmp = {directory / 'tmp'}\n"
        "[ssh_connection]\n"
        "pipelining = True\n"
        "ssh_args = -o ControlMaster=auto -o ControlPersist=300s\n"
        f"control_path_dir = {directory / 'cp'}\n"
    )
    return config


def run_ansible(fleet: Fleet, config: Path, command: str, expected_hosts: int) -> float:
    env = {**os.environ, "ANSIBLE_CONFIG": str(config), "ANSIBLE_STDOUT_CALLBACK": "oneline"}
    argv = ["ansible", "-i", str(fleet.paths.inventory), "fleet", "-f", str(FORKS), "-m", "command", "-a", command]
    began = time.perf_counter()
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600, check=False)
    elapsed = time.perf_counter() - began
    ok = done.stdout.count("| CHANGED |") + done.stdout.count("| SUCCESS |")
    if done.returncode != 0 or ok != expected_hosts:
        raise AssertionError(f"ansible: {ok}/{expected_hosts} hosts, rc {done.returncode}\n{done.stdout[-2000:]}"
                             f"\n{done.stderr[-2000:]}")  # fmt: skip
    return elapsed


def stop_control_masters(directory: Path) -> None:
    """The ControlPersist masters Ansible left (ssh processes whose control path is in `directory`), by PID."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if str(directory).encode() in (entry / "cmdline").read_bytes():
                    os.kill(int(entry.name), signal.SIGTERM)


def run_busctl(sandbox: Sandbox, hosts: list[str]) -> float:
    env = sandbox.with_fleet_path({**os.environ, **sandbox.env()})
    argv = ["xargs", "-P", str(FORKS), "-I{}", "busctl", "-H", "{}", "get-property", *HOSTNAME,
            "org.freedesktop.hostname1", "Hostname"]  # fmt: skip
    began = time.perf_counter()
    done = subprocess.run(argv, input="\n".join(hosts) + "\n", env=env, capture_output=True, text=True, timeout=600,
                          check=False)  # fmt: skip
    elapsed = time.perf_counter() - began
    answered = {line.split('"')[1] for line in done.stdout.splitlines() if '"' in line}
    if done.returncode != 0 or answered != set(hosts):
        raise AssertionError(f"busctl -H: {len(answered)}/{len(hosts)} answered, rc {done.returncode}: {done.stderr}")
    return elapsed


# ---- one fleet size ----------------------------------------------------------------------------------------


@dataclass
class Figures:
    size: int
    profile: str
    start_s: float
    host_pss: float
    host_rss: float
    cold_get: float = 0.0
    warm_get: float = 0.0
    first_health: float = 0.0
    warm_health: float = 0.0
    ansible_first: float = 0.0
    ansible_warm: float = 0.0
    busctl: float = 0.0
    client_rss_per_host: float = 0.0
    proxy_pss_per_host: float = 0.0
    fds_per_host: float = 0.0
    handshake_median: float = 0.0
    handshake_max: float = 0.0
    groups: int = 0
    cold_failures: str = ""
    health_failures: str = ""
    tool_get: float = 0.0
    """`get_property hosts=all` as one tool call through the runtime (--via runtime): the fan-out tool itself."""
    tool_health: float = 0.0
    tool_health_groups: int = 0
    cpu_get_per_host: float = 0.0
    """Seconds of this process's own CPU per host per warm get_property fan-out: what fleetbus itself costs,
    where the wall time also holds the simulated hosts' sshd, bridge, bus and hostnamed on the same cores."""
    delay_ms: float = 0.0
    """The latency-bound read's delay on every host (0: not measured)."""
    warm_delayed: float = 0.0
    """A warm fan-out of the delayed read (median): through `fan_out` over links, or host= tool calls (runtime)."""
    delayed_overlap: float = 0.0
    """Hosts in flight on average during that fan-out (median): Σ per-host time / wall time."""
    cpu_delayed_per_host: float = 0.0
    tool_delayed: float = 0.0
    """`get_property hosts=all` of the delayed read as one tool call (--via runtime)."""
    cpu_tool_delayed_per_host: float = 0.0


async def measure_delayed(fleet: Fleet, reader: Reader, figures: Figures, rounds: int) -> None:
    """The latency-bound read, on the connections the other reads opened, while slow_service.py runs."""
    hosts = [host.name for host in fleet.hosts]
    async with slow_service(fleet, figures.delay_ms):
        await warm(hosts, reader.delayed)  # the first read of a new name: its owner is looked up
        cpu_before = time.process_time()
        runs = [await warm_overlapping(hosts, reader.delayed) for _ in range(rounds)]
        figures.cpu_delayed_per_host = (time.process_time() - cpu_before) / rounds / len(hosts)
        figures.warm_delayed = median([took for took, _ in runs])
        figures.delayed_overlap = median([overlap for _, overlap in runs])
        if isinstance(reader, RuntimeReader):
            await reader.fanned_delayed()
            cpu_before = time.process_time()
            figures.tool_delayed = median([await reader.fanned_delayed() for _ in range(rounds)])
            figures.cpu_tool_delayed_per_host = (time.process_time() - cpu_before) / rounds / len(hosts)


async def measure_fleetbus(sandbox: Sandbox, figures: Figures, rounds: int, via: str, state: Path) -> None:
    fleet = sandbox.fleet
    assert fleet is not None
    hosts = [host.name for host in fleet.hosts]
    gc.collect()
    rss_before, fds_before = own_rss(), own_fds()
    reader: Reader = RuntimeReader(sandbox, state) if via == "runtime" else DirectReader(fleet)
    try:
        # The per-host deadline counts the wait for a handshake slot (8 at a time): at 100+ hosts on a loaded
        # machine a cold host may miss 10 s, and that is reported, not hidden; the warm rounds need every host.
        figures.cold_get, cold = await fan(hosts, reader.hostname)
        figures.cold_failures = failures(cold)
        assert all(o.value == o.host for o in cold.outcomes if o.ok), "a host answered with another's name"
        await warm(hosts, reader.hostname)  # connects what the cold round missed
        gc.collect()
        figures.client_rss_per_host = (own_rss() - rss_before) / len(hosts)
        figures.fds_per_host = (own_fds() - fds_before) / len(hosts)
        proxies = child_processes("socat")
        figures.proxy_pss_per_host = memory_of(proxies)[0] / max(1, len(proxies))
        handshakes = getattr(reader, "handshakes", [])
        figures.handshake_median, figures.handshake_max = median(handshakes), max(handshakes, default=float("nan"))
        cpu_before = time.process_time()
        figures.warm_get = median([await warm(hosts, reader.hostname) for _ in range(rounds)])
        figures.cpu_get_per_host = (time.process_time() - cpu_before) / rounds / len(hosts)
        if isinstance(reader, RuntimeReader):
            figures.tool_get = median([await reader.fanned_hostname() for _ in range(rounds)])
            if figures.profile == "full":
                runs = [await reader.fanned_health() for _ in range(max(1, rounds // 2))]
                figures.tool_health = median([took for took, _ in runs])
                figures.tool_health_groups = runs[-1][1]
        if figures.profile == "full":
            figures.first_health, result = await fan(hosts, reader.health)
            # Through the runtime, health_check needs host figures read on remote hosts: said, not fatal.
            figures.health_failures = failures(result)
            if not figures.health_failures:
                figures.groups = len(group_outcomes(result.outcomes).answers)
                figures.warm_health = median([await warm(hosts, reader.health) for _ in range(rounds)])
        if figures.delay_ms:
            await measure_delayed(fleet, reader, figures, rounds)
    finally:
        await reader.close()


def measure_references(sandbox: Sandbox, figures: Figures, rounds: int, ansible: bool) -> None:
    fleet = sandbox.fleet
    assert fleet is not None
    hosts = [host.name for host in fleet.hosts]
    figures.busctl = median([run_busctl(sandbox, hosts) for _ in range(max(1, rounds // 2))])
    if not ansible:
        return
    directory = Path(tempfile.mkdtemp(prefix="fleetbus-bench-ansible-"))
    command = f"systemctl is-active {UNIT}" if figures.profile == "full" else "hostname"
    try:
        config = ansible_config(directory)
        figures.ansible_first = run_ansible(fleet, config, command, len(hosts))
        figures.ansible_warm = median(
            [run_ansible(fleet, config, command, len(hosts)) for _ in range(max(1, rounds // 2))]
        )
    finally:
        stop_control_masters(directory)
        shutil.rmtree(directory, ignore_errors=True)


def one_size(size: int, profile: str, rounds: int, ansible: bool, via: str, delay_ms: float) -> Figures:
    began = time.perf_counter()
    with Sandbox.create(hosts=size, die_with_parent=True, profile=profile,
                        timeout=max(60.0, size * 1.5)) as sandbox:  # fmt: skip
        start_s = time.perf_counter() - began
        fleet = sandbox.fleet
        assert fleet is not None
        cgroups = CgroupLayout.detect()
        memory = [memory_of(cgroups.pids(h.paths.cgroup_name) | {h.keeper_pid}) for h in fleet.hosts]
        figures = Figures(size, profile, start_s, median([m[0] for m in memory]), median([m[1] for m in memory]),
                          delay_ms=delay_ms)  # fmt: skip
        print(f"\n{size} {profile} hosts up in {start_s:.1f} s; per host {figures.host_pss:.1f} MiB PSS "
              f"({figures.host_rss:.1f} MiB RSS)", flush=True)  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="fleetbus-bench-state-") as state:
            asyncio.run(measure_fleetbus(sandbox, figures, rounds, via, Path(state)))
        measure_references(sandbox, figures, rounds, ansible)
        report_size(figures)
    return figures


def report_size(f: Figures) -> None:
    print(f"  fleetbus get_property  cold {f.cold_get * 1000:7.0f} ms   warm {f.warm_get * 1000:7.1f} ms   "
          f"(fleetbus CPU {f.cpu_get_per_host * 1e6:.0f} µs per host)")  # fmt: skip
    if f.tool_get:
        health = (
            f"   health_check hosts=all {f.tool_health * 1000:7.1f} ms ({f.tool_health_groups} groups)"
            if f.tool_health
            else ""
        )
        print(f"  tool get_property hosts=all {f.tool_get * 1000:7.1f} ms (one call, grouped){health}")
    if f.warm_delayed:
        print(f"  delayed read ({f.delay_ms:g} ms a host)  warm {f.warm_delayed * 1000:7.1f} ms, "
              f"{f.delayed_overlap:.1f} hosts in flight   "
              f"(fleetbus CPU {f.cpu_delayed_per_host * 1e6:.0f} µs per host)")  # fmt: skip
    if f.tool_delayed:
        print(f"  tool get_property hosts=all (delayed) {f.tool_delayed * 1000:7.1f} ms   "
              f"(fleetbus CPU {f.cpu_tool_delayed_per_host * 1e6:.0f} µs per host)")  # fmt: skip
    if f.cold_failures:
        print(f"  cold fan-out: {f.cold_failures}")
    if f.health_failures:
        print(f"  health read: {f.health_failures}")
    elif f.profile == "full":
        print(f"  fleetbus health read  first {f.first_health * 1000:7.0f} ms   warm {f.warm_health * 1000:7.1f} ms"
              f"   ({f.groups} group{'s' if f.groups != 1 else ''})")  # fmt: skip
    if f.ansible_warm:
        print(f"  ansible ad-hoc         first {f.ansible_first * 1000:6.0f} ms   warm {f.ansible_warm * 1000:7.0f} ms")
    print(f"  busctl -H (xargs -P {FORKS})  {f.busctl * 1000:7.0f} ms")
    print(f"  handshake (connect) median {f.handshake_median * 1000:.0f} ms, max {f.handshake_max * 1000:.0f} ms; "
          f"client per host {f.client_rss_per_host:.2f} MiB RSS, {f.fds_per_host:.1f} fds, "
          f"+ ProxyCommand {f.proxy_pss_per_host:.1f} MiB PSS", flush=True)  # fmt: skip


def summary(results: list[Figures]) -> None:
    print("\nsummary (medians; ratios are reference / fleetbus warm):")
    print("  N    profile  get warm  health warm  ansible warm  busctl -H   ×ansible(get/health)  ×busctl")
    for f in results:
        health = f"{f.warm_health * 1000:8.1f} ms" if f.warm_health else "       —   "
        vs_ansible = (f"{f.ansible_warm / f.warm_get:6.0f}× / " + (f"{f.ansible_warm / f.warm_health:.0f}×"
                      if f.warm_health else "—")) if f.ansible_warm else "—"  # fmt: skip
        ansible = f"{f.ansible_warm * 1000:9.0f} ms" if f.ansible_warm else "        —   "
        print(f"  {f.size:<4} {f.profile:<8} {f.warm_get * 1000:6.1f} ms  {health}  {ansible}  "
              f"{f.busctl * 1000:7.0f} ms   {vs_ansible:>18}  {f.busctl / f.warm_get:6.0f}×")  # fmt: skip
    full = {f.size: f for f in results if f.profile == "full"}
    if len(full) >= 2:
        small, big = full[min(full)], full[max(full)]
        print(
            f"  scaling t({big.size})/t({small.size}): get_property {big.warm_get / small.warm_get:.2f}, "
            f"health {big.warm_health / small.warm_health if small.warm_health else float('nan'):.2f}, "
            f"cold get {big.cold_get / small.cold_get:.2f}"
        )
    delayed = [f for f in results if f.warm_delayed]
    if delayed:
        print(f"\nlatency-bound read ({delayed[0].delay_ms:g} ms on every host; in flight: Σ per-host time / wall):")
        print("  N    profile  delayed warm  in flight  CPU/host   tool hosts=all  CPU/host")
        for f in delayed:
            tool = (
                f"{f.tool_delayed * 1000:9.1f} ms  {f.cpu_tool_delayed_per_host * 1e6:6.0f} µs"
                if f.tool_delayed
                else "        —           —"
            )
            print(f"  {f.size:<4} {f.profile:<8} {f.warm_delayed * 1000:9.1f} ms  {f.delayed_overlap:9.1f}  "
                  f"{f.cpu_delayed_per_host * 1e6:6.0f} µs   {tool}")  # fmt: skip
    full_delayed = {f.size: f for f in delayed if f.profile == "full"}
    if len(full_delayed) >= 2:
        small, big = full_delayed[min(full_delayed)], full_delayed[max(full_delayed)]
        tool = f", tool hosts=all {big.tool_delayed / small.tool_delayed:.2f}" if small.tool_delayed else ""
        print(f"  scaling t({big.size})/t({small.size}): delayed {big.warm_delayed / small.warm_delayed:.2f}{tool} "
              f"(get_property, CPU-bound here: {big.warm_get / small.warm_get:.2f})")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="5,20,50", help="full-profile fleet sizes")
    parser.add_argument("--light-sizes", default="100", help="light-profile fleet sizes ('' for none)")
    parser.add_argument("--rounds", type=int, default=5, help="warm fan-outs per read (references: half)")
    parser.add_argument("--no-ansible", action="store_true")
    parser.add_argument("--inotify-instances", type=int, default=0, help="raise the limit to this for the run")
    parser.add_argument("--via", choices=["direct", "runtime"], default="direct",
                        help="direct: fan_out over SshHost relay links; runtime: tools via Runtime")  # fmt: skip
    parser.add_argument("--host-delay-ms", type=float, default=20.0,
                        help="the latency-bound read's delay on every host (0: leave that read out)")  # fmt: skip
    args = parser.parse_args()
    if args.via == "runtime" and not HAVE_REGISTRY:
        parser.error("--via runtime needs fleetbus.hosts.registry (hosts have not landed in this checkout)")
    plan = [(int(n), "full") for n in args.sizes.split(",") if n] + [
        (int(n), "light") for n in args.light_sizes.split(",") if n
    ]
    print(f"via {args.via}; {os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}")
    results = []
    previous = limits.inotify_limit()
    if args.inotify_instances > previous:
        limits.MAX_INSTANCES.write_text(f"{args.inotify_instances}\n")
        print(f"fs.inotify.max_user_instances {previous} -> {args.inotify_instances} for this run")
    try:
        for size, profile in plan:
            results.append(one_size(size, profile, args.rounds, not args.no_ansible, args.via, args.host_delay_ms))
    finally:
        if limits.inotify_limit() != previous:
            limits.MAX_INSTANCES.write_text(f"{previous}\n")
            print(f"fs.inotify.max_user_instances back to {previous}")
        summary(results)


if __name__ == "__main__":
    main()
