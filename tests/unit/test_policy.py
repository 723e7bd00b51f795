"""The policy engine beyond the matrix: loading policy files (and their error messages), argument matchers,
specificity, `could_permit` (what tools/list shows) and `describe` (policy://effective)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from fleetbus.guard.catalog import DEFAULT_PROTECTED_UNITS, Risk, classify
from fleetbus.guard.policy import ArgMatch, OperationPattern, Policy, PolicyError, Rule, Verdict, load_policy
from fleetbus.operation import AUDIT_QUERY, DBUS_CALL, DBUS_WATCH, Operation

MANAGER = "org.freedesktop.systemd1.Manager"
PROPERTY_SET = OperationPattern(
    interface="org.freedesktop.DBus.Properties", member="Set", risks=frozenset({Risk.ROUTINE, Risk.DANGEROUS})
)
VALID_RULE = """
[[rule]]
name = "restart-workers"
verdict = "allow"
reason = "remediation"
member = "RestartUnit"
args = {0 = "worker-*.service"}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    return path


def restart(unit: str) -> Operation:
    return Operation(DBUS_CALL, "local", "system", "org.freedesktop.systemd1", "/", MANAGER, "RestartUnit", "", (unit,))


# ---- loading --------------------------------------------------------------------------------------------------


def test_load_policy_layers_the_file_over_the_preset(tmp_path: Path) -> None:
    path = write(tmp_path, 'protected_units = ["pg.service"]\n' + VALID_RULE)
    policy = load_policy("operator", path, ["redis.service"])
    assert policy.preset == "operator"
    assert policy.sources == ("preset:operator", f"file:{path}")
    assert policy.protected_units[: len(DEFAULT_PROTECTED_UNITS)] == DEFAULT_PROTECTED_UNITS
    assert policy.protected_units[-2:] == ("redis.service", "pg.service")
    rule = policy.rules[-1]
    assert (rule.name, rule.verdict, rule.origin) == ("restart-workers", Verdict.ALLOW, f"file:{path}")
    assert rule.args == (ArgMatch(0, pattern="worker-*.service"),)


def test_load_policy_without_a_file_is_the_preset() -> None:
    policy = load_policy("admin")
    assert [r.name for r in policy.rules] == [
        "admin:read",
        "admin:routine",
        "admin:unknown",
        "admin:dangerous",
        "admin:secret",
        "admin:audit",
    ]
    assert policy.sources == ("preset:admin",)


def test_protected_units_are_not_repeated() -> None:
    policy = Policy.build("readonly", protected_units=["dbus.service", "x.service", "x.service"])
    assert policy.protected_units.count("dbus.service") == 1
    assert policy.protected_units.count("x.service") == 1


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(PolicyError, match=r"unknown safety preset 'root'; choose one of readonly, operator, admin"):
        Policy.build("root")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[[rule]\nname = 1", r"is not valid TOML"),
        (
            VALID_RULE.replace('member = "RestartUnit"', 'membr = "RestartUnit"'),
            r"rule 1 \('restart-workers'\) field membr: Extra inputs are not permitted",
        ),
        ('protectd_units = ["x"]\n', r"protectd_units: Extra inputs are not permitted"),
        (
            VALID_RULE.replace('"allow"', '"maybe"'),
            r"rule 1 \('restart-workers'\) field verdict: Input should be 'allow', 'deny' or 'confirm'",
        ),
        (
            VALID_RULE.replace("0 = ", "first = "),
            r"rule 1 \('restart-workers'\) field args: .*argument positions 0\.\.63, not 'first'",
        ),
        (VALID_RULE.replace("0 = ", "64 = "), r"field args: .*argument positions 0\.\.63, not '64'"),
        (VALID_RULE.replace("0 = ", '"٣" = '), r"field args: .*argument positions 0\.\.63, not '٣'"),
        (VALID_RULE + VALID_RULE, r"rule names must be unique; repeated: restart-workers"),
        (
            VALID_RULE + '\n[[rule]]\nname = "second"\nverdict = "deny"\n',
            r"rule 2 \('second'\) field reason: Field required",
        ),
        (VALID_RULE.replace('member = "RestartUnit"', "member = []"), r"field member: .*an empty list matches"),
        (VALID_RULE.replace('member = "RestartUnit"', 'hosts = ""'), r"field hosts: .*an empty string matches"),
        (VALID_RULE.replace('member = "RestartUnit"', 'risk = ["scary"]'), r"rule 1 .* field risk\.0: Input should"),
        (VALID_RULE.replace('member = "RestartUnit"', 'bus = "user"'), r"field bus: Input should be 'system' or"),
    ],
    ids=[
        "bad-toml",
        "unknown-rule-key",
        "unknown-top-level-key",
        "bad-verdict",
        "arg-index-not-a-number",
        "arg-index-too-big",
        "arg-index-not-ascii",
        "duplicate-names",
        "missing-reason",
        "empty-list",
        "empty-string",
        "bad-risk",
        "bad-bus",
    ],
)
def test_load_policy_errors_name_the_file_the_rule_and_the_field(tmp_path: Path, text: str, expected: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError, match=expected) as caught:
        load_policy("operator", path)
    assert str(caught.value).startswith(f"policy file {path}")


