"""How large an inventory may be: past these an inventory is refused whole, before it can eat memory."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class InventoryLimits:
    max_file_bytes: int = 32 * 1024 * 1024
    max_hosts: int = 100_000
    max_groups: int = 100_000
    # Every name a range line produces counts, new or repeated: a file repeating `web[1:100000]` a thousand
    # times adds no host but would still cost a hundred million names.
    max_range_names: int = 1_000_000
    # Variables set, host by host: `web[1:100000] a=1 b=2` sets 200,000.
    max_assignments: int = 5_000_000
    # Values in a YAML or JSON document, counted as if every alias were written out: what serializing the
    # variables of every host could cost.
    max_document_values: int = 5_000_000
    # Groups inside groups; Ansible has no limit, real inventories nest a handful deep.
    max_group_depth: int = 64
