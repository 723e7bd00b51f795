"""Policy rules' `hosts` are Ansible patterns evaluated on the inventory when the policy loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbus.gateway import dbus_call
from fleetbus.guard.catalog import classify
from fleetbus.guard.policy import PolicyError, Verdict, load_policy
from fleetbus.hosts.inventory import parse_inventory
from fleetbus.hosts.registry import HostRegistry

INVENTORY = "[fleet]\nhost01\nhost02\nhost03\n"
SYSTEMD = ("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")


def hosts() -> HostRegistry:
    inventory = parse_inventory(INVENTORY, inventory_format="ini", source="test.ini")
    return HostRegistry(inventory, addresses={}, connect_timeout=1)


def policy_with(tmp_path: Path, hosts_value: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(
        f'[[rule]]\nname = "restart"\nverdict = "allow"\nreason = "r"\nmember = "RestartUnit"\nhosts = {hosts_value}\n'
    )
    return path


def verdict(policy_file: Path, host: str) -> Verdict:
    policy = load_policy("readonly", policy_file, select_hosts=hosts().select)
    operation = dbus_call(*SYSTEMD, "RestartUnit", "ss", ["worker.service", "replace"], host=host)
    return policy.decide(operation, classify(operation)).verdict


def test_a_rule_for_the_fleet_but_host03(tmp_path: Path) -> None:
    path = policy_with(tmp_path, '["fleet:!host03"]')
    assert verdict(path, "host01") is Verdict.ALLOW
    assert verdict(path, "host02") is Verdict.ALLOW
    assert verdict(path, "host03") is Verdict.DENY
    assert verdict(path, "local") is Verdict.DENY


def test_star_still_means_every_host_and_local_is_named(tmp_path: Path) -> None:
    assert verdict(policy_with(tmp_path, '["*"]'), "local") is Verdict.ALLOW
    assert verdict(policy_with(tmp_path, '["*"]'), "host02") is Verdict.ALLOW
    assert verdict(policy_with(tmp_path, '["local"]'), "local") is Verdict.ALLOW
    assert verdict(policy_with(tmp_path, '["local"]'), "host01") is Verdict.DENY
    assert verdict(policy_with(tmp_path, '["host0*"]'), "host02") is Verdict.ALLOW


def test_a_pattern_outside_the_grammar_names_the_rule(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="rule 'restart' field hosts"):
        load_policy("readonly", policy_with(tmp_path, '["fleet:&"]'), select_hosts=hosts().select)


def test_an_operator_may_use_regex_in_the_policy(tmp_path: Path) -> None:
    policy = load_policy(
        "readonly", policy_with(tmp_path, '["~host0[12]"]'), select_hosts=lambda p: hosts().select(p, allow_regex=True)
    )
    operation = dbus_call(*SYSTEMD, "RestartUnit", "ss", ["worker.service", "replace"], host="host02")
    assert policy.decide(operation, classify(operation)).verdict is Verdict.ALLOW


def test_a_hosts_list_is_one_pattern_so_its_exclusions_hold(tmp_path: Path) -> None:
    # Selected item by item, `"!host03"` alone selected every other host and `"*"` skipped the inventory:
    # each list below would have allowed host03.
    for value in ('["fleet", "!host03"]', '["*", "!host03"]', '["fleet", "&host01"]'):
        path = policy_with(tmp_path, value)
        assert verdict(path, "host03") is Verdict.DENY, value
        assert verdict(path, "host01") is Verdict.ALLOW, value
    assert verdict(policy_with(tmp_path, '["*", "!host03"]'), "local") is Verdict.ALLOW
    assert verdict(policy_with(tmp_path, '["*", "!local"]'), "local") is Verdict.DENY
    assert verdict(policy_with(tmp_path, '["fleet", "!host03"]'), "host02") is Verdict.ALLOW
    assert verdict(policy_with(tmp_path, '["host01", "local"]'), "local") is Verdict.ALLOW