def test_load_policy_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.toml"
    with pytest.raises(PolicyError, match=rf"cannot read policy file {missing}"):
        load_policy("readonly", missing)


def test_policy_file_value_types_become_matchers(tmp_path: Path) -> None:
    text = """
[[rule]]
name = "kinds"
verdict = "deny"
reason = "r"
kind = ["dbus.call", "dbus.watch"]
hosts = ["web-*", "db-1"]
path = "/org/*"
args = {2 = 9, 0 = "a*", 1 = true}
risk = ["routine", "dangerous"]
"""
    rule = load_policy("admin", write(tmp_path, text)).rules[-1]
    assert rule.kinds == (DBUS_CALL, DBUS_WATCH)
    assert rule.hosts == ("web-*", "db-1")
    assert rule.path == ("/org/*",)
    assert rule.args == (ArgMatch(0, pattern="a*"), ArgMatch(1, value=True), ArgMatch(2, value=9))
    assert rule.risk == frozenset({Risk.ROUTINE, Risk.DANGEROUS})


# ---- matching -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("matcher", "args", "expected"),
    [
        (ArgMatch(0, pattern="worker-*.service"), ("worker-1.service",), True),
        (ArgMatch(0, pattern="worker-*.service"), ("web-1.service",), False),
        (ArgMatch(0, pattern="worker-*.service"), (["worker-1.service", "worker-2.service"],), True),
        (ArgMatch(0, pattern="worker-*.service"), (["worker-1.service", "web-1.service"],), False),
        (ArgMatch(0, pattern="*"), ([],), False),
        (ArgMatch(0, pattern="*"), (5,), False),
        (ArgMatch(1, pattern="*"), ("only-one",), False),
        (ArgMatch(0, value=9), (9,), True),
        (ArgMatch(0, value=9), (15,), False),
        (ArgMatch(0, value=1), (True,), False),
        (ArgMatch(0, value=True), (1,), False),
        (ArgMatch(0, value=True), (True,), True),
        (ArgMatch(0, value=["a", "b"]), (["a", "b"],), True),
        (ArgMatch(0, value=["a", "b"]), (["b", "a"],), False),
    ],
)
def test_argument_matchers(matcher: ArgMatch, args: tuple[Any, ...], expected: bool) -> None:
    assert matcher.matches(args) is expected


def test_argument_matchers_name_units_only_exactly() -> None:
    assert ArgMatch(0, pattern="sshd.service").names("sshd.service")
    assert not ArgMatch(0, pattern="sshd*").names("sshd.service")
    assert not ArgMatch(0, pattern="sshd.servic?").names("sshd.service")
    assert ArgMatch(0, value=["sshd.service", "dbus.service"]).names("dbus.service")
    assert not ArgMatch(0, value=["sshd.service"]).names("dbus.service")


def test_rules_name_units_by_exact_unit_object_path() -> None:
    def rule(*paths: str) -> Rule:
        return Rule("r", Verdict.ALLOW, "r", "test", path=paths)

    assert rule("/org/freedesktop/systemd1/unit/ssh_2eservice").names_unit("ssh.service")
    assert rule("/org/freedesktop/systemd1/unit/_31x_2eservice").names_unit("1x.service")
    assert not rule("/org/freedesktop/systemd1/unit/ssh_2eservice").names_unit("sshd.service")
    assert not rule("/org/freedesktop/systemd1/unit/ssh*").names_unit("ssh.service")
    assert not rule("/elsewhere/ssh_2eservice").names_unit("ssh.service")


def test_specificity_counts_exact_names_above_globs_and_ignores_star() -> None:
    def spec(**fields: Any) -> int:
        return Rule("r", Verdict.ALLOW, "r", "test", **fields).specificity

    assert spec() == 0
    assert spec(member=("*",)) == 0
    assert spec(member=("Restart*",)) == 2
    assert spec(member=("RestartUnit",)) == 3
    assert spec(member=("RestartUnit", "Stop*")) == 2
    assert spec(bus="system") == 1
    assert spec(risk=frozenset({Risk.ROUTINE})) == 1
    assert spec(kinds=("audit.query",)) == 2
    assert spec(hosts=("web-*",), member=("RestartUnit",), args=(ArgMatch(0, pattern="w-*"),)) == 7


def test_no_matching_rule_denies_with_the_reason() -> None:
    policy = Policy("custom", rules=())
    operation = restart("web-1.service")
    decision = policy.decide(operation, classify(operation))
    assert (decision.verdict, decision.rule, decision.risk) == (Verdict.DENY, "default-deny", Risk.ROUTINE)
    assert decision.reason == "no rule allows this under the custom preset (routine: restarts a unit)"
    assert not decision.allowed


def test_protected_unit_refusal_names_the_units_and_the_action() -> None:
    policy = Policy.build("admin")
    operation = Operation(
        DBUS_CALL,
        "local",
        member="DisableUnitFiles",
        interface=MANAGER,
        args=(["sshd.service", "dbus.service", "web.service"], False),
    )
    decision = policy.decide(operation, classify(operation))
    assert decision.rule == "protected-units"
    assert decision.reason == (
        "sshd.service, dbus.service are protected units; fleetbus will not disable them unless a policy rule "
        "names each explicitly"
    )


