"""`ansible-inventory --list` JSON, in both directions: what Ansible printed for each fixture
(tests/inventories/listings/, made by make_goldens.py with ansible-core 2.14) proves fleetbus reads the INI and
YAML files as Ansible does — groups, children, and every host's variables after precedence — and reading the
printed JSON back gives the same inventory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from fleetbus.hosts.inventory import Inventory, InventoryError, load_inventory, parse_inventory

FIXTURES = Path(__file__).resolve().parents[1] / "inventories"
SOURCES = sorted(path.name for path in FIXTURES.iterdir() if path.suffix in (".ini", ".yml"))


def listing_of(source: str) -> dict[str, Any]:
    printed: dict[str, Any] = json.loads((FIXTURES / "listings" / f"{source}.json").read_text())
    return printed


def test_every_fixture_has_its_golden_listing() -> None:
    assert len(SOURCES) >= 15
    assert sorted(path.name.removesuffix(".json") for path in (FIXTURES / "listings").iterdir()) == SOURCES


@pytest.mark.parametrize("source", SOURCES)
def test_each_host_has_the_variables_ansible_gives_it(source: str) -> None:
    inventory = load_inventory(FIXTURES / source)
    hostvars = listing_of(source)["_meta"]["hostvars"]
    assert {host: inventory.variables(host) for host in inventory.hosts} == {
        host: hostvars.get(host, {}) for host in inventory.hosts
    }


@pytest.mark.parametrize("source", SOURCES)
def test_groups_have_the_hosts_and_children_ansible_gives_them(source: str) -> None:
    inventory = load_inventory(FIXTURES / source)
    printed = {name: group for name, group in listing_of(source).items() if name != "_meta"}
    # ansible-inventory omits groups with neither hosts nor children, and never prints the hosts of `all`.
    mine = {
        name: {
            key: value
            for key, value in (("hosts", list(group.hosts)), ("children", list(group.children)))
            if value and not (name == "all" and key == "hosts")
        }
        for name, group in inventory.groups.items()
    }
    assert {name: group for name, group in mine.items() if group} == printed


@pytest.mark.parametrize("source", SOURCES)
def test_reading_the_listing_back_gives_the_same_inventory(source: str) -> None:
    original = load_inventory(FIXTURES / source)
    relisted = load_inventory(FIXTURES / "listings" / f"{source}.json")
    # The listing prints groups by name, so hosts are created in another order; what patterns see (each
    # group's hosts in order, `all` included) must not change.
    assert sorted(relisted.hosts) == sorted(original.hosts)
    assert {name: relisted.variables(name) for name in relisted.hosts} == {
        name: original.variables(name) for name in original.hosts
    }
    assert {host.name: (host.address, host.port, host.user) for host in relisted.hosts.values()} == {
        host.name: (host.address, host.port, host.user) for host in original.hosts.values()
    }
    for name, group in original.groups.items():
        if group.hosts or group.children or name in ("all", "ungrouped"):
            assert relisted.group_hosts(name) == tuple(relisted.host(host.name) for host in original.group_hosts(name))


def listing(document: dict[str, Any]) -> Inventory:
    return parse_inventory(json.dumps(document), source="dynamic.json", inventory_format="json")


def test_a_group_may_be_a_plain_list_and_exported_group_vars_apply() -> None:
    inventory = listing(
        {
            "_meta": {"hostvars": {"web01": {"ansible_host": "10.0.0.5", "role": "host"}}},
            "all": {"children": ["web", "db"], "vars": {"role": "all", "tier": "all"}},
            "web": {"hosts": ["web01"], "vars": {"tier": "web"}},
            "db": ["db01", "db02"],
        }
    )
    assert list(inventory.hosts) == ["web01", "db01", "db02"]
    assert inventory.host("web01").address == "10.0.0.5"
    assert inventory.variables("web01") == {"role": "host", "tier": "web", "ansible_host": "10.0.0.5"}
    assert inventory.variables("db02") == {"role": "all", "tier": "all"}
    assert inventory.groups["all"].children == ("ungrouped", "web", "db")


def test_hostvars_of_a_host_in_no_group_are_ignored_as_ansible_does() -> None:
    inventory = listing({"_meta": {"hostvars": {"ghost": {"x": 1}}}, "web": {"hosts": ["web01"]}})
    assert list(inventory.hosts) == ["web01"]


def test_a_json_file_shaped_like_a_yaml_inventory_is_read_as_one() -> None:
    inventory = listing(
        {"all": {"hosts": {"web01": {"ansible_port": 2222}}, "children": {"db": {"hosts": {"db01": None}}}}}
    )
    assert inventory.host("web01").port == 2222
    assert inventory.groups["db"].hosts == ("db01",)


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"_meta": []}, "dynamic.json: _meta: _meta must be an object"),
        ({"_meta": {"hostvars": {"a": 1}}, "web": ["a"]}, "dynamic.json: _meta.hostvars.a: the variables of host 'a'"),
        ({"_meta": {}, "web": {"hosts": "a"}}, "dynamic.json: web.hosts: the hosts of group 'web' must be a list"),
        ({"_meta": {}, "web": {"hosts": ["a"], "host_vars": {}}}, "dynamic.json: web: group 'web' has host_vars"),
        ({"_meta": {}, "web": {"children": [1]}}, "dynamic.json: web.children[0]: a group name must be text"),
        ({"_meta": {}, "web": {"hosts": ["local"]}}, "dynamic.json: web.hosts[0]: 'local' is reserved"),
        (
            {"_meta": {}, "web": {"vars": {"ansible_group_priority": "x"}}},
            "dynamic.json: web.vars.ansible_group_priority",
        ),
    ],
)
def test_errors_name_the_key(document: dict[str, Any], message: str) -> None:
    with pytest.raises(InventoryError) as raised:
        listing(document)
    assert str(raised.value).startswith(message)


def test_invalid_json_names_the_line() -> None:
    with pytest.raises(InventoryError, match=r"^broken.json:2: not valid JSON"):
        parse_inventory('{"web":\n  [,]}', source="broken.json", inventory_format="json")
