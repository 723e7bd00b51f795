"""Ansible's INI inventory format, read as ansible-core 2.14's `ini` plugin reads it.

    web01 ansible_host=10.0.0.5        # before any section: in `ungrouped`
    [web]                              # hosts, one per line, `name[:port] key=value…`, ranges allowed
    web[02:20].example.com:2222 http_port=80
    [web:vars]                         # group variables, one `key = value` a line
    ntp_server = ntp.example.com
    [prod:children]                    # groups inside this group
    web

Values are Python literals where they parse as one (`80`, `True`, `['a']`), else text — on host lines and in
`:vars` sections alike, as 2.14 does. A group named in `:vars` or `:children` must have its own `[group]` or
`[group:children]` section somewhere in the file.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from fleetbus.hosts.addresses import parse_address
from fleetbus.hosts.inventory.building import InventoryBuilder
from fleetbus.hosts.inventory.errors import InventoryError, Location
from fleetbus.hosts.inventory.values import ini_value

_COMMENT_MARKERS = ("#", ";")
_SECTION = re.compile(r"\[([^:\]\s]+)(?::(\w+))?\]\s*(?:#.*)?")
_GROUP_NAME = re.compile(r"([^:\]\s]+)\s*(?:#.*)?")
_SECTION_KINDS = ("hosts", "children", "vars")
# A line without quotes, escapes or comments, spaced only by spaces and tabs: shlex would split it exactly as
# str.split() does, at a twentieth of the cost (most host lines of a large inventory are like this).
_PLAIN_LINE = re.compile(r"[^\s\"'\\#]+(?:[ \t]+[^\s\"'\\#]+)*")


@dataclass
class _Pending:
    """A group used before (or without) a section that declares it."""

    where: Location
    kind: str  # "vars" or "children"
    parents: list[tuple[str, Location]] = field(default_factory=list)


def decode_lines(data: bytes, source: str) -> list[str]:
    """The file's lines; like Ansible, a comment line that is not UTF-8 is read as blank, any other is an error."""
    try:
        return data.decode("utf-8").splitlines()
    except UnicodeDecodeError:
        pass
    lines = []
    for number, raw in enumerate(data.splitlines(), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            if raw.lstrip()[:1] in (b"#", b";"):
                lines.append("")
                continue
            raise InventoryError("is not UTF-8 text", Location(source, number)) from None
    return lines


def read_ini(lines: list[str], source: str, builder: InventoryBuilder) -> None:
    """Adds what the INI inventory `lines` (from `source`) declares to `builder`."""
    pending: dict[str, _Pending] = {}
    group, kind = "ungrouped", "hosts"
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith(_COMMENT_MARKERS):
            continue
        where = Location(source, number)
        section = _SECTION.fullmatch(line)
        if section:
            group, kind = section.group(1), section.group(2) or "hosts"
            if kind not in _SECTION_KINDS:
                raise InventoryError(
                    f"section [{group}:{kind}] has an unknown type {kind!r} (hosts, children or vars)", where
                )
            if not builder.has_group(group) and kind == "vars" and group not in pending:
                pending[group] = _Pending(where, "vars")
            builder.add_group(group, where)
            if kind != "vars" and group in pending:
                # The declaration a `:vars` section or a `:children` line was waiting for.
                for parent, edge in pending.pop(group).parents:
                    builder.add_child(parent, group, edge)
            continue
        if line.startswith("[") and line.endswith("]"):
            raise InventoryError(
                f"invalid section {line!r}: a section is [group], [group:vars] or [group:children], without spaces",
                where,
            )
        if kind == "hosts":
            _read_host_line(line, group, where, builder)
        elif kind == "vars":
            key, separator, value = line.partition("=")
            if not separator:
                raise InventoryError(f"expected key=value, got {line!r}", where)
            builder.set_group_var(group, key.strip(), ini_value(value.strip(), where), where)
        else:
            child = _GROUP_NAME.fullmatch(line)
            if not child:
                raise InventoryError(f"expected a group name, got {line!r}", where)
            name = child.group(1)
            if builder.has_group(name):
                builder.add_child(group, name, where)
            else:
                pending.setdefault(name, _Pending(where, "children")).parents.append((group, where))
    for name, waiting in pending.items():
        if waiting.kind == "vars":
            raise InventoryError(f"section [{name}:vars] is for a group that no section declares", waiting.where)
        raise InventoryError(
            f"section [{waiting.parents[-1][0]}:children] names {name!r}, a group that no section declares",
            waiting.where,
        )


def _read_host_line(line: str, group: str, where: Location, builder: InventoryBuilder) -> None:
    try:
        # As in Ansible: shell-like words, `#` starting a comment, quotes keeping spaces in a value.
        words = line.split() if _PLAIN_LINE.fullmatch(line) else shlex.split(line, comments=True)
    except ValueError as error:
        raise InventoryError(f"cannot read host line {line!r}: {error}", where) from None
    if not words:
        return
    entry, assignments = words[0], words[1:]
    parsed = parse_address(entry)
    # An entry that is no valid address is still a host name, as Ansible takes it (it has no port then).
    pattern, port = parsed if parsed is not None else (entry, None)
    if entry.endswith(":") and port is None:
        raise InventoryError(f"host {entry!r} ends in ':', which is reserved for a port", where)
    if pattern == "---":
        raise InventoryError("'---' as a host: this looks like a YAML file; name it .yml or .yaml", where)
    variables: list[tuple[str, object]] = []
    for assignment in assignments:
        key, separator, text = assignment.partition("=")
        if not separator:
            raise InventoryError(f"expected key=value after the host name, got {assignment!r}", where)
        variables.append((key, ini_value(text, where)))
    for name in builder.expand(pattern, where):
        builder.add_host(name, where, group=group, port=port)
        for key, value in variables:
            builder.set_host_var(name, key, value, where)
