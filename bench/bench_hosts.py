"""Hosts over SSH, measured on a simulated fleet in one run:

  fleet start     `Sandbox.create(hosts=N)` wall time, and memory per host (PSS and RSS of its processes),
  cold connect    SshHost.connect() per host (ProxyCommand, key exchange, login), then the first bus link,
  Get Hostname    median round trip of hostname1 `Hostname`, in interleaved rounds:
                    forwarded  fleetbus.hosts as configured by default: stream-local forwarding to
                               /run/dbus/system_bus_socket on the persistent connection, AES-GCM (the choice),
                    bridged    the same connection through systemd-stdio-bridge (ssh_bus_forwarding = false,
                               and the user bus),
                    asyncssh   asyncssh's own forward_local_path on the same connection (our relay's reference),
                    chacha20   our forwarding on a second connection with asyncssh's default cipher order,
                    tcp        our forwarding over a TCP socket opened inside the host's namespace (no
                               ProxyCommand hop: what a plain TCP connection to a real host costs, less the network),
                    busctl     `busctl -H HOST get-property` as a process per read (a login per call),
                    local      the local sandbox's own bus (the floor),
  through fleetbus  the `get_property` tool as a client's call runs it (validation, policy, audit, rate limit,
                    the host registry's link): on the remote host vs on local, in the same run (target ≤ 2×),
  client memory   RSS this process gains per connected host (connection + relay + link), plus its ProxyCommand.

Prints medians and ratios. Run as root: python bench/bench_hosts.py [--hosts N] [--calls N] [--busctl-calls N]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import os
import socket
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import asyncssh

from fleetbus.config import load_settings
from fleetbus.dbus.link import BusLink
from fleetbus.gateway import Caller
from fleetbus.hosts.channels import ChannelSlots
from fleetbus.hosts.relay import Bridged, BusRelay, Forwarded, bridge_argv
from fleetbus.hosts.remote_process import RemoteKiller
from fleetbus.hosts.ssh import SshConnection, SshHost, SshTarget
from fleetbus.hosts.ssh_options import AES_FIRST
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from fleetbus.sandbox.fleet import Fleet
from fleetbus.sandbox.layout import CgroupLayout
from timing import ms, timed

HOSTNAME = ("org.freedesktop.hostname1", "/org/freedesktop/hostname1", "org.freedesktop.DBus.Properties", "Get", "ss")
HOSTNAME_ARGS = ["org.freedesktop.hostname1", "Hostname"]
CLONE_NEWNET = 0x40000000
ROUNDS = 10


def memory_of(pids: set[int]) -> tuple[float, float]:
    """(PSS, RSS) in MiB summed over `pids`: PSS shares common pages out, RSS counts them in every process."""
    pss = rss = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    pss += int(line.split()[1])
                elif line.startswith("Rss:"):
                    rss += int(line.split()[1])
        except OSError:
            continue
    return pss / 1024, rss / 1024


def own_rss() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def proxy_processes() -> set[int]:
    """This process's ProxyCommand children (nsenter execs socat, so they are socat by then)."""
    found = set()
    for task in Path("/proc/self/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/comm").read_text().strip() == "socat":
                    found.add(int(pid))
    return found


def socket_in_namespace(netns: str, address: str, port: int, timeout: float) -> socket.socket:
    """A TCP socket connected from inside another network namespace: setns in a thread of its own, which
    then ends (setns changes only the calling thread)."""
    result: dict[str, object] = {}

    def work() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        fd = os.open(netns, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                result["error"] = OSError(ctypes.get_errno(), "setns")
                return
        finally:
            os.close(fd)
        try:
            result["socket"] = socket.create_connection((address, port), timeout=timeout)
        except OSError as exc:
            result["error"] = exc

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]  # type: ignore[misc]
    sock = result["socket"]
    assert isinstance(sock, socket.socket)
    sock.settimeout(None)
    return sock


def hostname_call(link: BusLink, expected: str) -> Callable[[], Awaitable[None]]:
    async def once() -> None:
        reply = await link.call(*HOSTNAME, HOSTNAME_ARGS, timeout=5)
        assert reply.body[0].value == expected, reply.body

    return once


def busctl_call(sandbox: Sandbox, name: str) -> Callable[[], Awaitable[None]]:
    env = sandbox.with_fleet_path({**os.environ, **sandbox.env()})
    argv = ["busctl", "-H", name, "get-property", HOSTNAME[0], HOSTNAME[1], "org.freedesktop.hostname1", "Hostname"]

    async def once() -> None:
        process = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE)
        out, _ = await process.communicate()
        assert process.returncode == 0, out
        assert name in out.decode(), out

    return once


