"""Reading an inventory: one file (INI, YAML, or `ansible-inventory --list` JSON), bounded in size, plus the
configuration's `[hosts]` table. The only I/O of the inventory package is the one read of that file."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Literal

from fleetbus.hosts.inventory.building import InventoryBuilder
from fleetbus.hosts.inventory.config_table import HostEntry, read_host_table
from fleetbus.hosts.inventory.errors import InventoryError, InventoryLimitError, Location
from fleetbus.hosts.inventory.ini import decode_lines, read_ini
from fleetbus.hosts.inventory.limits import InventoryLimits
from fleetbus.hosts.inventory.listing import is_listing, load_json, read_listing
from fleetbus.hosts.inventory.model import Inventory

InventoryFormat = Literal["ini", "yaml", "json"]
_SUFFIXES: dict[str, InventoryFormat] = {".yml": "yaml", ".yaml": "yaml", ".json": "json"}
_RUN_ANSIBLE = "run `ansible-inventory -i {source} --list > inventory.json` and give fleetbus that file"


def detect_format(path: Path, data: bytes) -> InventoryFormat:
    """By suffix (.yml/.yaml, .json) as Ansible does; a file of another name is INI unless it is a JSON object."""
    by_suffix = _SUFFIXES.get(path.suffix.lower())
    if by_suffix is not None:
        return by_suffix
    return "json" if data.lstrip().startswith(b"{") else "ini"


def read_file(path: Path, limits: InventoryLimits) -> bytes:
    source = str(path)
    if path.is_dir():
        raise InventoryError(
            "is a directory; fleetbus reads one inventory file: " + _RUN_ANSIBLE.format(source=source), Location(source)
        )
    try:
        with path.open("rb") as file:
            # One byte past the limit tells "too large" without trusting the size a stat reports.
            data = file.read(limits.max_file_bytes + 1)
    except OSError as error:
        raise InventoryError(f"cannot be read: {error.strerror or error}", Location(source)) from None
    if len(data) > limits.max_file_bytes:
        raise InventoryLimitError(f"is larger than {limits.max_file_bytes:,} bytes", Location(source))
    if data.startswith(b"#!"):
        raise InventoryError(
            "is an inventory script, which fleetbus does not run: " + _RUN_ANSIBLE.format(source=source),
            Location(source, 1),
        )
    return data


def _read_into(builder: InventoryBuilder, data: bytes, source: str, inventory_format: InventoryFormat) -> None:
    if inventory_format == "ini":
        read_ini(decode_lines(data, source), source, builder)
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise InventoryError("is not UTF-8 text", Location(source)) from None
    limit = builder.limits.max_document_values
    # PyYAML (~20 ms to import) only for an inventory that may be YAML: most servers read INI or none at all.
    from fleetbus.hosts.inventory.yaml_format import load_yaml, read_yaml  # noqa: PLC0415

    if inventory_format == "yaml":
        read_yaml(load_yaml(text, source, max_values=limit), source, builder)
        return
    document = load_json(text, source, max_values=limit)
    # A .json file may also be a YAML-format inventory written as JSON (Ansible's yaml plugin reads those).
    (read_listing if is_listing(document) else read_yaml)(document, source, builder)


def parse_inventory(
    data: bytes | str, *, source: str, inventory_format: InventoryFormat, limits: InventoryLimits | None = None
) -> Inventory:
    """The inventory in `data` (e.g. what `ansible-inventory --list` printed); `source` names it in errors."""
    builder = InventoryBuilder(limits)
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if len(raw) > builder.limits.max_file_bytes:
        raise InventoryLimitError(f"is larger than {builder.limits.max_file_bytes:,} bytes", Location(source))
    _read_into(builder, raw, source, inventory_format)
    return builder.build(source)


def load_inventory(
    path: Path | None = None,
    hosts: Mapping[str, HostEntry] | None = None,
    *,
    inventory_format: InventoryFormat | None = None,
    limits: InventoryLimits | None = None,
    hosts_source: str = "configuration",
) -> Inventory:
    """The inventory of the file at `path` (if any) and of the configuration's `[hosts]` table (if any).

    Raises InventoryError naming the file and line or key of the first problem; InventoryLimitError when the
    file, its host count or a range is beyond `limits`.
    """
    builder = InventoryBuilder(limits)
    sources = []
    if path is not None:
        data = read_file(path, builder.limits)
        _read_into(builder, data, str(path), inventory_format or detect_format(path, data))
        sources.append(str(path))
    if hosts:
        read_host_table(hosts, hosts_source, builder)
        sources.append(f"[hosts] of the {hosts_source}")
    return builder.build(" and ".join(sources) or "no inventory")
