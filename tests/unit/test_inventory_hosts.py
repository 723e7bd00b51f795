"""Hosts as fleetbus uses them: variable precedence, the connection settings it takes from Ansible variables,
the reserved `local`, and the configuration's `[hosts]` table."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fleetbus.config import HostSettings, Settings, load_settings
from fleetbus.hosts.inventory import (
    LOCAL_HOST,
    Inventory,
    InventoryError,
    empty_inventory,
    load_inventory,
    parse_inventory,
)

FIXTURES = Path(__file__).resolve().parents[1] / "inventories"


@pytest.fixture(scope="module")
def precedence() -> Inventory:
    return load_inventory(FIXTURES / "precedence.ini")


def test_a_deeper_group_wins_over_a_shallower_one_whatever_the_file_order(precedence: Inventory) -> None:
    # alpha is in dc1 (depth 2, under region) and late (depth 1); dc1 wins though late comes later in the file.
    assert precedence.groups["dc1"].depth == 2
    assert precedence.groups["late"].depth == 1
    assert precedence.variables("alpha")["level"] == "dc1"
    assert precedence.variables("delta")["level"] == "late"


def test_same_depth_orders_by_priority_then_name(precedence: Inventory) -> None:
    # gamma is in dc2 and rack, both at depth 2: by name rack would win, but dc2 has ansible_group_priority=5.
    assert precedence.groups["dc2"].priority == 5
    assert precedence.variables("gamma")["level"] == "dc2"
    shared = parse_inventory("[b]\nh\n[a]\nh\n[a:vars]\nx=a\n[b:vars]\nx=b\n", source="t.ini", inventory_format="ini")
    assert shared.variables("h") == {"x": "b"}
    prioritized = parse_inventory(
        "[b]\nh\n[a]\nh\n[a:vars]\nx=a\nansible_group_priority=2\n[b:vars]\nx=b\n",
        source="t.ini",
        inventory_format="ini",
    )
    assert prioritized.variables("h") == {"x": "a"}


def test_host_variables_win_and_all_is_the_base(precedence: Inventory) -> None:
    assert precedence.variables("beta")["level"] == "host_beta"
    assert precedence.variables("zeta")["level"] == "all"
    assert all(precedence.variables(name)["only_all"] == "from_all" for name in precedence.hosts)


def test_connection_settings_follow_precedence(precedence: Inventory) -> None:
    alpha = precedence.host("alpha")
    assert alpha.port == 2200  # from region, the grandparent
    assert alpha.user == "ssh_alias_user"  # late sets ansible_ssh_user; dc1's deeper ansible_user is the other name
    assert precedence.host("beta").user == "dc1_user"
    assert precedence.host("gamma").user == "default_user"  # from all
    assert precedence.host("gamma").address == "gamma"


def test_the_ssh_alias_wins_when_both_names_are_set_as_ansible_does(precedence: Inventory) -> None:
    epsilon = precedence.host("epsilon")
    assert (epsilon.address, epsilon.port) == ("10.0.0.2", 2222)
    zeta = precedence.host("zeta")
    assert (zeta.address, zeta.user, zeta.identity_file) == ("10.0.0.3", "zeta_user", Path("/keys/ssh"))


def test_null_connection_variables_are_skipped() -> None:
    inventory = parse_inventory(
        "all:\n  vars: {ansible_user: ops}\n  hosts:\n    h: {ansible_ssh_user: null, ansible_port: '2022'}\n",
        source="t.yml",
        inventory_format="yaml",
    )
    assert inventory.host("h").user == "ops"
    assert inventory.host("h").port == 2022


def test_local_is_always_known_but_never_an_inventory_host() -> None:
    inventory = load_inventory(FIXTURES / "basic.ini")
    assert "local" in inventory
    assert inventory.get("local") is LOCAL_HOST
    assert inventory.host("local").is_local
    assert inventory.host("local").address is None
    assert "local" not in inventory.hosts
    assert "local" not in [host.name for host in inventory.group_hosts("all")]
    assert inventory.variables("local") == {}


def test_an_empty_inventory_has_the_built_in_groups_and_local() -> None:
    inventory = empty_inventory()
    assert inventory.hosts == {}
    assert list(inventory.groups) == ["all", "ungrouped"]
    assert inventory.groups["all"].children == ("ungrouped",)
    assert "local" in inventory
    with pytest.raises(KeyError, match="no host 'web01' in the inventory"):
        inventory.host("web01")
    with pytest.raises(KeyError, match="no group 'web'"):
        inventory.group_hosts("web")


def table(text: str) -> dict[str, HostSettings]:
    return {name: HostSettings.model_validate(entry) for name, entry in tomllib.loads(text)["hosts"].items()}


def test_the_hosts_table_defines_hosts_groups_and_fixed_connection_settings() -> None:
    hosts = table(
        """
        [hosts.web-01]
        address = "10.0.0.5"
        port = 2222
        user = "ops"
        identity_file = "~/.ssh/fleet"
        groups = ["web", "prod"]
        vars = { role = "frontend" }

        [hosts.db-01]
        groups = ["prod"]
        """
    )
    inventory = load_inventory(None, hosts, hosts_source="/etc/fleetbus/config.toml")
    web = inventory.host("web-01")
    assert (web.address, web.port, web.user, web.identity_file) == ("10.0.0.5", 2222, "ops", Path("~/.ssh/fleet"))
    assert web.groups == ("web", "prod")
    assert web.origin == "/etc/fleetbus/config.toml: hosts.web-01"
    assert inventory.variables("web-01")["role"] == "frontend"
    assert inventory.host("db-01").address == "db-01"
    assert [host.name for host in inventory.group_hosts("prod")] == ["web-01", "db-01"]
    assert inventory.source == "[hosts] of the /etc/fleetbus/config.toml"


def test_table_fields_win_over_group_variables_of_the_inventory_file(tmp_path: Path) -> None:
    path = tmp_path / "inventory.ini"
    path.write_text("[web:vars]\nansible_ssh_user=from_group\nansible_ssh_host=10.9.9.9\n[web]\nweb-02\n")
    inventory = load_inventory(path, table('[hosts.web-01]\nuser = "ops"\naddress = "10.0.0.5"\ngroups = ["web"]\n'))
    assert (inventory.host("web-01").user, inventory.host("web-01").address) == ("ops", "10.0.0.5")
    assert inventory.host("web-02").user == "from_group"
    assert inventory.source == f"{path} and [hosts] of the configuration"


def test_a_host_in_both_the_file_and_the_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "inventory.ini"
    path.write_text("[web]\nweb-01\n")
    with pytest.raises(InventoryError) as raised:
        load_inventory(path, table('[hosts.web-01]\naddress = "10.0.0.5"\n'))
    assert str(raised.value) == (
        f"configuration: hosts.web-01: host 'web-01' is also defined at {path}:2; define each host in one place"
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[hosts.local]\naddress = "127.0.0.1"\n', "configuration: hosts.local: 'local' is reserved"),
        ('[hosts."web[1:3]"]\n', "configuration: hosts.web[1:3]: a [hosts] entry is one host"),
        (
            '[hosts.web]\nuser = "ops"\nvars = { ansible_ssh_user = "x" }\n',
            "configuration: hosts.web.vars.ansible_ssh_user: the field user and the variable ansible_ssh_user",
        ),
        ("[hosts.web]\nvars = { when = 1979-05-27 }\n", "configuration: hosts.web.vars: variables hold JSON values"),
        ('[hosts.web]\ngroups = ["bad group"]\n', "configuration: hosts.web.groups: group name 'bad group' contains"),
    ],
)
def test_table_errors_name_the_key(text: str, message: str) -> None:
    with pytest.raises(InventoryError) as raised:
        load_inventory(None, table(text))
    assert str(raised.value).startswith(message)


def test_settings_read_the_inventory_path_and_the_hosts_table_from_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('inventory = "/etc/ansible/hosts"\n\n[hosts.web-01]\naddress = "10.0.0.5"\nport = 2222\n')
    settings = load_settings(config)
    assert settings.inventory == Path("/etc/ansible/hosts")
    assert settings.hosts["web-01"].port == 2222
    defaults = Settings.model_validate({})
    assert (defaults.inventory, defaults.hosts) == (None, {})
    with pytest.raises(ValueError, match="less than or equal to 65535"):
        HostSettings.model_validate({"port": 70000})
