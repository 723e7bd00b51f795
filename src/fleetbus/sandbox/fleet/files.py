"""The text a simulated fleet writes: each host's sshd_config, and the client side's ssh_config, known_hosts,
Ansible inventory and `ssh` wrapper. Text generation only; `control` and `host_keeper` decide where it goes."""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

SSH_PORT = 22
REMOTE_USER = "root"
FLEET_GROUP = "fleet"
GROUPS_FILE = "groups.ini"
UNIT_SUFFIXES = (".service", ".socket", ".timer", ".target", ".path", ".mount")


@dataclass(frozen=True)
class HostEntry:
    """What the client side needs to know about one host."""

    name: str
    address: str
    public_key: str
    """The host's key as an OpenSSH public key line (`ssh-ed25519 AAAA… comment`)."""
    netns: str
    """A path that names the host's network namespace (nsenter --net=…)."""


def sshd_config(address: str, host_key: Path) -> str:
    # Key-only root login as on a hardened host. The limits are sshd's defaults, written out because
    # fleetbus's client-side caps are measured against them.
    return f"""# sshd of a fleetbus simulated host
ListenAddress {address}:{SSH_PORT}
HostKey {host_key}
PidFile none
UsePAM no
PermitRootLogin prohibit-password
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile .ssh/authorized_keys
StrictModes yes
UseDNS no
X11Forwarding no
PrintMotd no
PrintLastLog no
MaxStartups 10:30:100
MaxSessions 10
Subsystem sftp internal-sftp
"""


def proxy_command(netns: str) -> str:
    # The host's address is bound only inside its network namespace: socat opens the TCP connection from in
    # there. Over pipes, not fd passing (ProxyUseFdpass), so asyncssh, which runs ProxyCommand itself, takes
    # the same line as OpenSSH; `nodelay`, because a relay hop with Nagle's algorithm on costs ~40 ms a call.
    return f"nsenter --net={netns} socat STDIO TCP:%h:%p,nodelay"


def ssh_config(hosts: Sequence[HostEntry], known_hosts: Path, client_key: Path) -> str:
    blocks = [
        "# The simulated hosts of a fleetbus sandbox: `ssh -F THIS host01`, or any client that reads OpenSSH config.\n"
    ]
    for host in hosts:
        blocks.append(
            f"Host {host.name} {host.address}\n"
            f"    HostName {host.address}\n"
            f"    HostKeyAlias {host.name}\n"
            f"    ProxyCommand {proxy_command(host.netns)}\n"
        )
    names = " ".join(name for host in hosts for name in (host.name, host.address))
    blocks.append(
        f"Host {names}\n"
        f"    User {REMOTE_USER}\n"
        f"    Port {SSH_PORT}\n"
        f"    IdentityFile {client_key}\n"
        "    IdentitiesOnly yes\n"
        f"    UserKnownHostsFile {known_hosts}\n"
        "    GlobalKnownHostsFile /dev/null\n"
        "    StrictHostKeyChecking yes\n"
        "    BatchMode yes\n"
        "    ServerAliveInterval 15\n"
        "    LogLevel ERROR\n"
    )
    return "\n".join(blocks)


def known_hosts(hosts: Sequence[HostEntry]) -> str:
    # The alias is what clients reading ssh_config check (HostKeyAlias); the address serves those that don't.
    lines = []
    for host in hosts:
        key_type, key_data = host.public_key.split()[:2]
        lines.append(f"{host.name},{host.address} {key_type} {key_data}\n")
    return "".join(lines)


def inventory(hosts: Sequence[HostEntry], ssh_config_path: Path, client_key: Path, extra_groups: str = "") -> str:
    lines = [
        "# The simulated hosts of a fleetbus sandbox, in Ansible's INI format.",
        f"[{FLEET_GROUP}]",
        *(f"{host.name} ansible_host={host.address}" for host in hosts),
        "",
        f"[{FLEET_GROUP}:vars]",
        f"ansible_user={REMOTE_USER}",
        f"ansible_port={SSH_PORT}",
        f"ansible_ssh_private_key_file={client_key}",
        f"ansible_ssh_common_args={shlex.quote('-F ' + str(ssh_config_path))}",
        "",
    ]
    text = "\n".join(lines)
    if extra_groups.strip():
        text += f"\n# from {GROUPS_FILE}\n{extra_groups.rstrip()}\n"
    return text


def ssh_wrapper(ssh_config_path: Path) -> str:
    # Not found through PATH: that may already lead to another fleet's wrapper.
    ssh = shutil.which("ssh", path="/usr/local/bin:/usr/bin:/bin") or "/usr/bin/ssh"
    return (
        "#!/bin/sh\n"
        "# ssh with this fleet's ssh_config, so `busctl -H host01` and `ssh host01` reach the simulated hosts.\n"
        f'exec {shlex.quote(ssh)} -F {shlex.quote(str(ssh_config_path))} "$@"\n'
    )


def unit_entries(directory: Path) -> list[Path]:
    """The unit files of `directory` (and their .d / .wants / .requires directories), not its subdirectories
    for single hosts nor groups.ini."""
    if not directory.is_dir():
        return []
    found = []
    for entry in sorted(directory.iterdir()):
        unit_file = entry.is_file() and entry.name.endswith(UNIT_SUFFIXES)
        if unit_file or (entry.is_dir() and entry.name.endswith((".d", ".wants", ".requires"))):
            found.append(entry)
    return found