def tool_call(runtime: Runtime, host: str, expected: str) -> Callable[[], Awaitable[None]]:
    """`get_property` hostname1 Hostname on `host`, as the server runs a client's tool call."""
    context = runtime.context(Caller("bench"))
    arguments = {
        "service": HOSTNAME[0], "path": HOSTNAME[1], "interface": "org.freedesktop.hostname1",
        "property": "Hostname", "host": host,
    }  # fmt: skip

    async def once() -> None:
        result = await runtime.registry.run(context, "get_property", arguments)
        assert not result.is_error, result.text
        assert result.structured["value"] == expected, result.structured

    return once


async def through_fleetbus(sandbox: Sandbox, fleet: Fleet, target: str, calls: int) -> dict[str, float]:
    """Warm `get_property` through fleetbus (Runtime, tool registry, gateway, host registry): remote vs local."""
    with tempfile.TemporaryDirectory(prefix="fleetbus-bench-state-") as state:
        settings = load_settings(
            system_bus=sandbox.system_bus_address,
            session_bus=sandbox.session_bus_address,
            state_dir=Path(state),
            audit_journal=False,
            inventory=fleet.paths.inventory,
            ssh_config=fleet.paths.ssh_config,
            known_hosts=fleet.paths.known_hosts,
            ssh_key=fleet.paths.client_key,
            read_rate=1e9,
            read_burst=1e9,
        )
        runtime = Runtime.build(settings)
        remote, local = tool_call(runtime, target, target), tool_call(runtime, "local", sandbox.hostname)
        samples: dict[str, list[float]] = {"fleetbus remote": [], "fleetbus local": []}
        try:
            # Interleaved rounds: on a shared machine the load changes, and both sides should see the same load.
            for _ in range(ROUNDS):
                samples["fleetbus remote"] += await timed(max(1, calls // ROUNDS), remote, warmup=5)
                samples["fleetbus local"] += await timed(max(1, calls // ROUNDS), local, warmup=5)
            return {name: ms(values) for name, values in samples.items()}
        finally:
            await runtime.gateway.hosts.aclose()
            runtime.close()


async def measure(sandbox: Sandbox, fleet: Fleet, calls: int, busctl_calls: int) -> None:
    cold: list[tuple[str, float, float]] = []
    hosts: list[SshHost] = []
    connections: list[SshConnection] = []
    links: list[BusLink] = []
    gc.collect()
    rss_before = own_rss()
    for simulated in fleet.hosts:
        host = SshHost(
            SshTarget(simulated.name, config=(fleet.paths.ssh_config,), known_hosts=(fleet.paths.known_hosts,))
        )
        began = time.perf_counter()
        connection = await host.connect()
        connected = time.perf_counter()
        link = await connection.open_link("system", connect_timeout=5)
        linked = time.perf_counter()
        await hostname_call(link, simulated.name)()
        cold.append((simulated.name, (connected - began) * 1000, (linked - connected) * 1000))
        hosts.append(host)
        connections.append(connection)
        links.append(link)
    gc.collect()
    client_rss = (own_rss() - rss_before) / len(fleet.hosts)
    proxies = proxy_processes()
    proxy_pss, proxy_rss = memory_of(proxies)
    proxy_pss, proxy_rss = proxy_pss / max(1, len(proxies)), proxy_rss / max(1, len(proxies))

    print("\ncold connect (ProxyCommand, key exchange, login) and first bus link (forwarding probe, channel, Hello):")
    for name, connect_ms, link_ms in cold:
        print(f"  {name}: connect {connect_ms:7.1f} ms   link {link_ms:6.1f} ms")
    print(f"client memory per connected host: {client_rss:.1f} MiB RSS in this process, "
          f"+ its ProxyCommand {proxy_pss:.1f} MiB PSS ({proxy_rss:.1f} MiB RSS)")  # fmt: skip

    target = fleet.hosts[1] if len(fleet.hosts) > 1 else fleet.hosts[0]
    connection = connections[fleet.hosts.index(target)]
    route = connection.bus_route("system")
    cipher = connection._raw.get_extra_info("send_cipher")
    print(f"{target.name}: system bus by {route.describe() if route else '?'}, cipher {cipher}")

    relays: list[BusRelay] = []
    closers: list[Callable[[], object]] = []

    async def relay_link(raw: asyncssh.SSHClientConnection, route: Forwarded | Bridged) -> BusLink:
        relay = BusRelay(target.name, raw, ChannelSlots(target.name), RemoteKiller(target.name, raw), route,
                         setup_timeout=5)  # fmt: skip
        await relay.start()
        relays.append(relay)
        link = BusLink("system", relay.address, 5, target.name)
        await link.connect()
        return link

    raw = connection._raw  # the same asyncssh connection, the other routes
    bridged_link = await relay_link(raw, Bridged(tuple(bridge_argv("system"))))
    forward_dir = Path(tempfile.mkdtemp(prefix="fleetbus-bench-"))
    listener = await raw.forward_local_path(str(forward_dir / "bus"), "/run/dbus/system_bus_socket")
    closers.append(listener.close)
    asyncssh_link = BusLink("system", f"unix:path={forward_dir / 'bus'}", 5, target.name)
    await asyncssh_link.connect()

    chacha = await asyncssh.connect(
        target.name, config=[str(fleet.paths.ssh_config)], known_hosts=str(fleet.paths.known_hosts),
        encryption_algs=[a for a in AES_FIRST if a.startswith("chacha")] + [a for a in AES_FIRST if "chacha" not in a],
    )  # fmt: skip
    closers.append(chacha.close)
    chacha_link = await relay_link(chacha, Forwarded())

    sock = socket_in_namespace(target.netns, target.address, 22, 5)
    tcp = await asyncssh.connect(
        sock=sock, config=None, known_hosts=str(fleet.paths.known_hosts), host_key_alias=target.name,
        username="root", client_keys=[str(fleet.paths.client_key)], encryption_algs=list(AES_FIRST),
    )  # fmt: skip
    closers.append(tcp.close)
    tcp_link = await relay_link(tcp, Forwarded())

    local = BusLink("system", sandbox.system_bus_address, 5)
    await local.connect()
    reads = {
        "forwarded": hostname_call(links[fleet.hosts.index(target)], target.name),
        "bridged": hostname_call(bridged_link, target.name),
        "asyncssh": hostname_call(asyncssh_link, target.name),
        "chacha20": hostname_call(chacha_link, target.name),
        "tcp": hostname_call(tcp_link, target.name),
        "local": hostname_call(local, sandbox.hostname),
    }
    try:
        samples: dict[str, list[float]] = {name: [] for name in reads}
        # Interleaved rounds: on a shared machine the load changes, and every route should see the same load.
        for _ in range(ROUNDS):
            for name, read in reads.items():
                samples[name] += await timed(max(1, calls // ROUNDS), read, warmup=5)
        results = {name: ms(values) for name, values in samples.items()}
        results["busctl"] = ms(await timed(busctl_calls, busctl_call(sandbox, target.name), warmup=2))
        results |= await through_fleetbus(sandbox, fleet, target.name, calls)
    finally:
        for link in (bridged_link, asyncssh_link, chacha_link, tcp_link, local):
            link.close()
        for relay in relays:
            await relay.close()
        for close in closers:
            close()
        for link in links:
            link.close()
        for host in hosts:
            await host.close()
    print(f"\nGet Hostname on {target.name}, median of {calls} ({busctl_calls} for busctl -H):")
    for name, value in results.items():
        print(f"  {name:16} {value:8.3f} ms")
    print("ratios:")
    print(f"  forwarded / local      {results['forwarded'] / results['local']:7.1f}×")
    print(f"  tcp / local            {results['tcp'] / results['local']:7.1f}×")
    print(f"  bridged / forwarded    {results['bridged'] / results['forwarded']:7.2f}×")
    print(f"  asyncssh / forwarded   {results['asyncssh'] / results['forwarded']:7.2f}×")
    print(f"  chacha20 / forwarded   {results['chacha20'] / results['forwarded']:7.2f}×")
    print(f"  busctl -H / forwarded  {results['busctl'] / results['forwarded']:7.0f}×")
    remote, local_tool = results["fleetbus remote"], results["fleetbus local"]
    print(f"  fleetbus remote / fleetbus local   {remote / local_tool:7.2f}×   (target ≤ 2×)")
    print(f"  busctl -H / fleetbus remote        {results['busctl'] / remote:7.0f}×")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hosts", type=int, default=3)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--busctl-calls", type=int, default=20)
    args = parser.parse_args()

    began = time.perf_counter()
    with Sandbox.create(hosts=args.hosts, die_with_parent=True) as sandbox:
        started = time.perf_counter() - began
        fleet = sandbox.fleet
        assert fleet is not None
        cgroups = CgroupLayout.detect()
        print(f"fleet of {args.hosts} hosts (and the local sandbox) up in {started:.2f} s")
        memory = [memory_of(cgroups.pids(h.paths.cgroup_name) | {h.keeper_pid}) for h in fleet.hosts]
        pss = sum(m[0] for m in memory) / len(memory)
        rss = sum(m[1] for m in memory) / len(memory)
        print(f"memory per host: {pss:.1f} MiB PSS ({rss:.1f} MiB RSS, shared pages counted in every process)")
        asyncio.run(measure(sandbox, fleet, args.calls, args.busctl_calls))
        stopping = time.perf_counter()
    print(f"\nteardown {time.perf_counter() - stopping:.2f} s")


if __name__ == "__main__":
    main()
