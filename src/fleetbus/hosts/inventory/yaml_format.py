"""Ansible's YAML inventory format, read as ansible-core 2.14's `yaml` plugin reads it.

    all:
      vars: {ntp_server: ntp.example.com}
      hosts:
        mail.example.com:
      children:
        web:
          hosts:
            web[01:20].example.com:       # ranges in keys, and `name:port`
              http_port: 80

Top-level keys are groups (usually just `all`); each group may have `hosts`, `children` and `vars`. As in
Ansible, other keys are skipped with a warning. Loaded with PyYAML's safe loader only: no Python objects.
"""

from __future__ import annotations

from collections.abc import Mapping

import yaml

from fleetbus.hosts.addresses import parse_address
from fleetbus.hosts.inventory.building import InventoryBuilder
from fleetbus.hosts.inventory.errors import InventoryError, InventoryLimitError, Location
from fleetbus.hosts.inventory.values import check_document

try:
    from yaml import CSafeLoader as _SafeLoader
except ImportError:  # PyYAML built without libyaml: the same rules, in pure Python
    from yaml import SafeLoader as _SafeLoader  # type: ignore[assignment]

_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_SECTIONS = ("vars", "children", "hosts")


class _InventoryLoader(_SafeLoader):
    """The safe loader, with dates left as text: variables are JSON values, and a datetime is not one."""


_InventoryLoader.yaml_implicit_resolvers = {
    first: [(tag, pattern) for tag, pattern in resolvers if tag != _TIMESTAMP]
    for first, resolvers in _SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(text: str, source: str, *, max_values: int) -> object:
    """The one document of a YAML file, safely loaded and checked to hold only bounded JSON values."""
    loader = _InventoryLoader(text)
    try:
        document = loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line = mark.line + 1 if mark is not None else None
        raise InventoryError(f"not valid YAML: {error.problem or error}", Location(source, line)) from None
    except yaml.YAMLError as error:
        raise InventoryError(f"not valid YAML: {error}", Location(source)) from None
    except RecursionError:
        raise InventoryLimitError("YAML nested too deeply", Location(source)) from None
    finally:
        loader.dispose()
    check_document(document, limit=max_values, where=Location(source))
    return document


def read_yaml(document: object, source: str, builder: InventoryBuilder) -> None:
    """Adds what a loaded YAML inventory declares to `builder`."""
    where = Location(source)
    if document is None:
        raise InventoryError("the YAML file is empty", where)
    if not isinstance(document, Mapping):
        raise InventoryError(f"a YAML inventory is a mapping of groups, not a {type(document).__name__}", where)
    if "plugin" in document:
        raise InventoryError(
            "this is the configuration of an inventory plugin, not an inventory: run "
            f"`ansible-inventory -i {source} --list > inventory.json` and use that file",
            where.at("plugin"),
        )
    for group, data in document.items():
        _read_group(group, data, where.at(str(group)), builder, depth=0)


def _read_group(name: object, data: object, where: Location, builder: InventoryBuilder, *, depth: int) -> str | None:
    if depth > builder.limits.max_group_depth:
        raise InventoryLimitError(f"groups nested more than {builder.limits.max_group_depth} deep", where)
    if data is not None and not isinstance(data, Mapping):
        builder.warn(f"skipped: a group is a mapping of hosts, children and vars, not {type(data).__name__}", where)
        return None
    group = builder.add_group(name, where)
    if data is None:
        return group
    for key, written in data.items():
        here = where.at(str(key))
        # Ansible reads `hosts: web01` as a mapping of one.
        value = {written: None} if key in _SECTIONS and isinstance(written, str) else written
        if key in _SECTIONS and value is not None and not isinstance(value, Mapping):
            raise InventoryError(f"{key} of group {group!r} must be a mapping, not {type(value).__name__}", here)
        if key not in _SECTIONS:
            builder.warn(f"skipped: groups have only hosts, children and vars, not {key!r}", here)
        elif value is None:
            continue
        elif key == "vars":
            for variable, setting in value.items():
                builder.set_group_var(group, variable, setting, here.at(str(variable)))
        elif key == "children":
            for child, child_data in value.items():
                added = _read_group(child, child_data, here.at(str(child)), builder, depth=depth + 1)
                if added is not None:
                    builder.add_child(group, added, here.at(str(child)))
        else:
            for entry, variables in value.items():
                _read_host(entry, variables, group, here.at(str(entry)), builder)
    return group


def _read_host(entry: object, variables: object, group: str, where: Location, builder: InventoryBuilder) -> None:
    if not isinstance(entry, str):
        raise InventoryError(f"a host name must be text, not {type(entry).__name__} {entry!r}", where)
    if variables is not None and not isinstance(variables, Mapping):
        raise InventoryError(f"a host's value is a mapping of its variables, not {type(variables).__name__}", where)
    parsed = parse_address(entry)
    pattern, port = parsed if parsed is not None else (entry, None)
    for name in builder.expand(pattern, where):
        builder.add_host(name, where, group=group, port=port)
        for key, value in (variables or {}).items():
            builder.set_host_var(name, key, value, where.at(str(key)))
