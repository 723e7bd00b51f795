"""Hosts named in fleetbus's own configuration, for a fleet too small to need an inventory file:

    [hosts.web-01]
    address = "10.0.0.5"          # default: the name itself
    port = 2222                   # default: SSH's (22, or what ~/.ssh/config says)
    user = "ops"
    identity_file = "~/.ssh/fleet"
    groups = ["web", "prod"]      # created if no inventory file declares them
    vars = { role = "frontend" }

Each entry is one host (no ranges). Its fields are host variables (`ansible_host`, `ansible_port`,
`ansible_user`, `ansible_ssh_private_key_file`) that no group variable or `ansible_ssh_*` alias can override.
A host may be defined here or in the inventory file, not in both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from fleetbus.hosts.inventory.building import ADDRESS_VARS, IDENTITY_VARS, PORT_VARS, USER_VARS, InventoryBuilder
from fleetbus.hosts.inventory.errors import InventoryError, Location
from fleetbus.hosts.inventory.values import check_document


class HostEntry(Protocol):
    """One `[hosts.NAME]` table, as fleetbus.config.HostSettings holds it."""

    @property
    def address(self) -> str | None: ...
    @property
    def port(self) -> int | None: ...
    @property
    def user(self) -> str | None: ...
    @property
    def identity_file(self) -> Path | None: ...
    @property
    def groups(self) -> Sequence[str]: ...
    @property
    def vars(self) -> Mapping[str, object]: ...


def read_host_table(table: Mapping[str, HostEntry], source: str, builder: InventoryBuilder) -> None:
    """Adds the hosts of the configuration's `[hosts]` table (read from `source`) to `builder`."""
    for name, entry in table.items():
        where = Location(source, key=f"hosts.{name}")
        if builder.has_host(name):
            raise InventoryError(
                f"host {name!r} is also defined at {builder.host_origin(name)}; define each host in one place", where
            )
        if "[" in name:
            raise InventoryError("a [hosts] entry is one host: write ranges in an inventory file", where)
        builder.add_host(name, where)
        for group in entry.groups:
            builder.add_host(name, where, group=builder.add_group(group, where.at("groups")))
        identity = None if entry.identity_file is None else str(entry.identity_file)
        # field, its value, the variable it becomes, every variable that means the same
        fields = (
            ("address", entry.address, "ansible_host", ADDRESS_VARS),
            ("port", entry.port, "ansible_port", PORT_VARS),
            ("user", entry.user, "ansible_user", USER_VARS),
            ("identity_file", identity, "ansible_ssh_private_key_file", IDENTITY_VARS),
        )
        variables = dict(entry.vars)
        check_document(variables, limit=builder.limits.max_document_values, where=where.at("vars"))
        for field, value, _, synonyms in fields:
            clash = [key for key in synonyms if key in variables]
            if value is not None and clash:
                raise InventoryError(
                    f"the field {field} and the variable {clash[0]} say the same thing; keep the field",
                    where.at(f"vars.{clash[0]}"),
                )
        for key, setting in variables.items():
            builder.set_host_var(name, key, setting, where.at(f"vars.{key}"))
        for _, value, variable, _ in fields:
            if value is not None:
                builder.fix_connection(name, variable, value, where)
