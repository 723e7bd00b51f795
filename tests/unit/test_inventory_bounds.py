"""The limits that keep a hostile or mistaken inventory from eating memory or time, and the files fleetbus
will not read as inventories."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fleetbus.hosts.inventory import (
    InventoryError,
    InventoryLimitError,
    InventoryLimits,
    load_inventory,
    parse_inventory,
)


def ini(text: str, **limits: int) -> None:
    parse_inventory(text, source="big.ini", inventory_format="ini", limits=InventoryLimits(**limits))


def test_a_file_over_the_size_limit_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.ini"
    path.write_text("h\n" * 100)
    with pytest.raises(InventoryLimitError, match=r"huge.ini: is larger than 150 bytes"):
        load_inventory(path, limits=InventoryLimits(max_file_bytes=150))
    assert list(load_inventory(path, limits=InventoryLimits(max_file_bytes=200)).hosts) == ["h"]
    with pytest.raises(InventoryLimitError, match=r"^text: is larger than 150 bytes"):
        parse_inventory("h\n" * 100, source="text", inventory_format="ini", limits=InventoryLimits(max_file_bytes=150))


def test_more_hosts_than_the_limit_are_refused_at_the_line_that_passes_it() -> None:
    ini("[web]\nweb[1:5]\n", max_hosts=5)
    with pytest.raises(InventoryLimitError, match=r"^big.ini:3: more than 5 hosts"):
        ini("[web]\nweb[1:5]\nextra\n", max_hosts=5)


def test_a_hostile_range_costs_a_refusal_not_memory() -> None:
    started = time.perf_counter()
    with pytest.raises(InventoryLimitError) as raised:
        ini("[web]\nweb[0:99999999]\n")
    assert time.perf_counter() - started < 0.5
    assert str(raised.value) == (
        "big.ini:2: host range 'web[0:99999999]' expands to 100,000,000 names, more than the limit of 100,000 "
        "(at most 100,000 hosts, 1,000,000 range names per inventory)"
    )


def test_repeating_a_range_of_known_hosts_still_counts_against_the_range_budget() -> None:
    text = "[web]\n" + "web[1:1000]\n" * 10
    ini(text, max_range_names=10_000)
    with pytest.raises(InventoryLimitError, match=r"^big.ini:12: host range 'web\[1:1000\]' expands to 1,000 names"):
        ini(text + "web[1:1000]\n", max_range_names=10_000)


def test_variables_set_on_every_host_of_a_range_count_one_by_one() -> None:
    ini("[web]\nweb[1:1000] a=1 b=2\n", max_assignments=2000)
    with pytest.raises(InventoryLimitError, match=r"^big.ini:2: more than 1,999 variable assignments"):
        ini("[web]\nweb[1:1000] a=1 b=2\n", max_assignments=1999)


def test_more_groups_than_the_limit_are_refused() -> None:
    # `all` and `ungrouped` count.
    ini("[a]\n[b]\n", max_groups=4)
    with pytest.raises(InventoryLimitError, match=r"^big.ini:3: more than 4 groups"):
        ini("[a]\n[b]\n[c]\n", max_groups=4)


def test_yaml_and_json_documents_are_bounded_too() -> None:
    text = "all:\n  vars:\n    many: [" + ", ".join(["1"] * 50) + "]\n"
    parse_inventory(text, source="v.yml", inventory_format="yaml", limits=InventoryLimits(max_document_values=60))
    with pytest.raises(InventoryLimitError, match="more than 40 values"):
        parse_inventory(text, source="v.yml", inventory_format="yaml", limits=InventoryLimits(max_document_values=40))
    deep = '{"all": {"vars": {"x": ' + "[" * 100_000 + "]" * 100_000 + "}}}"
    with pytest.raises(InventoryLimitError, match="JSON nested too deeply"):
        parse_inventory(deep, source="deep.json", inventory_format="json")


def test_a_directory_a_script_and_a_missing_file_are_refused_with_the_way_out(tmp_path: Path) -> None:
    with pytest.raises(
        InventoryError, match="is a directory; fleetbus reads one inventory file: run `ansible-inventory"
    ):
        load_inventory(tmp_path)
    script = tmp_path / "ec2.py"
    script.write_text("#!/usr/bin/env python3\nprint('{}')\n")
    with pytest.raises(InventoryError, match=r"ec2.py:1: is an inventory script, which fleetbus does not run"):
        load_inventory(script)
    with pytest.raises(InventoryError, match=r"missing.ini: cannot be read: No such file or directory"):
        load_inventory(tmp_path / "missing.ini")


def test_format_follows_the_suffix_and_json_is_recognized_without_one(tmp_path: Path) -> None:
    listing = tmp_path / "hosts"
    listing.write_text('{"web": ["web01"]}')
    assert list(load_inventory(listing).hosts) == ["web01"]
    yml = tmp_path / "hosts.yaml"
    yml.write_text("all:\n  hosts:\n    web01:\n")
    assert list(load_inventory(yml).hosts) == ["web01"]
    forced = tmp_path / "inventory.txt"
    forced.write_text("all:\n  hosts:\n    web01:\n")
    assert list(load_inventory(forced, inventory_format="yaml").hosts) == ["web01"]