def test_a_deny_rule_keeps_its_own_name_over_protection() -> None:
    deny = Rule("no-stops", Verdict.DENY, "maintenance freeze", "test", member=("StopUnit",))
    policy = Policy.build("admin", [deny])
    operation = Operation(DBUS_CALL, "local", interface=MANAGER, member="StopUnit", args=("dbus.service", "replace"))
    decision = policy.decide(operation, classify(operation))
    assert (decision.verdict, decision.rule, decision.reason) == (Verdict.DENY, "no-stops", "maintenance freeze")


# ---- could_permit (tools/list) and describe (policy://effective) ----------------------------------------------


def test_could_permit_property_set() -> None:
    assert Policy.build("readonly").could_permit(PROPERTY_SET) == set()
    assert Policy.build("operator").could_permit(PROPERTY_SET) == {Risk.ROUTINE}
    assert Policy.build("admin").could_permit(PROPERTY_SET) == {Risk.ROUTINE, Risk.DANGEROUS}


def test_could_permit_reads_under_every_preset() -> None:
    reads = OperationPattern(risks=frozenset({Risk.READ}))
    for preset in ("readonly", "operator", "admin"):
        assert Policy.build(preset).could_permit(reads) == {Risk.READ}


def test_could_permit_never_secrets() -> None:
    anything = OperationPattern()
    assert Policy.build("admin").could_permit(anything) == {Risk.READ, Risk.ROUTINE, Risk.UNKNOWN, Risk.DANGEROUS}
    assert Policy.build("readonly").could_permit(anything) == {Risk.READ}


def test_could_permit_honours_a_covering_deny_rule() -> None:
    # The audit tool reads, yet only admin may use it: the readonly:read rule never decides for it.
    audit = OperationPattern(kind=AUDIT_QUERY, risks=frozenset({Risk.READ}))
    assert Policy.build("readonly").could_permit(audit) == set()
    assert Policy.build("operator").could_permit(audit) == set()
    assert Policy.build("admin").could_permit(audit) == {Risk.READ}


def test_could_permit_with_file_rules() -> None:
    allow_session_set = Rule(
        "session-set",
        Verdict.ALLOW,
        "r",
        "test",
        bus="session",
        interface=("org.freedesktop.DBus.Properties",),
        member=("Set",),
    )
    policy = Policy.build("readonly", [allow_session_set])
    assert policy.could_permit(PROPERTY_SET) == {Risk.ROUTINE, Risk.DANGEROUS}
    system_only = OperationPattern(
        bus="system", interface="org.freedesktop.DBus.Properties", member="Set", risks=frozenset({Risk.DANGEROUS})
    )
    assert policy.could_permit(system_only) == set()
    # A deny with args does not cover the whole pattern, so the permitting rule still counts.
    narrow_deny = Rule("no-9", Verdict.DENY, "r", "test", member=("KillUnit",), args=(ArgMatch(2, value=9),))
    kills = OperationPattern(interface=MANAGER, member="KillUnit", risks=frozenset({Risk.ROUTINE}))
    assert Policy.build("admin", [narrow_deny]).could_permit(kills) == {Risk.ROUTINE}
    wide_deny = Rule("no-kill", Verdict.DENY, "r", "test", member=("KillUnit",))
    assert Policy.build("admin", [wide_deny]).could_permit(kills) == set()


def test_describe_lists_preset_protected_units_and_rules_in_precedence_order(tmp_path: Path) -> None:
    text = (
        'protected_units = ["pg.service"]\n'
        + VALID_RULE
        + '\n[[rule]]\nname = "web"\nverdict = "deny"\nreason = "r"\nhosts = "web-*"\n'
    )
    path = write(tmp_path, text)
    described = load_policy("operator", path).describe()
    assert described["preset"] == "operator"
    assert described["default"] == "deny"
    assert described["sources"] == ["preset:operator", f"file:{path}"]
    assert described["protected_units"][-1] == "pg.service"
    assert "dbus.service" in described["protected_units"]
    names = [rule["name"] for rule in described["rules"]]
    assert names == [
        "restart-workers",
        "operator:audit",
        "web",
        # Equally specific: deny before confirm before allow, then by name.
        "operator:dangerous",
        "operator:secret",
        "operator:routine",
        "operator:unknown",
        "operator:read",
    ]
    specificities = [rule["specificity"] for rule in described["rules"]]
    assert specificities == sorted(specificities, reverse=True)
    worker = described["rules"][0]
    assert worker == {
        "name": "restart-workers",
        "verdict": "allow",
        "reason": "remediation",
        "origin": f"file:{path}",
        "specificity": 5,
        "member": ["RestartUnit"],
        "args": ["arg0=worker-*.service"],
    }
    assert described["rules"][1]["kind"] == ["audit.query"]
    assert described["rules"][-1]["risk"] == ["read"]
    assert "most specific" in described["precedence"]
