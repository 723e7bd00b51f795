"""fleetbus's own audit records, mirrored to the sandbox's real journald, stay the auditor's: `query_journal`
returns them only to a caller holding the audit right (the admin preset and, for a token, the admin scope)."""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path

import pytest

from fleetbus.gateway import Caller
from fleetbus.guard.journald import MESSAGE_ID
from fleetbus.operation import Operation
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.integration.effects_setup import MANAGER, MANAGER_PATH, SD, guarded

pytestmark = pytest.mark.sandbox

PEER = "org.freedesktop.DBus.Peer"


async def journal_messages(runtime: Runtime, caller: Caller, grep: str) -> list[str]:
    result = await runtime.registry.run(
        runtime.context(caller), "query_journal", {"grep": grep, "since": "-1h", "limit": 200, "format": "json"}
    )
    assert not result.is_error, result.text
    return [entry["message"] for entry in result.structured["entries"]]


def copies_in_journal(sandbox: Sandbox, client: str, wanted: int) -> int:
    """How many copies of `client`'s records journald holds, waiting (with a deadline) for `wanted`."""
    deadline = time.monotonic() + 15
    while True:
        found = len(sandbox.journal(f"MESSAGE_ID={MESSAGE_ID}", f"FLEETBUS_CLIENT={client}", "-o", "cat").splitlines())
        if found >= wanted or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


async def test_a_readonly_caller_does_not_see_another_clients_call_records(sandbox: Sandbox, tmp_path: Path) -> None:
    other = f"other-{secrets.token_hex(4)}"
    async with guarded(sandbox, tmp_path / "admin-state", safety="admin") as admin:
        ping = Operation("dbus.call", "local", "system", SD, MANAGER_PATH, PEER, "Ping")
        get = Operation(
            "dbus.call",
            "local",
            "system",
            SD,
            MANAGER_PATH,
            "org.freedesktop.DBus.Properties",
            "Get",
            "ss",
            (MANAGER, "Version"),
        )
        for operation in (ping, get, ping):
            await admin.gateway.call(operation, Caller(other))
        admin.gateway.audit_log.sync()
    # Three reads, one record each (written once it ran): all reached the real journald.
    assert copies_in_journal(sandbox, other, 3) >= 3

    async with guarded(sandbox, tmp_path / "readonly-state", safety="readonly") as readonly:
        assert await journal_messages(readonly, Caller("reader"), other) == []
    async with guarded(sandbox, tmp_path / "admin-reader-state", safety="admin") as admin:
        # A token under the admin preset still needs the admin scope for the audit log's copies.
        assert await journal_messages(admin, Caller("token:read", scopes=frozenset({"read"})), other) == []
        for caller in (Caller("operator"), Caller("token:admin", scopes=frozenset({"admin"}))):
            seen = await journal_messages(admin, caller, other)
            assert len(seen) >= 3, caller
            assert all(message.startswith("fleetbus ") and f"for {other}" in message for message in seen)


async def test_hidden_copies_do_not_crowd_out_the_entries_asked_for(sandbox: Sandbox, tmp_path: Path) -> None:
    # A readonly caller's newest entries, with fleetbus's copies among them, still fill the page it asked for.
    token = secrets.token_hex(4)
    unit = f"chatty-{token}.service"
    sandbox.write_unit(
        unit, f"[Service]\nType=oneshot\nExecStart=/bin/sh -c 'for i in 1 2 3 4 5; do echo line-{token}-$i; done'\n"
    )
    sandbox.systemd("StartUnit", "ss", unit, "replace")
    async with guarded(sandbox, tmp_path / "state", safety="readonly") as readonly:
        caller = Caller("reader")
        for _ in range(100):
            seen = await journal_messages(readonly, caller, f"line-{token}")
            if len(seen) == 5:
                break
            await asyncio.sleep(0.05)
        assert seen == [f"line-{token}-{i}" for i in range(1, 6)]
        # Then another client's calls put ten audit copies on top of the journal: a readonly tail of five
        # entries still has five, none of them a copy.
        other = f"busy-{token}"
        async with guarded(sandbox, tmp_path / "admin-state", safety="admin") as admin:
            ping = Operation("dbus.call", "local", "system", SD, MANAGER_PATH, PEER, "Ping")
            for _ in range(10):  # one record each
                await admin.gateway.call(ping, Caller(other))
        assert copies_in_journal(sandbox, other, 10) >= 10
        result = await readonly.registry.run(readonly.context(caller), "query_journal", {"limit": 5, "format": "json"})
        assert not result.is_error, result.text
        messages = [e["message"] for e in result.structured["entries"]]
        assert len(messages) == 5, messages
        assert not any(f"for {other}" in message for message in messages)
