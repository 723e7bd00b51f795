"""Ansible YAML inventories: the documented examples read the same as their INI twins, errors name the key,
and the safe loader keeps YAML's tricks (Python tags, alias bombs, recursion) out."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from fleetbus.hosts.inventory import (
    Inventory,
    InventoryError,
    InventoryLimitError,
    InventoryLimits,
    load_inventory,
    parse_inventory,
)

FIXTURES = Path(__file__).resolve().parents[1] / "inventories"
TWINS = ["basic", "groups_of_groups", "ranges", "variables", "inheritance"]


def yaml(text: str, limits: InventoryLimits | None = None) -> Inventory:
    return parse_inventory(textwrap.dedent(text), source="test.yml", inventory_format="yaml", limits=limits)


def shape(inventory: Inventory) -> dict[str, object]:
    """What an inventory means, whatever its format: hosts in order, each group's hosts, every host's variables
    and connection settings."""
    return {
        "hosts": list(inventory.hosts),
        "groups": {name: [host.name for host in inventory.group_hosts(name)] for name in inventory.groups},
        "variables": {name: inventory.variables(name) for name in inventory.hosts},
        "connections": {
            host.name: (host.address, host.port, host.user, host.identity_file) for host in inventory.hosts.values()
        },
    }


@pytest.mark.parametrize("name", TWINS)
def test_yaml_example_means_what_its_ini_twin_means(name: str) -> None:
    from_yaml = shape(load_inventory(FIXTURES / f"{name}.yml"))
    from_ini = shape(load_inventory(FIXTURES / f"{name}.ini"))
    assert from_yaml == from_ini


def test_hosts_under_all_belong_to_all_and_to_ungrouped() -> None:
    inventory = load_inventory(FIXTURES / "basic.yml")
    assert inventory.groups["all"].hosts == ("mail.example.com",)
    assert inventory.groups["ungrouped"].hosts == ("mail.example.com",)
    assert inventory.host("mail.example.com").groups == ("all", "ungrouped")


def test_a_port_in_a_host_key_sets_ansible_port() -> None:
    inventory = load_inventory(FIXTURES / "variables.yml")
    assert inventory.host("badwolf.example.com").port == 5309
    assert inventory.host("badwolf.example.com").vars == {"ansible_port": 5309}


def test_group_priority_decides_between_groups_of_the_same_depth() -> None:
    inventory = load_inventory(FIXTURES / "priority.yml")
    assert inventory.variables("shared") == {"testvar": "a"}
    assert inventory.variables("only_b") == {"testvar": "b"}
    assert inventory.groups["a_group"].priority == 10
    assert "ansible_group_priority" not in inventory.groups["a_group"].vars


def test_a_single_host_may_be_written_as_text_and_vars_keep_yaml_types() -> None:
    inventory = yaml(
        """
        all:
          vars:
            built: 2024-01-02
            ports: [80, 443]
            enabled: yes
            ratio: 0.5
            nothing: null
          children:
            web:
              hosts: web01
        """
    )
    assert list(inventory.hosts) == ["web01"]
    # Dates stay text: variables are JSON values. `yes` is YAML 1.1's true, as Ansible reads it too.
    assert inventory.variables("web01") == {
        "built": "2024-01-02",
        "ports": [80, 443],
        "enabled": True,
        "ratio": 0.5,
        "nothing": None,
    }


def test_top_level_groups_besides_all_are_allowed() -> None:
    inventory = yaml(
        """
        atlanta:
          hosts:
            host1:
          vars:
            ntp_server: ntp.atlanta.example.com
        """
    )
    assert inventory.groups["all"].children == ("ungrouped", "atlanta")
    assert inventory.variables("host1") == {"ntp_server": "ntp.atlanta.example.com"}


def test_unknown_keys_are_skipped_with_a_warning() -> None:
    inventory = yaml(
        """
        all:
          host:
            typo01:
          children:
            web: [not, a, group]
        """
    )
    assert list(inventory.hosts) == []
    assert inventory.warnings == (
        "test.yml: all.host: skipped: groups have only hosts, children and vars, not 'host'",
        "test.yml: all.children.web: skipped: a group is a mapping of hosts, children and vars, not list",
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("all:\n  hosts: [a, b]\n", "test.yml: all.hosts: hosts of group 'all' must be a mapping, not list"),
        (
            "all:\n  children:\n    web:\n      hosts:\n        web01: 5\n",
            "test.yml: all.children.web.hosts.web01: a host's value is a mapping of its variables, not int",
        ),
        (
            "all:\n  children:\n    web:\n      hosts:\n        web[01:xx]:\n",
            "test.yml: all.children.web.hosts.web[01:xx]: host range [01:xx] in 'web[01:xx]' must run between two "
            "numbers or two single letters",
        ),
        (
            "all:\n  hosts:\n    local:\n",
            "test.yml: all.hosts.local: 'local' is reserved: it always means the machine fleetbus runs on, "
            "reached without SSH; to reach this machine over SSH, name the host differently "
            "(e.g. 'self ansible_host=127.0.0.1')",
        ),
        (
            "all:\n  hosts:\n    web01:\n      ansible_port: ssh\n",
            "test.yml: all.hosts.web01: host 'web01': ansible_port (set on host 'web01') is 'ssh', not a port number "
            "(1-65535)",
        ),
        ("plugin: aws_ec2\n", "test.yml: plugin: this is the configuration of an inventory plugin"),
        ("", "test.yml: the YAML file is empty"),
        ("- web01\n", "test.yml: a YAML inventory is a mapping of groups, not a list"),
        ("all:\n  hosts:\n    a: {b: 1\n", "test.yml:4: not valid YAML"),
        ("all:\n  vars:\n    key: !!binary aGk=\n", "test.yml: variables hold JSON values"),
        ("all:\n  vars:\n    shell: !!python/object/apply:os.system [id]\n", "test.yml:3: not valid YAML"),
    ],
)
def test_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(InventoryError) as raised:
        yaml(text)
    assert str(raised.value).startswith(message)


def test_an_alias_bomb_is_refused_before_anything_expands_it() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 10)}]" for level in range(1, 9)]
    bomb = "all:\n  vars:\n" + "\n".join("    " + line for line in lines) + "\n"
    assert len(bomb) < 1000  # a billion values, written in under a kilobyte
    with pytest.raises(InventoryLimitError, match="more than 5,000,000 values once its aliases are expanded"):
        yaml(bomb)


def test_shared_aliases_within_the_limit_are_fine() -> None:
    inventory = yaml(
        """
        all:
          vars:
            defaults: &defaults {user: ops, port: 22}
          children:
            web:
              vars:
                copy: *defaults
              hosts:
                web01:
        """
    )
    assert inventory.variables("web01")["copy"] == {"user": "ops", "port": 22}


def test_a_value_containing_itself_is_refused() -> None:
    with pytest.raises(InventoryError, match="contains itself"):
        yaml("all:\n  vars:\n    loop: &loop [*loop]\n")


def test_groups_nested_past_the_limit_are_refused() -> None:
    text = "all:\n"
    for depth in range(12):
        text += "  " * (2 * depth + 1) + "children:\n" + "  " * (2 * depth + 2) + f"g{depth}:\n"
    with pytest.raises(InventoryLimitError, match="nested more than 8"):
        yaml(text, InventoryLimits(max_group_depth=8))
