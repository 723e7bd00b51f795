"""The keeper of one simulated host: the local sandbox's keeper, plus a network of its own and an sshd.

Started by `fleetbus.sandbox.fleet.control` as
`setpriv --bounding-set=-sys_time unshare --net --mount --uts --ipc --pid --fork --mount-proc … python -m
fleetbus.sandbox.fleet.host_keeper`, so it is PID 1 of the host: when it ends, every process of the host ends.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from fleetbus.sandbox import keeper
from fleetbus.sandbox.fleet.files import SSH_PORT
from fleetbus.sandbox.fleet.layout import FULL, PROFILES, SSHD_CGROUP, HostPaths
from fleetbus.sandbox.keeper import BASE_ENV, Keeper, log, wait_for

SSHD = "/usr/sbin/sshd"


class HostKeeper(Keeper):
    def __init__(self, paths: HostPaths, hostname: str, address: str) -> None:
        super().__init__(paths, hostname)
        self.host_paths = paths
        self.address = address

    cgroup_groups = (*Keeper.cgroup_groups, SSHD_CGROUP)

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        return [("network", self.bring_up_network), *super().steps(), ("sshd", self.start_sshd)]

    def bring_up_network(self) -> None:
        # A fresh network namespace has only a loopback device, and it is down.
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        subprocess.run(["ip", "addr", "add", f"{self.address}/32", "dev", "lo"], check=True)

    def build_filesystem(self) -> None:
        super().build_filesystem()
        forget_namespace_files()
        upper, work = self.host_paths.overlay("root")
        options = f"lowerdir=/root,upperdir={upper},workdir={work}"
        subprocess.run(["mount", "--no-mtab", "-t", "overlay", "overlay", "-o", options, "/root"], check=True)
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)

    def write_identity(self) -> None:
        super().write_identity()
        unlock_root_for_keys()
        self.give_own_boot_id()

    def give_own_boot_id(self) -> None:
        """A boot id of the host's own, as a real remote host has: the kernel's is one for every namespace, so a
        file bound over /proc/sys/kernel/random/boot_id in this host's mount namespace (and its /proc) says it to
        everything here — journald's _BOOT_ID, systemd, and fleetbus's host facts read over SSH."""
        boot_id = self.host_paths.root / "boot_id"
        boot_id.write_text(f"{uuid.uuid4()}\n")
        subprocess.run(
            ["mount", "--no-mtab", "--bind", "-o", "ro", str(boot_id), "/proc/sys/kernel/random/boot_id"], check=True
        )

    def start_sshd(self) -> None:
        process = self.spawn("sshd", [SSHD, "-D", "-e", "-f", str(self.host_paths.sshd_config)], SSHD_CGROUP, BASE_ENV)
        wait_for("sshd", self.sshd_listening, 10, lambda: process.poll() is None)

    def sshd_listening(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection((self.address, SSH_PORT), timeout=1):
            return True
        return False

    def restore(self) -> None:
        sshd = self.children.get("sshd")
        if sshd is None or sshd.poll() is not None:
            log("restoring sshd")
            self.start_sshd()

    def stop(self) -> None:
        # No new sessions while the services stop.
        self.stop_child("sshd", 2)
        super().stop()


def unlock_root_for_keys() -> None:
    """Without PAM, sshd refuses even key logins to an account whose password is locked (`!…`); `*` is a
    password nothing matches, and unlocked. Written to the host's /etc, an overlay."""
    shadow = Path("/etc/shadow")
    with contextlib.suppress(OSError):
        lines = shadow.read_text().splitlines(keepends=True)
        changed = []
        for line in lines:
            fields = line.split(":")
            if fields[0] == "root" and len(fields) > 1 and fields[1].startswith("!"):
                fields[1] = "*"
            changed.append(":".join(fields))
        if changed != lines:
            shadow.write_text("".join(changed))


def forget_namespace_files() -> None:
    """Drop the copies of namespace files (`ip netns`, other sandboxes) this mount namespace inherited: a copy
    would keep another network namespace alive for as long as this host lives."""
    mounts = Path("/proc/self/mountinfo").read_text().splitlines()
    for line in reversed(mounts):
        fields = line.split()
        separator = fields.index("-")
        if fields[separator + 1] == "nsfs":
            with contextlib.suppress(subprocess.CalledProcessError):
                subprocess.run(["umount", "--no-mtab", "-l", fields[4]], check=True, capture_output=True)


def watch_lifeline(fd: int) -> None:
    """Stop when the controller's end of the pipe closes (it exited): a host must not outlive a `sandbox run`."""
    main_thread = threading.main_thread().ident

    def wait() -> None:
        with contextlib.suppress(OSError):
            while os.read(fd, 1):
                pass
        log("the controller is gone, stopping")
        # Aimed at the main thread: it waits for its stop signals with them blocked (sigwait).
        if main_thread is not None:
            signal.pthread_kill(main_thread, signal.SIGTERM)

    threading.Thread(target=wait, name="lifeline", daemon=True).start()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleetbus-sandbox-host-keeper")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--address", required=True)
    parser.add_argument("--cgroup", required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--lifeline-fd", type=int, default=-1)
    parser.add_argument("--profile", choices=PROFILES, default=FULL)
    args = parser.parse_args(argv)

    keeper_class = HostKeeper
    if args.profile != FULL:
        from fleetbus.sandbox.fleet.light import LightHostKeeper  # noqa: PLC0415 - it imports this module

        keeper_class = LightHostKeeper
    host = keeper_class(HostPaths(args.directory, cgroup=args.cgroup), args.hostname, args.address)
    keeper.catch_signals(host)
    if args.lifeline_fd >= 0:
        watch_lifeline(args.lifeline_fd)
    return keeper.run(host, args.ready_fd)


if __name__ == "__main__":
    raise SystemExit(main())
