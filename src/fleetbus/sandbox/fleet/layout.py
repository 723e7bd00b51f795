"""Where a simulated fleet keeps its things: the client side (inventory, keys, ssh_config) and each host's directory.

The controller outside and each host's keeper inside agree on these paths.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetbus.sandbox.layout import SandboxPaths

SSHD_CGROUP = "sshd.service"
BUS_CGROUP = "dbus.service"
"""Where a light host's bus runs; a full host's manager puts its dbus.service under its own slice."""
FULL = "full"
LIGHT = "light"
PROFILES = (FULL, LIGHT)
"""full: sshd, system bus, systemd service manager, journald, bus-activated services (the default);
light: sshd, system bus and a bus-activated hostnamed only (for 100+ hosts on one machine)."""
MAX_HOSTS = 254
"""Host N listens on 127.0.1.N inside its own network namespace."""


def host_names(count: int) -> list[str]:
    """host01…hostNN, zero-padded to at least two digits so they sort as they count."""
    if not 1 <= count <= MAX_HOSTS:
        raise ValueError(f"a simulated fleet has 1 to {MAX_HOSTS} hosts, not {count}")
    width = max(2, len(str(count)))
    return [f"host{index:0{width}d}" for index in range(1, count + 1)]


def host_address(index: int) -> str:
    """The address host number `index` (1-based) listens on; it is bound only inside that host's namespace."""
    return f"127.0.1.{index}"


@dataclass(frozen=True)
class HostPaths(SandboxPaths):
    """One simulated host's directory: a sandbox layout of its own, plus its sshd and root's home."""

    @property
    def root_home(self) -> Path:
        """The upper layer of the overlay on /root: root's own files on this host (its .ssh, a stock .bashrc),
        over the machine's /root, which stays untouched (and may hold the Python that runs the keeper)."""
        return self.overlay("root")[0]

    @property
    def ssh_dir(self) -> Path:
        return self.root / "ssh"

    @property
    def sshd_config(self) -> Path:
        return self.ssh_dir / "sshd_config"

    @property
    def host_key(self) -> Path:
        return self.ssh_dir / "ssh_host_ed25519_key"

    @property
    def host_public_key(self) -> Path:
        return self.ssh_dir / "ssh_host_ed25519_key.pub"


@dataclass(frozen=True)
class FleetPaths:
    """`<sandbox>/fleet`: what a client needs to reach the hosts, and the hosts' own directories."""

    root: Path
    sandbox_cgroup: str
    """The sandbox's cgroup subtree; each host's lives inside it, so stopping the sandbox reaches every host."""

    def host(self, name: str) -> HostPaths:
        return HostPaths(self.root / "hosts" / name, cgroup=f"{self.sandbox_cgroup}/{name}.slice")

    @property
    def inventory(self) -> Path:
        return self.root / "inventory.ini"

    @property
    def known_hosts(self) -> Path:
        return self.root / "known_hosts"

    @property
    def ssh_config(self) -> Path:
        return self.root / "ssh_config"

    @property
    def client_key(self) -> Path:
        return self.root / "id_ed25519"

    @property
    def client_public_key(self) -> Path:
        return self.root / "id_ed25519.pub"

    @property
    def bin_dir(self) -> Path:
        """Holds an `ssh` that reads the fleet's ssh_config; first on a command's PATH, so `busctl -H` uses it."""
        return self.root / "bin"
