"""The guard end to end: presets, approvals (out of band and by elicitation, both eras), protected units,
explain, the effective-policy resource and the audit log, through `fleetbus serve` on the sandbox."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mcp_types as types
import pytest
from mcp.client.context import ClientRequestContext

from fleetbus.guard.journald import MESSAGE_ID
from fleetbus.sandbox import Sandbox
from tests.e2e.client import ERAS, call, serve, server_env, text

pytestmark = pytest.mark.sandbox

SYSTEMD = {
    "service": "org.freedesktop.systemd1",
    "path": "/org/freedesktop/systemd1",
    "interface": "org.freedesktop.systemd1.Manager",
}
WORKER = "[Unit]\nDescription=A worker to restart\n[Service]\nExecStart=/bin/sleep infinity\n"


def fleetbus(sandbox: Sandbox, *args: str, **settings: str) -> subprocess.CompletedProcess[str]:
    """The fleetbus CLI as a person at the server would run it, sharing the server's state directory."""
    return subprocess.run(
        [sys.executable, "-m", "fleetbus", *args],
        env=server_env(sandbox, **settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def main_pid(sandbox: Sandbox, unit: str) -> int:
    path = sandbox.systemd("GetUnit", "s", unit).split()[1].strip('"')
    out = sandbox.busctl(
        "get-property", "org.freedesktop.systemd1", path, "org.freedesktop.systemd1.Service", "MainPID"
    )
    return int(out.split()[1])


async def wait_for_new_pid(sandbox: Sandbox, unit: str, old: int) -> int:
    for _ in range(100):
        pid = main_pid(sandbox, unit)
        if pid not in (0, old):
            return pid
        await asyncio.sleep(0.05)
    raise AssertionError(f"{unit} kept main pid {old}")


def started_worker(sandbox: Sandbox, name: str) -> int:
    sandbox.write_unit(name, WORKER)
    sandbox.systemd("StartUnit", "ss", name, "replace")
    for _ in range(100):
        pid = main_pid(sandbox, name)
        if pid:
            return pid
        time.sleep(0.05)
    raise AssertionError(f"{name} did not start")


def approval_id(message: str) -> str:
    marker = "Approval id "
    assert marker in message, message
    return message.split(marker, 1)[1].split(maxsplit=1)[0]


def restart(unit: str) -> dict[str, Any]:
    return {**SYSTEMD, "method": "RestartUnit", "args": [unit, "replace"]}


async def test_operator_restart_needs_an_approval_that_covers_exactly_one_call(sandbox: Sandbox) -> None:
    first_pid = started_worker(sandbox, "worker-approve.service")
    started_worker(sandbox, "worker-other.service")
    async with serve(sandbox, "legacy", safety="operator") as client:
        asked = await call(client, "call_method", **restart("worker-approve.service"))
        assert asked.is_error
        assert "needs a person's approval" in text(asked)
        approval = approval_id(text(asked))
        assert main_pid(sandbox, "worker-approve.service") == first_pid  # nothing happened yet

        listed = fleetbus(sandbox, "approvals")
        assert approval in listed.stdout
        assert "RestartUnit" in listed.stdout
        approved = fleetbus(sandbox, "approve", approval)
        assert approved.returncode == 0, approved.stderr

        # Another unit is not covered by that approval.
        other = await call(client, "call_method", **restart("worker-other.service"))
        assert other.is_error
        assert approval_id(text(other)) != approval

        done = await call(client, "call_method", **restart("worker-approve.service"))
        assert not done.is_error, text(done)
        second_pid = await wait_for_new_pid(sandbox, "worker-approve.service", first_pid)

        again = await call(client, "call_method", **restart("worker-approve.service"))
        assert again.is_error
        assert approval_id(text(again)) not in (approval,)
    assert main_pid(sandbox, "worker-approve.service") == second_pid
    assert fleetbus(sandbox, "approve", approval).returncode == 1  # used: cannot be approved twice


async def test_a_denied_approval_is_refused_on_retry(sandbox: Sandbox) -> None:
    started_worker(sandbox, "worker-deny.service")
    async with serve(sandbox, "legacy", safety="operator") as client:
        asked = await call(client, "call_method", **restart("worker-deny.service"))
        denied = fleetbus(sandbox, "deny", approval_id(text(asked)))
        assert denied.returncode == 0, denied.stderr
        retry = await call(client, "call_method", **restart("worker-deny.service"))
    assert retry.is_error
    assert "a person refused approval" in text(retry)


def elicitation(answer: str, seen: list[str]) -> Any:
    async def respond(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.append(params.message)
        if answer == "accept":
            return types.ElicitResult(action="accept", content={"approve": True})
        return types.ElicitResult(action="decline")

    return respond


@pytest.mark.parametrize("era", ERAS)
async def test_elicitation_asks_the_person_and_honours_accept(sandbox: Sandbox, era: str) -> None:
    unit = f"worker-elicit-accept-{era.replace('-', '')}.service"
    first_pid = started_worker(sandbox, unit)
    seen: list[str] = []
    async with serve(sandbox, era, safety="operator", elicitation=elicitation("accept", seen)) as client:
        result = await call(client, "call_method", **restart(unit))
    assert not result.is_error, text(result)
    assert len(seen) == 1
    assert "RestartUnit" in seen[0]
    assert unit in seen[0]
    await wait_for_new_pid(sandbox, unit, first_pid)


@pytest.mark.parametrize("era", ERAS)
async def test_elicitation_honours_decline(sandbox: Sandbox, era: str) -> None:
    unit = f"worker-elicit-decline-{era.replace('-', '')}.service"
    first_pid = started_worker(sandbox, unit)
    seen: list[str] = []
    async with serve(sandbox, era, safety="operator", elicitation=elicitation("decline", seen)) as client:
        result = await call(client, "call_method", **restart(unit))
    assert result.is_error
    assert "refused" in text(result)
    assert len(seen) == 1
    assert main_pid(sandbox, unit) == first_pid


@pytest.mark.parametrize("safety", ["operator", "admin"])
async def test_protected_units_are_refused_with_the_rule(sandbox: Sandbox, safety: str) -> None:
    async with serve(sandbox, "legacy", safety=safety) as client:
        result = await call(
            client, "call_method", **{**SYSTEMD, "method": "StopUnit", "args": ["dbus.service", "replace"]}
        )
    assert result.is_error
    assert "refused by policy rule 'protected-units'" in text(result)
    assert "dbus.service is a protected unit" in text(result)


async def test_presets_shape_the_tool_list(sandbox: Sandbox) -> None:
    lists = {}
    for safety in ("readonly", "operator", "admin"):
        # Every toolset: this is about what the presets let be seen, not about which toolsets are listed.
        async with serve(sandbox, "legacy", safety=safety, toolsets='["all"]') as client:
            lists[safety] = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert "set_property" not in lists["readonly"]
    assert "audit_query" not in lists["readonly"]
    assert "audit_query" not in lists["operator"]
    for name, tool in lists["readonly"].items():
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is True, name
    admin = lists["admin"]
    assert admin["set_property"].annotations is not None
    assert admin["set_property"].annotations.destructive_hint is True
    assert admin["call_method"].annotations is not None
    assert admin["call_method"].annotations.read_only_hint is False
    assert admin["audit_query"].annotations is not None
    assert admin["audit_query"].annotations.read_only_hint is True


async def test_explain_and_the_effective_policy_resource(sandbox: Sandbox) -> None:
    async with serve(sandbox, "legacy", safety="operator") as client:
        explained = await call(client, "explain", **restart("worker-explained.service"))
        protected = await call(
            client, "explain", **{**SYSTEMD, "method": "StopUnit", "args": ["dbus.service", "replace"]}
        )
        resource = await client.read_resource("policy://effective")
    assert not explained.is_error, text(explained)
    body = explained.structured_content
    assert body is not None
    assert (body["verdict"], body["rule"], body["risk"]) == ("confirm", "operator:routine", "routine")
    assert body["operation"]["member"] == "RestartUnit"
    assert body["polkit"]["action"] == "org.freedesktop.systemd1.manage-units"
    assert body["polkit"]["authorized"] is True  # fleetbus runs as root in the sandbox
    assert protected.structured_content is not None
    assert protected.structured_content["rule"] == "protected-units"
    assert protected.structured_content["protected_units"] == ["dbus.service"]
    content = resource.contents[0]
    assert isinstance(content, types.TextResourceContents)
    policy = json.loads(content.text)
    assert policy["preset"] == "operator"
    assert "dbus.service" in policy["protected_units"]


def test_readonly_refuses_changes_from_the_cli(sandbox: Sandbox) -> None:
    result = fleetbus(
        sandbox,
        "tool",
        "call_method",
        *[f"{k}={v}" for k, v in SYSTEMD.items()],
        "method=RestartUnit",
        'args:=["dbus.service","replace"]',
    )
    assert result.returncode == 1
    assert "refused by policy rule" in result.stderr
    explained = fleetbus(
        sandbox,
        "explain",
        *[f"{k}={v}" for k, v in SYSTEMD.items()],
        "method=RestartUnit",
        'args:=["dbus.service","replace"]',
        safety="admin",
    )
    assert explained.returncode == 0, explained.stderr
    body = json.loads(explained.stdout)
    assert (body["verdict"], body["rule"], body["protected_units"]) == ("deny", "protected-units", ["dbus.service"])


async def test_the_audit_log_of_a_session_verifies_and_detects_tampering(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    started_worker(sandbox, "worker-audited.service")
    async with serve(sandbox, "legacy", safety="admin", state_dir=str(state)) as client:
        await call(client, "get_property", **{**SYSTEMD, "property": "Version"})
        await call(client, "call_method", **restart("worker-audited.service"))
        await call(client, "call_method", **{**SYSTEMD, "method": "StopUnit", "args": ["dbus.service", "replace"]})

    def verify() -> subprocess.CompletedProcess[str]:
        return fleetbus(sandbox, "audit", "verify", state_dir=str(state))

    assert verify().returncode == 0, verify().stderr
    log = state / "audit" / "audit.log"
    records = [json.loads(line) for line in log.read_text().splitlines()]
    events = [(r["event"], r["operation"]["member"]) for r in records]
    assert ("succeeded", "RestartUnit") in events
    assert ("denied", "StopUnit") in events
    # The session's own calls carry its identity; the tool packs' introspection is fleetbus's own, and says so.
    assert {r["client"] for r in records} == {"stdio", "fleetbus:packs"}
    assert {r["operation"]["member"] for r in records if r["client"] == "stdio"} >= {"RestartUnit", "StopUnit"}
    # The same records reached the sandbox's journald, with their sequence numbers and hashes.
    mirrored = [json.loads(line) for line in sandbox.journal(f"MESSAGE_ID={MESSAGE_ID}", "-o", "json").splitlines()]
    by_hash = {entry["FLEETBUS_HASH"]: entry for entry in mirrored}
    for record in records:
        entry = by_hash[record["hash"]]
        assert entry["FLEETBUS_SEQ"] == str(record["seq"])
        assert entry["FLEETBUS_EVENT"] == record["event"]
        assert json.loads(entry["FLEETBUS_RECORD"]) == record
    original = log.read_bytes()

    edited = bytearray(original)
    middle = len(edited) // 2
    edited[middle] = ord("X") if edited[middle] != ord("X") else ord("Y")
    log.write_bytes(bytes(edited))
    assert verify().returncode == 1
    assert "line" in verify().stderr

    lines = original.decode().splitlines(keepends=True)
    log.write_text("".join(lines[:2] + lines[3:]))
    assert verify().returncode == 1

    log.write_text("".join(lines[:-1]))
    broken = verify()
    assert broken.returncode == 1
    assert "cut off the end" in broken.stderr

    log.write_bytes(original)
    assert verify().returncode == 0


def test_kill_9_with_calls_in_flight_leaves_a_log_that_verifies(
    sandbox: Sandbox, example_service: str, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    env = {**server_env(sandbox), "FLEETBUS_STATE_DIR": str(state)}
    server = subprocess.Popen(
        [sys.executable, "-m", "fleetbus", "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    assert server.stdin is not None
    assert server.stdout is not None

    def send(message: dict[str, Any]) -> None:
        assert server.stdin is not None
        server.stdin.write((json.dumps(message) + "\n").encode())
        server.stdin.flush()

    send(
        {
            "jsonrpc": "2.0",
            "id": 0,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "kill-test", "version": "1"},
            },
        }
    )
    assert json.loads(server.stdout.readline())["id"] == 0
    send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    fleet = {"service": example_service, "path": "/com/example/Fleet1", "interface": "com.example.Fleet1"}
    for number in range(1, 41):
        arguments = (
            {**fleet, "method": "GetAfter", "args": [0.5]}
            if number % 2
            else {**SYSTEMD, "method": "GetUnit", "args": ["dbus.service"]}
        )
        send(
            {
                "jsonrpc": "2.0",
                "id": number,
                "method": "tools/call",
                "params": {"name": "call_method", "arguments": arguments},
            }
        )
    time.sleep(0.3)
    os.kill(server.pid, signal.SIGKILL)
    server.wait(timeout=10)
    result = subprocess.run(
        # The kill may land between a record and its head: the server crashed, and verify is told so.
        [sys.executable, "-m", "fleetbus", "audit", "verify", "--after-crash"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (state / "audit" / "audit.log").read_text().splitlines() if line]
    # A read in flight when the server died has no record: it disclosed nothing (its one record precedes its answer).
    finished = [
        r
        for r in records
        if r["event"] in ("succeeded", "failed") and r["operation"].get("member") in ("GetAfter", "GetUnit")
    ]
    assert len(finished) < 40, "the kill should have caught calls in flight"
