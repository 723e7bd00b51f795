"""What the model (and through it, the person) is told when a call waits for approval or was refused: commands
that work when pasted into any shell, and until when a refusal stands."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from fleetbus.config import default_state_dir, load_settings
from fleetbus.gateway import ApprovalDenied, ApprovalRequired
from fleetbus.guard.approvals import ApprovalStore, DecisionCommands
from fleetbus.guard.policy import Decision, Verdict
from fleetbus.operation import DBUS_CALL, Operation

RESTART = Operation(
    DBUS_CALL,
    "local",
    "system",
    "org.freedesktop.systemd1",
    "/org/freedesktop/systemd1",
    "org.freedesktop.systemd1.Manager",
    "RestartUnit",
    "ss",
    ("worker-3.service", "replace"),
)
CONFIRM = Decision(Verdict.CONFIRM, "operator:routine", "routine changes need a person")


def store(tmp_path: Path, now: float = 1_800_000_000.0) -> ApprovalStore:
    return ApprovalStore(tmp_path / "approvals", ttl=900.0, clock=lambda: now)


def command_lines(message: str, verb: str) -> list[list[str]]:
    return [shlex.split(line) for line in message.splitlines() if f" {verb} " in line]


def test_the_approval_message_carries_commands_that_paste_into_any_shell(tmp_path: Path) -> None:
    approval = store(tmp_path).request(RESTART, "stdio", CONFIRM.reason)
    program = ("/opt/fleet bus/.venv/bin/fleetbus",)  # a space must survive the copy
    location = ("--state-dir", "/tmp/fleetbus-sandbox-1a2b3c4d/state")
    message = str(ApprovalRequired(approval, CONFIRM, DecisionCommands(program, location)))
    assert command_lines(message, "approve") == [[*program, "approve", *location, approval.id]]
    assert command_lines(message, "deny") == [[*program, "deny", *location, approval.id]]
    assert "within 15 min (until 2027-01-15T08:15:00Z)" in message
    assert f"Approval id {approval.id} " in message


def test_a_refusal_says_until_when_it_stands_and_what_to_do(tmp_path: Path) -> None:
    requests = store(tmp_path)
    approval = requests.request(RESTART, "stdio", CONFIRM.reason)
    refused = requests.decide(approval.id, False, by="cli:alice")
    message = str(ApprovalDenied(refused))
    assert f"a person refused approval {approval.id}" in message
    assert "decided by cli:alice" in message
    assert "refused until 2027-01-15T08:15:00Z" in message  # created + ttl: when the refusal expires
    assert "do not retry it before then" in message
    assert "Ask the person" in message


def test_the_default_store_needs_no_location(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("FLEETBUS_STATE_DIR", "FLEETBUS_APPROVALS_DIR"):
        monkeypatch.delenv(name, raising=False)
    settings = load_settings()
    assert settings.state_dir == default_state_dir()
    assert settings.approvals_location() == ()
    assert not settings.names_approvals_location()


def test_another_state_dir_is_named_absolutely(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FLEETBUS_APPROVALS_DIR", raising=False)
    monkeypatch.setenv("FLEETBUS_STATE_DIR", "state")  # relative: the message must work from anywhere
    settings = load_settings()
    assert settings.approvals_location() == ("--state-dir", str(tmp_path / "state"))
    assert settings.names_approvals_location()
    elsewhere = load_settings(approvals_dir=tmp_path / "approvals")
    assert elsewhere.approvals_location() == ("--approvals-dir", str(tmp_path / "approvals"))
