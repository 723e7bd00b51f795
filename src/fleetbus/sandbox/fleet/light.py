"""The light host profile: sshd, a system bus and a bus-activated hostnamed, without a service manager or journal.

For fleets of a hundred hosts and more on one machine, where a service manager and journald per host cost more
memory and start-up time than the fan-out being measured; systemd's API is not on these hosts' buses.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fleetbus.sandbox import files
from fleetbus.sandbox.fleet.host_keeper import HostKeeper
from fleetbus.sandbox.fleet.layout import BUS_CGROUP, SSHD_CGROUP
from fleetbus.sandbox.keeper import BASE_ENV, Keeper, wait_for

DBUS_DAEMON = "/usr/bin/dbus-daemon"
LIGHT_SERVICES = ("org.freedesktop.hostname1",)
"""What a light host's bus can start: hostnamed exits when idle and the bus starts it again on the next call."""


def direct_activation_file(service: files.BusService) -> str:
    # No SystemdService=: with no service manager the bus itself runs Exec=, and with no <servicehelper> in the
    # bus config it does so directly, as root, in the bus's own cgroup.
    return f"[D-BUS Service]\nName={service.bus_name}\nExec={service.exec_start}\nUser=root\n"


class LightHostKeeper(HostKeeper):
    cgroup_groups = ("", BUS_CGROUP, SSHD_CGROUP)

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        return [
            ("network", self.bring_up_network),
            ("filesystem", self.build_filesystem),
            ("identity", self.write_identity),
            ("configuration", self.write_configuration),
            ("cgroups", self.make_cgroups),
            ("bus", self.start_bus),
            ("sshd", self.start_sshd),
        ]

    def write_configuration(self) -> None:
        paths = self.paths
        paths.bus_dir.mkdir(parents=True, exist_ok=True)
        paths.activation_dir.mkdir(parents=True, exist_ok=True)
        paths.system_bus_config.write_text(files.system_bus_config(paths.activation_dir))
        for service in files.available_services():
            if service.bus_name in LIGHT_SERVICES:
                activation = paths.activation_dir / f"{service.bus_name}.service"
                activation.write_text(direct_activation_file(service))
        paths.unit_dir.mkdir(parents=True, exist_ok=True)

    def start_bus(self) -> None:
        argv = [DBUS_DAEMON, f"--config-file={self.paths.system_bus_config}", "--nofork", "--nopidfile", "--nosyslog"]
        process = self.spawn("bus", argv, BUS_CGROUP, dict(BASE_ENV))
        socket = Path(files.SYSTEM_BUS_SOCKET)
        wait_for("system bus", lambda: socket.exists() and self.name_has_owner("org.freedesktop.DBus"), 10,
                 lambda: process.poll() is None)  # fmt: skip

    def stop(self) -> None:
        self.stop_child("sshd", 2)
        self.stop_child("bus", 5)
        Keeper.stop(self)
