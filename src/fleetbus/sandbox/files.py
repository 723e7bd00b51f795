"""The configuration a sandbox writes: its bus configs, the units its service manager runs, drop-ins.

Everything here is text generation; `keeper` decides where it goes and when.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

SYSTEM_BUS_SOCKET = "/run/dbus/system_bus_socket"
RUNTIME_DIR = "/run/user/0"
SESSION_BUS_SOCKET = f"{RUNTIME_DIR}/bus"
JOURNAL_SOCKET = "/run/systemd/journal/socket"
INFRA_UNIT_DIR = "/run/systemd/user"
"""Units the sandbox itself needs; the user manager searches /run/systemd/user below the operator's own dirs."""


@dataclass(frozen=True)
class BusService:
    """A real system service the sandbox makes bus-activatable through its service manager."""

    bus_name: str
    unit: str
    description: str
    exec_start: str
    aliases: tuple[str, ...] = ()

    @property
    def executable(self) -> str:
        return self.exec_start.split()[0]


SYSTEM_SERVICES: tuple[BusService, ...] = (
    BusService(
        "org.freedesktop.hostname1",
        "systemd-hostnamed.service",
        "Hostname Service",
        "/lib/systemd/systemd-hostnamed",
        ("dbus-org.freedesktop.hostname1.service",),
    ),
    BusService(
        "org.freedesktop.timedate1",
        "systemd-timedated.service",
        "Time & Date Service",
        "/lib/systemd/systemd-timedated",
        ("dbus-org.freedesktop.timedate1.service",),
    ),
    BusService(
        "org.freedesktop.locale1",
        "systemd-localed.service",
        "Locale Service",
        "/lib/systemd/systemd-localed",
        ("dbus-org.freedesktop.locale1.service",),
    ),
    BusService(
        "org.freedesktop.login1",
        "systemd-logind.service",
        "User Login Management",
        "/lib/systemd/systemd-logind",
        ("dbus-org.freedesktop.login1.service",),
    ),
    BusService(
        "org.freedesktop.PolicyKit1", "polkit.service", "Authorization Manager", "/usr/lib/polkit-1/polkitd --no-debug"
    ),
    BusService("org.freedesktop.PackageKit", "packagekit.service", "PackageKit Daemon", "/usr/libexec/packagekitd"),
)
"""Started on first use (D-Bus activation via systemd), exactly as on a real host."""


def available_services() -> list[BusService]:
    return [s for s in SYSTEM_SERVICES if os.access(s.executable, os.X_OK)]


def system_bus_config(service_dir: Path) -> str:
    # The distribution's own policy files are included so services see their real rules; root may own
    # and call anything so tests can put their own services on the bus.
    return f"""<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <auth>EXTERNAL</auth>
  <listen>unix:path={SYSTEM_BUS_SOCKET}</listen>
  <servicedir>{service_dir}</servicedir>
  <policy context="default">
    <allow user="*"/>
    <deny own="*"/>
    <deny send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_requested_reply="true" send_type="method_return"/>
    <allow send_requested_reply="true" send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
    <allow receive_type="signal"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Introspectable"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Properties"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Peer"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus"
          send_member="UpdateActivationEnvironment"/>
    <deny send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
  </policy>
  <policy user="root">
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.systemd1.Activator"/>
    <allow send_destination="org.freedesktop.DBus" send_interface="org.freedesktop.DBus.Monitoring"/>
  </policy>
  <includedir>/usr/share/dbus-1/system.d</includedir>
  <includedir>/etc/dbus-1/system.d</includedir>
</busconfig>
"""


def activation_file(service: BusService) -> str:
    return f"[D-BUS Service]\nName={service.bus_name}\nExec=/bin/false\nUser=root\nSystemdService={service.unit}\n"


def service_unit(service: BusService) -> str:
    return (
        "[Unit]\n"
        f"Description={service.description}\n"
        "[Service]\n"
        "Type=dbus\n"
        f"BusName={service.bus_name}\n"
        f"ExecStart={service.exec_start}\n"
    )


def bus_units(system_bus_config_path: Path) -> dict[str, str]:
    """The system bus (as the manager's own dbus.socket/dbus.service) and a session bus."""
    # `--address=systemd:` makes dbus-daemon use the socket systemd passes; with a path it would
    # unlink and re-create the socket, racing the manager's own connection to it.
    return {
        "dbus.socket": (
            f"[Unit]\nDescription=D-Bus System Message Bus Socket\n[Socket]\nListenStream={SYSTEM_BUS_SOCKET}\n"
        ),
        "dbus.service": (
            "[Unit]\nDescription=D-Bus System Message Bus\nRequires=dbus.socket\n"
            "[Service]\n"
            f"ExecStart=/usr/bin/dbus-daemon --config-file={system_bus_config_path} --nofork --nopidfile"
            " --systemd-activation --address=systemd: --syslog-only\n"
            "ExecReload=/usr/bin/busctl --system call org.freedesktop.DBus /org/freedesktop/DBus"
            " org.freedesktop.DBus ReloadConfig\n"
        ),
        "dbus-session.socket": (
            f"[Unit]\nDescription=D-Bus Session Message Bus Socket\n[Socket]\nListenStream={SESSION_BUS_SOCKET}\n"
        ),
        "dbus-session.service": (
            "[Unit]\nDescription=D-Bus Session Message Bus\nRequires=dbus-session.socket\n"
            "[Service]\n"
            "ExecStart=/usr/bin/dbus-daemon --session --address=systemd: --nofork --nopidfile --syslog-only\n"
        ),
    }


BUS_UNIT_WANTS = {
    "sockets.target.wants": ("dbus.socket", "dbus-session.socket"),
    "default.target.wants": ("dbus.service", "dbus-session.service"),
}


MANAGER_CONF = f"""[Manager]
DefaultEnvironment=DBUS_SYSTEM_BUS_ADDRESS=unix:path={SYSTEM_BUS_SOCKET} \
DBUS_SESSION_BUS_ADDRESS=unix:path={SESSION_BUS_SOCKET}
DefaultTimeoutStopSec=5s
"""
"""Units must see the session bus as their session bus, although the manager's own API bus is the system bus."""

JOURNALD_CONF = """[Journal]
Storage=volatile
ReadKMsg=no
"""
"""Keeps the journal in the sandbox's /run and off the machine's kernel log."""

LOGIND_CONF = """[Login]
HandlePowerKey=ignore
HandleRebootKey=ignore
HandleSuspendKey=ignore
HandleHibernateKey=ignore
HandleLidSwitch=ignore
HandleLidSwitchExternalPower=ignore
HandleLidSwitchDocked=ignore
NAutoVTs=0
ReserveVT=0
KillUserProcesses=no
"""
"""A logind in a sandbox must never act on the machine's buttons or terminals."""

DROP_IN_NAME = "fleetbus-sandbox.conf"
