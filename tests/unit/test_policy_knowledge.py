"""What the lead added over the guard's first cut: secrets need a rule that names them, operators teach the
catalog about their own services, the shipped example policies decide as their comments say, and the audit
log takes several writers."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from fleetbus.guard import audit
from fleetbus.guard.audit import AuditLog
from fleetbus.guard.catalog import Risk, classify
from fleetbus.guard.policy import PolicyError, Verdict, load_policy
from fleetbus.operation import Operation

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "policy"
SYSTEMD = ("org.freedesktop.systemd1", "/org/freedesktop/systemd1", "org.freedesktop.systemd1.Manager")


def call(
    destination: str, path: str, interface: str, member: str, *args: Any, host: str = "local", bus: str = "system"
) -> Operation:
    return Operation("dbus.call", host, bus, destination, path, interface, member, "", tuple(args))


def decide(policy_text: str, tmp_path: Path, preset: str, operation: Operation) -> tuple[str, str]:
    policy_file = tmp_path / "policy.toml"
    policy_file.write_text(policy_text)
    policy = load_policy(preset, policy_file)
    decision = policy.decide(operation, classify(operation, None, policy.knowledge))
    return decision.verdict.value, decision.rule


GET_SECRETS = call(
    "org.freedesktop.secrets",
    "/org/freedesktop/secrets",
    "org.freedesktop.Secret.Service",
    "GetSecrets",
    [],
    "/org/freedesktop/secrets/session/1",
    host="web-1",
)


def test_a_broad_allow_rule_does_not_release_secrets(tmp_path: Path) -> None:
    broad = '[[rule]]\nname = "web-anything"\nverdict = "allow"\nreason = "trusted web hosts"\nhosts = "web-*"\n'
    assert decide(broad, tmp_path, "admin", GET_SECRETS) == ("deny", "secrets")


def test_only_a_rule_that_names_the_secret_risk_releases_secrets(tmp_path: Path) -> None:
    named = (
        '[[rule]]\nname = "vault-agent"\nverdict = "confirm"\nreason = "the agent needs its token"\n'
        'hosts = "web-*"\nrisk = ["secret"]\n'
    )
    assert decide(named, tmp_path, "admin", GET_SECRETS) == ("confirm", "vault-agent")


ECHO = call("com.example.Fleet", "/com/example/Fleet1", "com.example.Fleet1", "GetAfter", 1.0)
KNOWLEDGE = (
    '[[classify]]\ninterface = "com.example.Fleet1"\nmember = "Get*"\nrisk = "read"\nreason = "these only read"\n'
)


def test_classify_teaches_fleetbus_about_an_unknown_service(tmp_path: Path) -> None:
    assert decide("", tmp_path, "readonly", ECHO) == ("deny", "default-deny")
    assert decide(KNOWLEDGE, tmp_path, "readonly", ECHO) == ("allow", "readonly:read")
    other = call("com.example.Fleet", "/com/example/Fleet1", "com.example.Fleet1", "Describe", {})
    assert decide(KNOWLEDGE, tmp_path, "operator", other) == ("confirm", "operator:unknown")


def test_classify_cannot_loosen_what_the_catalog_knows(tmp_path: Path) -> None:
    loosen = (
        '[[classify]]\ninterface = "org.freedesktop.Secret.Service"\nmember = "*"\nrisk = "read"\n'
        'reason = "wishful thinking"\n'
    )
    assert decide(loosen, tmp_path, "admin", GET_SECRETS) == ("deny", "admin:secret")


def test_classify_entries_are_validated(tmp_path: Path) -> None:
    bad = '[[classify]]\ninterface = "com.example.X"\nmember = "Get*"\nrisk = "harmless"\nreason = "r"\n'
    with pytest.raises(PolicyError, match="risk"):
        decide(bad, tmp_path, "readonly", ECHO)


def restart(unit: str, host: str = "local") -> Operation:
    return call(*SYSTEMD, "RestartUnit", unit, "replace", host=host)


@pytest.mark.parametrize(
    ("operation", "verdict", "rule"),
    [
        (restart("worker-3.service"), "allow", "restart-workers"),
        (restart("worker-3.service", host="web-7"), "allow", "restart-workers"),
        (restart("worker-3.service", host="db-1"), "confirm", "operator:routine"),
        (restart("web-1.service"), "confirm", "operator:routine"),
        (call(*SYSTEMD, "StopUnit", "worker-3.service", "replace"), "deny", "no-stopping-workers"),
        (call(*SYSTEMD, "ResetFailedUnit", "worker-9.service"), "allow", "reset-failed-workers"),
        (restart("postgresql.service"), "deny", "protected-units"),
    ],
)
def test_the_remediation_example_decides_as_documented(operation: Operation, verdict: str, rule: str) -> None:
    policy = load_policy("operator", DEPLOY / "remediation.toml")
    decision = policy.decide(operation, classify(operation, None, policy.knowledge))
    assert (decision.verdict.value, decision.rule) == (verdict, rule)


def test_the_lockdown_example_decides_as_documented() -> None:
    policy = load_policy("admin", DEPLOY / "lockdown.toml")
    install = call(
        "org.freedesktop.PackageKit",
        "/1_abc",
        "org.freedesktop.PackageKit.Transaction",
        "InstallPackages",
        0,
        ["vim;1;amd64;debian"],
    )
    hostname = call(
        "org.freedesktop.hostname1",
        "/org/freedesktop/hostname1",
        "org.freedesktop.hostname1",
        "SetStaticHostname",
        "x",
        False,
    )
    session = call("org.example.App", "/", "org.example.App", "Quit", bus="session")
    for operation, rule in (
        (install, "no-package-changes"),
        (hostname, "no-hostname-changes"),
        (session, "session-bus-reads-only"),
    ):
        decision = policy.decide(operation, classify(operation))
        assert (decision.verdict, decision.rule) == (Verdict.DENY, rule)
    assert classify(install).risk is Risk.DANGEROUS


def _writer(directory: str, name: str, count: int) -> None:
    log = AuditLog(Path(directory), fsync=False)
    for number in range(count):
        log.append({"event": "allowed", "client": name, "n": number})
    log.close()


def test_several_processes_append_to_one_chain(tmp_path: Path) -> None:
    # A server and `fleetbus tool` (or two servers) share a state directory: the chain must stay whole.
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_writer, args=(str(tmp_path), f"writer-{i}", 200)) for i in range(3)]
    for process in writers:
        process.start()
    local = AuditLog(tmp_path, fsync=False)
    for number in range(200):
        local.append({"event": "allowed", "client": "local", "n": number})
    for process in writers:
        process.join(timeout=60)
        assert process.exitcode == 0
    local.close()
    result = audit.verify(tmp_path)
    assert result.ok, result.problem
    assert result.records == 800
    clients = [record["client"] for _, _, record in audit.iter_records(tmp_path)]
    assert {clients.count(name) for name in ("local", "writer-0", "writer-1", "writer-2")} == {200}
