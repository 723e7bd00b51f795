"""Turns what the readers of each format found into an Inventory, applying Ansible's rules once for all of
them: the implicit `all` and `ungrouped` groups, group depth, variable precedence, connection variables."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

from fleetbus.hosts.inventory.errors import InventoryError, InventoryLimitError, Location
from fleetbus.hosts.inventory.limits import InventoryLimits
from fleetbus.hosts.inventory.model import ALL, LOCAL, UNGROUPED, Group, Host, Inventory, precedence_order
from fleetbus.hosts.ranges import HostRangeError, HostRangeTooLarge, expand_hosts, has_range

PRIORITY_VAR = "ansible_group_priority"
# Where Ansible's ssh connection looks for each setting; when both are set the later name wins, as it does
# in Ansible (its option lookup keeps the last variable found).
ADDRESS_VARS = ("ansible_host", "ansible_ssh_host")
PORT_VARS = ("ansible_port", "ansible_ssh_port")
USER_VARS = ("ansible_user", "ansible_ssh_user")
IDENTITY_VARS = ("ansible_private_key_file", "ansible_ssh_private_key_file")
CONNECTION_VARS = frozenset(ADDRESS_VARS + PORT_VARS + USER_VARS + IDENTITY_VARS)
MAX_NAME_LENGTH = 255
# Characters that begin a pattern term: a name starting with one could never be selected by name.
_PATTERN_PREFIXES = ("!", "&", "~")
_BUILT_IN = Location("built in")


class _GroupDraft:
    __slots__ = ("children", "hosts", "name", "origin", "parents", "priority", "vars")

    def __init__(self, name: str, origin: Location) -> None:
        self.name = name
        self.origin = origin
        self.hosts: dict[str, None] = {}  # an ordered set
        self.children: dict[str, Location] = {}  # child → where the edge was written
        self.parents: dict[str, None] = {}
        self.vars: dict[str, object] = {}
        self.priority = 1


class _HostDraft:
    __slots__ = ("fixed", "groups", "name", "origin", "vars")

    def __init__(self, name: str, origin: Location) -> None:
        self.name = name
        self.origin = origin
        self.groups: dict[str, None] = {}
        self.vars: dict[str, object] = {}
        # Connection settings given as fields of the configuration's [hosts] table: they win over any variable.
        self.fixed: dict[str, object] = {}


def _name_problem(name: str) -> str | None:
    if not name:
        return "is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters"
    # isprintable() is False for every control, format and separator character but the plain space.
    if not name.isprintable() or " " in name:
        return "contains a space or a control character"
    if "," in name:
        return "contains ',', which separates host patterns, so no pattern could select it"
    if name.startswith(_PATTERN_PREFIXES):
        return f"starts with {name[0]!r}, a host pattern operator, so no pattern could select it by name"
    return None


class InventoryBuilder:
    """Collects groups, hosts and variables in the order a source declares them, then builds the Inventory.

    The readers call it the way Ansible's inventory plugins call Ansible's InventoryData, so the orders that
    depend on declaration (group creation, a group's hosts and children) come out as Ansible's.
    """

    def __init__(self, limits: InventoryLimits | None = None) -> None:
        self.limits = limits or InventoryLimits()
        self._groups: dict[str, _GroupDraft] = {}
        self._hosts: dict[str, _HostDraft] = {}
        self._warnings: list[str] = []
        self._range_names = 0
        self._assignments = 0
        for name in (ALL, UNGROUPED):
            self._groups[name] = _GroupDraft(name, _BUILT_IN)
        self.add_child(ALL, UNGROUPED, _BUILT_IN)

    # Declaring -------------------------------------------------------------------------------------------

    def has_group(self, name: str) -> bool:
        return name in self._groups

    def has_host(self, name: str) -> bool:
        return name in self._hosts

    def host_origin(self, name: str) -> Location:
        return self._hosts[name].origin

    def add_group(self, name: object, where: Location) -> str:
        """Declares a group (again is fine) and returns its name."""
        if not isinstance(name, str):
            raise InventoryError(f"a group name must be text, not {type(name).__name__} {name!r}", where)
        if name in self._groups:
            return name
        problem = _name_problem(name)
        if problem:
            raise InventoryError(f"group name {name!r} {problem}", where)
        if name == LOCAL:
            raise InventoryError(
                "'local' is reserved: the pattern 'local' always means the machine fleetbus runs on; "
                "name this group differently",
                where,
            )
        if len(self._groups) >= self.limits.max_groups:
            raise InventoryLimitError(f"more than {self.limits.max_groups:,} groups", where)
        self._groups[name] = _GroupDraft(name, where)
        return name

    def add_child(self, parent: str, child: str, where: Location) -> None:
        if parent == child:
            raise InventoryError(f"group {parent!r} cannot be a child of itself", where)
        drafts = self._groups[parent], self._groups[child]
        drafts[0].children.setdefault(child, where)
        drafts[1].parents[parent] = None

    def expand(self, pattern: str, where: Location) -> list[str]:
        """The host names a host entry stands for: itself, or every name of its ranges (`web[01:20]`)."""
        if not has_range(pattern):
            return [pattern]
        budget = self.limits.max_range_names - self._range_names
        try:
            names = expand_hosts(pattern, limit=min(budget, self.limits.max_hosts))
        except HostRangeTooLarge as error:
            raise InventoryLimitError(
                f"{error} (at most {self.limits.max_hosts:,} hosts, {self.limits.max_range_names:,} range "
                "names per inventory)",
                where,
            ) from None
        except HostRangeError as error:
            raise InventoryError(str(error), where) from None
        if not names:
            self.warn(f"host range {pattern!r} stands for no host (its numeric range runs backwards)", where)
        self._range_names += len(names)
        return names

    def add_host(self, name: object, where: Location, group: str | None = None, port: int | None = None) -> str:
        """Declares a host, in `group` if given. Like Ansible, a port (`host:22`) counts only where the host is
        first defined; after that, set `ansible_port` to change it."""
        if not isinstance(name, str):
            raise InventoryError(f"a host name must be text, not {type(name).__name__} {name!r}", where)
        draft = self._hosts.get(name)
        if draft is None:
            problem = _name_problem(name)
            if problem:
                raise InventoryError(f"host name {name!r} {problem}", where)
            if name == LOCAL:
                raise InventoryError(
                    "'local' is reserved: it always means the machine fleetbus runs on, reached without SSH; "
                    "to reach this machine over SSH, name the host differently (e.g. 'self ansible_host=127.0.0.1')",
                    where,
                )
            if name in (ALL, UNGROUPED):
                raise InventoryError(f"{name!r} is the name of a built-in group and cannot name a host", where)
            if len(self._hosts) >= self.limits.max_hosts:
                raise InventoryLimitError(f"more than {self.limits.max_hosts:,} hosts", where)
            draft = self._hosts[name] = _HostDraft(name, where)
            if port is not None:
                self.set_host_var(name, "ansible_port", port, where)
        if group is not None:
            self._groups[group].hosts[name] = None
            draft.groups[group] = None
        return name

    def _count_assignment(self, where: Location) -> None:
        self._assignments += 1
        if self._assignments > self.limits.max_assignments:
            raise InventoryLimitError(f"more than {self.limits.max_assignments:,} variable assignments", where)

    def _check_variable_name(self, key: object, where: Location) -> str:
        if not isinstance(key, str) or not key:
            raise InventoryError(f"a variable name must be non-empty text, not {key!r}", where)
        return key

    def set_host_var(self, host: str, key: object, value: object, where: Location) -> None:
        name = self._check_variable_name(key, where)
        self._count_assignment(where)
        self._hosts[host].vars[name] = value

    def set_group_var(self, group: str, key: object, value: object, where: Location) -> None:
        name = self._check_variable_name(key, where)
        self._count_assignment(where)
        draft = self._groups[group]
        if name == PRIORITY_VAR:
            # As in Ansible, the priority orders the group among its peers and is not itself a variable.
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise InventoryError(f"{PRIORITY_VAR} of group {group!r} must be a whole number, not {value!r}", where)
            try:
                draft.priority = int(value)
            except ValueError:
                raise InventoryError(
                    f"{PRIORITY_VAR} of group {group!r} must be a whole number, not {value!r}", where
                ) from None
            return
        draft.vars[name] = value

    def fix_connection(self, host: str, key: str, value: object, where: Location) -> None:
        """Sets a connection variable that no group or alias can override (the `[hosts]` table's fields)."""
        self.set_host_var(host, key, value, where)
        self._hosts[host].fixed[key] = value

    def warn(self, message: str, where: Location | None = None) -> None:
        self._warnings.append(message if where is None else f"{where}: {message}")

    # Building --------------------------------------------------------------------------------------------

    def build(self, source: str) -> Inventory:
        self._reconcile()
        depths = self._depths()
        groups = {
            name: Group(
                name=name,
                hosts=tuple(draft.hosts),
                children=tuple(draft.children),
                parents=tuple(draft.parents),
                vars=MappingProxyType(draft.vars),
                priority=draft.priority,
                depth=depths[name],
                origin=str(draft.origin),
            )
            for name, draft in self._groups.items()
        }
        ancestors = self._ancestors(groups, depths)
        hosts = self._hosts_with_connections(groups, ancestors)
        for name in sorted(hosts.keys() & groups.keys()):
            self.warn(f"{name!r} names both a group and a host; a pattern {name!r} selects the host")
        return Inventory(hosts, groups, source=source, ancestors=ancestors, warnings=self._warnings)

    def _reconcile(self) -> None:
        """Ansible's reconcile_inventory: every group without a parent becomes a child of `all`; a host in no
        group but `all` goes to `ungrouped`, and a host in another group leaves it."""
        for name, draft in self._groups.items():
            if name != ALL and not draft.parents:
                self.add_child(ALL, name, draft.origin)
        ungrouped = self._groups[UNGROUPED]
        for name, host in self._hosts.items():
            if UNGROUPED in host.groups:
                if host.groups.keys() - {ALL, UNGROUPED}:
                    del host.groups[UNGROUPED]
                    del ungrouped.hosts[name]
            elif not host.groups.keys() - {ALL}:
                host.groups[UNGROUPED] = None
                ungrouped.hosts[name] = None

    def _depths(self) -> dict[str, int]:
        """Each group's longest chain of parents up to `all`; a cycle of groups is an error."""
        waiting = {name: len(draft.parents) for name, draft in self._groups.items()}
        depths = {ALL: 0}
        ready = [ALL]
        while ready:
            name = ready.pop()
            for child in self._groups[name].children:
                depths[child] = max(depths.get(child, 0), depths[name] + 1)
                if depths[child] > self.limits.max_group_depth:
                    raise InventoryLimitError(
                        f"group {child!r} is nested more than {self.limits.max_group_depth} groups deep",
                        self._groups[name].children[child],
                    )
                waiting[child] -= 1
                if waiting[child] == 0:
                    ready.append(child)
        stuck = [name for name in self._groups if name not in depths or waiting[name] > 0]
        if stuck:
            cycle = self._find_cycle(set(stuck))
            where = self._groups[cycle[-2]].children[cycle[-1]]
            raise InventoryError(
                "groups form a cycle: " + " → ".join(cycle) + " (each is a child of the one before)", where
            )
        return depths

    def _find_cycle(self, stuck: set[str]) -> list[str]:
        # Every stuck group has a stuck parent (else it would have been reached), so walking up parents
        # within the stuck set must come back to a group already on the path.
        path = [min(stuck)]
        on_path = {path[0]: 0}
        while True:
            parent = next(name for name in self._groups[path[-1]].parents if name in stuck)
            if parent in on_path:
                cycle = [*path[on_path[parent] :], parent]
                return list(reversed(cycle))
            on_path[parent] = len(path)
            path.append(parent)

    def _ancestors(self, groups: Mapping[str, Group], depths: Mapping[str, int]) -> dict[str, frozenset[str]]:
        ancestors: dict[str, frozenset[str]] = {}
        for name in sorted(groups, key=depths.__getitem__):  # parents are always shallower than children
            found: set[str] = set()
            for parent in groups[name].parents:
                found.add(parent)
                found.update(ancestors[parent])
            ancestors[name] = frozenset(found)
        return ancestors

    def _hosts_with_connections(
        self, groups: Mapping[str, Group], ancestors: Mapping[str, frozenset[str]]
    ) -> dict[str, Host]:
        # Hosts in the same groups share their groups' connection variables, and hosts of one range line their
        # origin: compute each once (a 100,000-host range is one membership and one line).
        from_groups: dict[tuple[str, ...], dict[str, tuple[object, str]]] = {}
        origins: dict[Location, str] = {}
        hosts = {}
        for name, draft in self._hosts.items():
            membership = tuple(draft.groups)
            inherited = from_groups.get(membership)
            if inherited is None:
                every = set(membership).union(*(ancestors[group] for group in membership))
                inherited = {}
                for group in precedence_order(groups[group] for group in every):
                    for key in CONNECTION_VARS & group.vars.keys():
                        inherited[key] = (group.vars[key], f"group {group.name!r}")
                from_groups[membership] = inherited
            settings = inherited
            own = CONNECTION_VARS & draft.vars.keys()
            if own:
                settings = dict(inherited)
                for key in own:
                    settings[key] = (draft.vars[key], f"host {name!r}")
            origin = origins.get(draft.origin)
            if origin is None:
                origin = origins[draft.origin] = str(draft.origin)
            hosts[name] = _host(draft, settings, membership, origin)
        return hosts


# A connection setting as found: the variable, its value, and who set it ("group 'web'", "host 'web01'").
_Setting = tuple[str, object, str]


def _pick(names: tuple[str, ...], draft: _HostDraft, settings: Mapping[str, tuple[object, str]]) -> _Setting | None:
    for key in names:
        if key in draft.fixed:
            return key, draft.fixed[key], "the [hosts] table"
    chosen = None
    for key in names:
        value, setter = settings.get(key, (None, ""))
        if value is not None:  # Ansible skips variables set to null
            chosen = key, value, setter
    return chosen


def _problem(draft: _HostDraft, setting: _Setting, expected: str) -> InventoryError:
    key, value, setter = setting
    return InventoryError(f"host {draft.name!r}: {key} (set on {setter}) is {value!r}, {expected}", draft.origin)


def _text(draft: _HostDraft, setting: _Setting | None) -> str | None:
    if setting is None:
        return None
    value = setting[1]
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise _problem(draft, setting, "not text")
    written = str(value)
    if not written:
        raise _problem(draft, setting, "empty")
    if "{{" in written or "{%" in written:
        raise _problem(draft, setting, "a Jinja template, which fleetbus does not evaluate")
    return written


def _port(draft: _HostDraft, setting: _Setting | None) -> int | None:
    if setting is None:
        return None
    value = setting[1]
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise _problem(draft, setting, "not a port number (1-65535)")
    return value


def _host(draft: _HostDraft, settings: Mapping[str, tuple[object, str]], groups: tuple[str, ...], origin: str) -> Host:
    variables = MappingProxyType(draft.vars)
    if not settings and not draft.fixed:  # nothing says how to connect: SSH's defaults, to the name
        return Host(
            name=draft.name,
            address=draft.name,
            port=None,
            user=None,
            identity_file=None,
            groups=groups,
            vars=variables,
            origin=origin,
        )
    identity = _text(draft, _pick(IDENTITY_VARS, draft, settings))
    return Host(
        name=draft.name,
        address=_text(draft, _pick(ADDRESS_VARS, draft, settings)) or draft.name,
        port=_port(draft, _pick(PORT_VARS, draft, settings)),
        user=_text(draft, _pick(USER_VARS, draft, settings)),
        identity_file=Path(identity) if identity is not None else None,
        groups=groups,
        vars=variables,
        origin=origin,
    )


def empty_inventory(source: str = "no inventory") -> Inventory:
    """An inventory of no host: only `local`, and the groups `all` and `ungrouped`, both empty."""
    return InventoryBuilder().build(source)
