"""The inventory once read: hosts, groups and their variables, immutable, with the orders and the variable
precedence Ansible gives them."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

LOCAL = "local"
ALL = "all"
UNGROUPED = "ungrouped"
EMPTY_VARS: Mapping[str, object] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Host:
    """One machine fleetbus may reach, with how to reach it.

    `address`, `port`, `user` and `identity_file` are the effective values of `ansible_host`, `ansible_port`,
    `ansible_user` and `ansible_ssh_private_key_file` (or their aliases) after variable precedence; None where
    nothing set them (SSH's own defaults then apply). `vars` are the variables written on the host itself;
    `Inventory.variables` gives the merged ones.
    """

    name: str
    address: str | None  # None only for `local`, which is reached without a connection
    port: int | None
    user: str | None
    identity_file: Path | None
    groups: tuple[str, ...]  # the groups that list this host directly, in the order they did
    vars: Mapping[str, object]
    origin: str  # where the host was first defined, e.g. "inventory.ini:12"

    @property
    def is_local(self) -> bool:
        return self.name == LOCAL


LOCAL_HOST = Host(
    name=LOCAL,
    address=None,
    port=None,
    user=None,
    identity_file=None,
    groups=(),
    vars=EMPTY_VARS,
    origin="built in: the machine fleetbus runs on",
)


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    hosts: tuple[str, ...]  # direct members, in the order they were listed
    children: tuple[str, ...]
    parents: tuple[str, ...]
    vars: Mapping[str, object]
    priority: int  # ansible_group_priority, 1 unless set
    depth: int  # longest chain of parents up to `all` (which is 0)
    origin: str


def precedence_order(groups: Iterable[Group]) -> list[Group]:
    """Groups in the order their variables are applied, the last winning: shallower before deeper, then by
    ansible_group_priority, then by name — Ansible's `sort_groups`."""
    return sorted(groups, key=lambda group: (group.depth, group.priority, group.name))


class Inventory:
    """Hosts and groups read from an inventory file and/or the configuration's `[hosts]` table.

    `hosts` holds the inventory's hosts in the order they were first defined; `local` is never among them but
    is always known (`"local" in inventory`, `inventory.get("local")`): it is this machine, and only the
    pattern `local` selects it. Nothing here changes after construction; the caches only hold derived data.
    """

    def __init__(
        self,
        hosts: Mapping[str, Host],
        groups: Mapping[str, Group],
        *,
        source: str,
        ancestors: Mapping[str, frozenset[str]],
        warnings: Sequence[str] = (),
    ) -> None:
        self._hosts = MappingProxyType(dict(hosts))
        self._groups = MappingProxyType(dict(groups))
        self._ancestors = ancestors
        self._group_hosts: dict[str, tuple[Host, ...]] = {}
        self.source = source
        self.warnings = tuple(warnings)

    @property
    def hosts(self) -> Mapping[str, Host]:
        return self._hosts

    @property
    def groups(self) -> Mapping[str, Group]:
        """Every group in the order it was created: `all`, `ungrouped`, then as the sources named them."""
        return self._groups

    def __contains__(self, name: object) -> bool:
        return name == LOCAL or name in self._hosts

    def __repr__(self) -> str:
        return f"<Inventory {self.source}: {len(self._hosts)} hosts, {len(self._groups)} groups>"

    def get(self, name: str) -> Host | None:
        if name == LOCAL:
            return LOCAL_HOST
        return self._hosts.get(name)

    def host(self, name: str) -> Host:
        found = self.get(name)
        if found is None:
            raise KeyError(f"no host {name!r} in the inventory ({self.source})")
        return found

    def group_hosts(self, name: str) -> tuple[Host, ...]:
        """The hosts of a group and of its descendants, in Ansible's order: the group's own hosts, then its
        children's, then their children's, level by level; each host once."""
        cached = self._group_hosts.get(name)
        if cached is not None:
            return cached
        if name not in self._groups:
            raise KeyError(f"no group {name!r} in the inventory ({self.source})")
        seen_groups = {name}
        level = [name]
        ordered_groups = [name]
        while level:
            following = []
            for group in level:
                for child in self._groups[group].children:
                    if child not in seen_groups:
                        seen_groups.add(child)
                        following.append(child)
            ordered_groups.extend(following)
            level = following
        seen_hosts: dict[str, None] = {}
        for group in ordered_groups:
            seen_hosts.update(dict.fromkeys(self._groups[group].hosts))
        found = tuple(self._hosts[host] for host in seen_hosts)
        self._group_hosts[name] = found
        return found

    def groups_of(self, host: str) -> frozenset[str]:
        """Every group `host` belongs to, directly or through a child group, `all` included."""
        found = self.host(host)
        if found.is_local:
            return frozenset()
        groups: set[str] = set()
        for group in found.groups:
            groups.add(group)
            groups.update(self._ancestors[group])
        return frozenset(groups)

    def group_names(self, host: str) -> tuple[str, ...]:
        """Ansible's `group_names`: the groups of `host` but `all`, sorted."""
        return tuple(sorted(self.groups_of(host) - {ALL}))

    def variables(self, host: str) -> dict[str, object]:
        """The variables of `host` after precedence: `all`, then groups from parents to children (same depth:
        by ansible_group_priority, then name), then the host's own — each replacing what came before."""
        found = self.host(host)
        merged: dict[str, object] = {}
        for group in precedence_order(self._groups[name] for name in self.groups_of(host)):
            merged.update(group.vars)
        merged.update(found.vars)
        return merged
