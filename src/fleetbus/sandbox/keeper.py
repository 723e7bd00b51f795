"""The sandbox's keeper: runs inside fresh mount and UTS namespaces, brings the real services up, tears them down.

Started by `fleetbus.sandbox.control` as
`setpriv --bounding-set=-sys_time unshare --mount --uts --propagation private python -m fleetbus.sandbox.keeper`,
so nothing it or its descendants do can reach the machine's clock, /run, /etc or /var.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from fleetbus.sandbox import files
from fleetbus.sandbox.layout import CgroupLayout, SandboxPaths

JOURNALD = "/lib/systemd/systemd-journald"
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP}
RESTORE_SIGNAL = signal.SIGUSR1
BASE_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "LANG": "C.UTF-8",
    "USER": "root",
    "LOGNAME": "root",
    "SHELL": "/bin/sh",
}


class StartupError(RuntimeError):
    pass


def log(message: str) -> None:
    print(f"[keeper {time.monotonic():.3f}] {message}", file=sys.stderr, flush=True)


def wait_for(what: str, ready: Callable[[], bool], timeout: float, alive: Callable[[], bool] = lambda: True) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if not alive():
            raise StartupError(f"{what}: the process it depends on exited")
        if time.monotonic() > deadline:
            raise StartupError(f"{what}: not ready after {timeout:.0f} s")
        time.sleep(0.02)


class Keeper:
    def __init__(self, paths: SandboxPaths, hostname: str) -> None:
        self.paths = paths
        self.hostname = hostname
        self.cgroups = CgroupLayout.detect()
        self.slice = paths.cgroup_name
        self.children: dict[str, subprocess.Popen[bytes]] = {}
        self.stop_requested = False

    def request_stop(self, signum: int, _frame: object) -> None:
        log(f"got {signal.Signals(signum).name} while starting")
        self.stop_requested = True

    # ---- bring-up -------------------------------------------------------------------------------

    def build_filesystem(self) -> None:
        """Private /run, copy-on-write /etc and /var: what services write stays in the sandbox directory."""
        subprocess.run(["mount", "--no-mtab", "--bind", str(self.paths.run), "/run"], check=True)
        for name in ("etc", "var"):
            upper, work = self.paths.overlay(name)
            options = f"lowerdir=/{name},upperdir={upper},workdir={work}"
            subprocess.run(["mount", "--no-mtab", "-t", "overlay", "overlay", "-o", options, f"/{name}"], check=True)
        for directory in (
            "/run/systemd/system",
            "/run/systemd/journal",
            "/run/dbus",
            "/run/log/journal",
            files.INFRA_UNIT_DIR,
        ):
            os.makedirs(directory, exist_ok=True)
        os.makedirs(files.RUNTIME_DIR, mode=0o700, exist_ok=True)
        # `systemctl` run as root inside talks to the manager directly, as it would to PID 1.
        with contextlib.suppress(FileExistsError):
            os.symlink(f"{files.RUNTIME_DIR}/systemd/private", "/run/systemd/private")

    def write_identity(self) -> None:
        socket.sethostname(self.hostname)
        Path("/etc/hostname").write_text(self.hostname + "\n")
        machine_id = uuid.uuid4().hex
        Path("/etc/machine-id").write_text(machine_id + "\n")
        dbus_machine_id = Path("/var/lib/dbus/machine-id")
        if dbus_machine_id.exists() or dbus_machine_id.is_symlink():
            dbus_machine_id.unlink()
            dbus_machine_id.symlink_to("/etc/machine-id")

    def write_configuration(self) -> None:
        drop_ins = {
            "/etc/systemd/journald.conf.d": files.JOURNALD_CONF,
            "/etc/systemd/logind.conf.d": files.LOGIND_CONF,
            "/etc/systemd/user.conf.d": files.MANAGER_CONF,
        }
        for directory, text in drop_ins.items():
            os.makedirs(directory, exist_ok=True)
            Path(directory, files.DROP_IN_NAME).write_text(text)

        self.paths.bus_dir.mkdir(parents=True, exist_ok=True)
        self.paths.activation_dir.mkdir(parents=True, exist_ok=True)
        self.paths.system_bus_config.write_text(files.system_bus_config(self.paths.activation_dir))

        unit_dir = Path(files.INFRA_UNIT_DIR)
        for name, text in files.bus_units(self.paths.system_bus_config).items():
            (unit_dir / name).write_text(text)
        for wants, units in files.BUS_UNIT_WANTS.items():
            (unit_dir / wants).mkdir(exist_ok=True)
            for unit in units:
                (unit_dir / wants / unit).symlink_to(unit_dir / unit)
        for service in files.available_services():
            (self.paths.activation_dir / f"{service.bus_name}.service").write_text(files.activation_file(service))
            (unit_dir / service.unit).write_text(files.service_unit(service))
            for alias in service.aliases:
                (unit_dir / alias).symlink_to(unit_dir / service.unit)
        self.paths.unit_dir.mkdir(parents=True, exist_ok=True)

    cgroup_groups: tuple[str, ...] = ("", "systemd-journald.service", "manager.slice", "commands.scope")

    def make_cgroups(self) -> None:
        for group in self.cgroup_groups:
            self.cgroups.create(f"{self.slice}/{group}")
        self.cgroups.enable_controllers(self.slice)

    def spawn(self, name: str, argv: list[str], cgroup: str, env: dict[str, str]) -> subprocess.Popen[bytes]:
        log_file = open(self.paths.root / f"{name}.log", "ab")  # noqa: SIM115 - handed to the child
        # The shell puts itself into the cgroup before exec, so the service never runs outside it.
        targets = [str(h / self.slice / cgroup / "cgroup.procs") for h in self.cgroups.hierarchies]
        script = 'n=$1; shift; while [ "$n" -gt 0 ]; do echo $$ > "$1"; shift; n=$((n-1)); done; exec "$@"'
        process = subprocess.Popen(
            ["/bin/sh", "-c", script, "sh", str(len(targets)), *targets, *argv],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            env=env,
            cwd="/",
            start_new_session=True,
        )
        log_file.close()
        self.children[name] = process
        log(f"started {name} as pid {process.pid}")
        return process

    def start_journald(self) -> None:
        process = self.spawn("journald", [JOURNALD], "systemd-journald.service", dict(BASE_ENV))
        stdout_socket = Path("/run/systemd/journal/stdout")
        wait_for("journald", stdout_socket.exists, 10, lambda: process.poll() is None)

    def start_manager(self) -> None:
        env = dict(BASE_ENV)
        env.update(
            {
                "HOME": str(self.paths.home),
                "XDG_RUNTIME_DIR": files.RUNTIME_DIR,
                # The manager's API bus is the sandbox's *system* bus: it appears there as
                # org.freedesktop.systemd1, as PID 1 does on a host.
                "DBUS_SESSION_BUS_ADDRESS": f"unix:path={files.SYSTEM_BUS_SOCKET}",
                "DBUS_SYSTEM_BUS_ADDRESS": f"unix:path={files.SYSTEM_BUS_SOCKET}",
            }
        )
        process = self.spawn("manager", ["/lib/systemd/systemd", "--user"], "manager.slice", env)
        alive = lambda: process.poll() is None  # noqa: E731
        wait_for("service manager", Path(f"{files.RUNTIME_DIR}/systemd/private").exists, 20, alive)
        wait_for("system bus", lambda: self.name_has_owner("org.freedesktop.systemd1"), 20, alive)
        wait_for("session bus", Path(files.SESSION_BUS_SOCKET).exists, 10, alive)

    @staticmethod
    def name_has_owner(name: str) -> bool:
        if not Path(files.SYSTEM_BUS_SOCKET).exists():
            return False
        result = subprocess.run(
            [
                "busctl",
                f"--address=unix:path={files.SYSTEM_BUS_SOCKET}",
                "--timeout=2",
                "call",
                "org.freedesktop.DBus",
                "/org/freedesktop/DBus",
                "org.freedesktop.DBus",
                "NameHasOwner",
                "s",
                name,
            ],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
        return result.stdout.strip() == "b true"

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        return [
            ("filesystem", self.build_filesystem),
            ("identity", self.write_identity),
            ("configuration", self.write_configuration),
            ("cgroups", self.make_cgroups),
            ("journald", self.start_journald),
            ("manager", self.start_manager),
        ]

    def start(self) -> None:
        for name, step in self.steps():
            if self.stop_requested:
                raise StartupError(f"asked to stop before {name}")
            began = time.monotonic()
            step()
            log(f"{name} ready in {time.monotonic() - began:.3f} s")

    # ---- running --------------------------------------------------------------------------------

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            for name, process in self.children.items():
                if process.pid == pid:
                    process.returncode = os.waitstatus_to_exitcode(status)
                    log(f"{name} (pid {pid}) exited with {process.returncode}")

    def serve(self) -> None:
        """Wait for the order to stop, reaping children on the way; signals block so none is lost."""
        waited = STOP_SIGNALS | {signal.SIGCHLD, RESTORE_SIGNAL}
        signal.pthread_sigmask(signal.SIG_BLOCK, waited)
        if self.stop_requested:
            return
        while True:
            received = signal.sigwait(waited)
            if received == signal.SIGCHLD:
                self.reap()
                continue
            if received == RESTORE_SIGNAL:
                self.reap()
                # What restore() starts must not inherit the blocked signals; one arriving meanwhile
                # reaches its handler instead (a stop request is then seen below).
                signal.pthread_sigmask(signal.SIG_UNBLOCK, waited)
                try:
                    self.restore()
                finally:
                    signal.pthread_sigmask(signal.SIG_BLOCK, waited)
                if self.stop_requested:
                    return
                continue
            log(f"got {signal.Signals(received).name}, stopping")
            return

    def restore(self) -> None:
        """Bring back what a fault took away (asked for with RESTORE_SIGNAL); the local sandbox has nothing to."""

    # ---- teardown -------------------------------------------------------------------------------

    def stop_child(self, name: str, timeout: float) -> None:
        process = self.children.get(name)
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if process.poll() is None:
            log(f"{name} ignored SIGTERM for {timeout:.0f} s, killing it")
            process.kill()
            process.wait()

    def stop(self) -> None:
        # The manager stops its units itself (they may log on the way out), then the journal goes,
        # then whatever is left in the subtree is killed by PID and the cgroups are removed.
        self.stop_child("manager", 15)
        self.stop_child("journald", 5)
        self.cgroups.kill(self.slice)
        self.cgroups.remove(self.slice)
        log("stopped")


def die_with_parent(parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:
        os.kill(os.getpid(), signal.SIGTERM)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fleetbus-sandbox-keeper")
    parser.add_argument("directory", type=Path)
    parser.add_argument("--hostname", required=True)
    parser.add_argument("--ready-fd", type=int, required=True)
    parser.add_argument("--die-with-parent", type=int, default=0)
    args = parser.parse_args(argv)

    keeper = Keeper(SandboxPaths(args.directory), args.hostname)
    catch_signals(keeper)
    if args.die_with_parent:
        die_with_parent(args.die_with_parent)
    return run(keeper, args.ready_fd)


def catch_signals(keeper: Keeper) -> None:
    # Not blocked during start-up: children inherit the signal mask, and daemons must see SIGTERM.
    for signum in STOP_SIGNALS:
        signal.signal(signum, keeper.request_stop)
    # Until serve() waits for it, a restore request finds nothing to restore, and must not kill the keeper.
    # A handler, not SIG_IGN: an ignored signal would stay ignored in every daemon the keeper starts.
    signal.signal(RESTORE_SIGNAL, lambda _signum, _frame: None)


def run(keeper: Keeper, ready_fd: int) -> int:
    """Start `keeper` (its signals caught), say so on `ready_fd`, keep it until asked to stop, tear it down."""
    ctypes.CDLL(None).prctl(PR_SET_CHILD_SUBREAPER, 1)

    with os.fdopen(ready_fd, "w") as ready:
        try:
            keeper.start()
        except Exception as exc:  # reported to the controller, then torn down
            log(f"start failed: {exc}")
            ready.write(f"error: {exc}\n")
            ready.flush()
            keeper.stop()
            return 1
        ready.write("ready\n")
    keeper.serve()
    keeper.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
