"""The JSON that `ansible-inventory --list` prints (and that dynamic inventory scripts print), so any
inventory Ansible can read — cloud plugins, scripts, constructed groups — reaches fleetbus through one command:

    ansible-inventory -i aws_ec2.yml --list > /etc/fleetbus/inventory.json

    {"_meta": {"hostvars": {"web01": {"ansible_host": "10.0.0.5"}}},
     "all": {"children": ["ungrouped", "web"]},
     "web": {"hosts": ["web01"], "vars": {...}, "children": [...]}}

A group may also be a plain list of its hosts. Host variables come only from `_meta.hostvars` (fleetbus never
runs a script with `--host`); `ansible-inventory --list` has already merged group variables into them, unless
it was run with `--export`, in which case groups carry their own `vars`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from fleetbus.hosts.inventory.building import InventoryBuilder
from fleetbus.hosts.inventory.errors import InventoryError, InventoryLimitError, Location
from fleetbus.hosts.inventory.values import check_document

META = "_meta"
_GROUP_KEYS = frozenset({"hosts", "children", "vars"})


def load_json(text: str, source: str, *, max_values: int) -> object:
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise InventoryError(f"not valid JSON: {error.msg}", Location(source, error.lineno)) from None
    except RecursionError:
        raise InventoryLimitError("JSON nested too deeply", Location(source)) from None
    check_document(document, limit=max_values, where=Location(source))
    return document


def is_listing(document: object) -> bool:
    """Whether a JSON document has the shape of `ansible-inventory --list` rather than of a YAML inventory:
    a `_meta` key, a group given as a list, or a group whose hosts are a list."""
    if not isinstance(document, Mapping):
        return False
    if META in document:
        return True
    return any(
        isinstance(group, list) or (isinstance(group, Mapping) and isinstance(group.get("hosts"), list))
        for group in document.values()
    )


def read_listing(document: object, source: str, builder: InventoryBuilder) -> None:
    """Adds the groups and hosts of an `ansible-inventory --list` document to `builder`, in the order Ansible's
    script plugin reads them (which keeps each group's hosts and children in their printed order)."""
    where = Location(source)
    if not isinstance(document, Mapping):
        raise InventoryError(f"an inventory listing is a JSON object, not {type(document).__name__}", where)
    hostvars = _hostvars(document, where)
    hosts: dict[str, None] = {}
    for name, data in document.items():
        if name != META:
            _read_group(name, data, where.at(str(name)), builder, hosts)
    for name in hosts:
        variables = hostvars.get(name, {})
        here = where.at(f"{META}.hostvars.{name}")
        if not isinstance(variables, Mapping):
            raise InventoryError(f"the variables of host {name!r} must be an object", here)
        for key, value in variables.items():
            builder.set_host_var(name, key, value, here.at(str(key)))


def _hostvars(document: Mapping[object, object], where: Location) -> Mapping[object, object]:
    meta = document.get(META, {})
    if not isinstance(meta, Mapping):
        raise InventoryError(f"{META} must be an object", where.at(META))
    hostvars = meta.get("hostvars", {})
    if not isinstance(hostvars, Mapping):
        raise InventoryError("hostvars must be an object of hosts", where.at(f"{META}.hostvars"))
    return hostvars


def _read_group(name: object, data: object, where: Location, builder: InventoryBuilder, hosts: dict[str, None]) -> None:
    group = builder.add_group(name, where)
    if isinstance(data, list):
        data = {"hosts": data}
    if not isinstance(data, Mapping):
        raise InventoryError(f"group {group!r} must be an object or a list of hosts, not {type(data).__name__}", where)
    unknown = sorted(str(key) for key in data.keys() - _GROUP_KEYS)
    if unknown:
        raise InventoryError(
            f"group {group!r} has {', '.join(unknown)}; a group has only hosts, children and vars", where
        )
    members = data.get("hosts", [])
    if not isinstance(members, list):
        raise InventoryError(f"the hosts of group {group!r} must be a list", where.at("hosts"))
    for index, host in enumerate(members):
        hosts[builder.add_host(host, where.at(f"hosts[{index}]"), group=group)] = None
    variables = data.get("vars", {})
    if not isinstance(variables, Mapping):
        raise InventoryError(f"the vars of group {group!r} must be an object", where.at("vars"))
    for key, value in variables.items():
        builder.set_group_var(group, key, value, where.at(f"vars.{key}"))
    children = data.get("children", [])
    if not isinstance(children, list):
        raise InventoryError(f"the children of group {group!r} must be a list", where.at("children"))
    for index, child in enumerate(children):
        here = where.at(f"children[{index}]")
        builder.add_child(group, builder.add_group(child, here), here)
