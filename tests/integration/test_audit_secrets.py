"""Secrets in arguments stay out of the audit log and its journald copy, for calls that are refused, wait for a
person, or run: environment assignments, credentials, a Wi-Fi PSK, `KEY=VALUE` with a secret-like key, a key."""

from __future__ import annotations

import base64
import contextlib
import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from fleetbus.dbus.errors import BusError
from fleetbus.gateway import Caller, GatewayError, dbus_call
from fleetbus.guard.journald import MESSAGE_ID
from fleetbus.operation import Operation
from fleetbus.sandbox import Sandbox
from tests.integration.effects_setup import MANAGER, MANAGER_PATH, SD, fresh, guarded

pytestmark = pytest.mark.sandbox

NM = "org.freedesktop.NetworkManager"


def secret(label: str) -> str:
    return f"{label}-{secrets.token_hex(8)}"


def secret_calls(values: dict[str, str]) -> list[Operation]:
    key = f"-----BEGIN PRIVATE KEY-----\nMIIE{values['pem']}\n-----END PRIVATE KEY-----\n"
    transient_properties = [
        ["ExecStart", {"signature": "a(sasb)", "value": [["/bin/true", ["/bin/true"], False]]}],
        ["Environment", {"signature": "as", "value": [f"API_TOKEN={values['env']}", "LANG=C"]}],
        [
            "SetCredential",
            {"signature": "a(say)", "value": [["db", base64.b64encode(values["cred"].encode()).decode()]]},
        ],
    ]
    wifi = {
        "connection": {
            "id": {"signature": "s", "value": "office"},
            "type": {"signature": "s", "value": "802-11-wireless"},
        },
        "802-11-wireless-security": {"psk": {"signature": "s", "value": values["psk"]}},
    }
    return [
        dbus_call(
            SD,
            MANAGER_PATH,
            MANAGER,
            "SetEnvironment",
            "as",
            [[f"DB_PASSWORD={values['setenv']}", "PATH=/bin"]],
            host="local",
        ),
        dbus_call(
            SD,
            MANAGER_PATH,
            MANAGER,
            "StartTransientUnit",
            "ssa(sv)a(sa(sv))",
            [fresh("leak"), "replace", transient_properties, []],
            host="local",
        ),
        dbus_call(
            NM,
            "/org/freedesktop/NetworkManager/Settings",
            f"{NM}.Settings",
            "AddConnection",
            "a{sa{sv}}",
            [wifi],
            host="local",
        ),
        dbus_call(
            "com.example.Fleet",
            "/com/example/Fleet1",
            "com.example.Fleet1",
            "Echo",
            "s",
            [f"MYSQL_PWD={values['kv']}"],
            host="local",
        ),
        dbus_call("com.example.Fleet", "/com/example/Fleet1", "com.example.Fleet1", "Echo", "s", [key], host="local"),
    ]


def journal_records(sandbox: Sandbox, client: str, wanted: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 10
    while True:
        lines = sandbox.journal(f"MESSAGE_ID={MESSAGE_ID}", f"FLEETBUS_CLIENT={client}", "-o", "json").splitlines()
        entries = [json.loads(line) for line in lines if line.strip()]
        if len(entries) >= wanted or time.monotonic() > deadline:
            return entries
        time.sleep(0.1)


@pytest.mark.parametrize("safety", ["readonly", "admin"])
async def test_secrets_are_not_in_the_audit_log_or_the_journal(sandbox: Sandbox, tmp_path: Path, safety: str) -> None:
    values = {label: secret(label) for label in ("setenv", "env", "cred", "psk", "kv", "pem")}
    client = f"secrets-{safety}-{secrets.token_hex(3)}"
    state = tmp_path / "state"
    async with guarded(sandbox, state, safety=safety) as runtime:
        for operation in secret_calls(values):
            # Refused, waiting for a person, or failed: each is recorded.
            with contextlib.suppress(GatewayError, BusError):
                await runtime.gateway.call(operation, Caller(client))
    log = (state / "audit" / "audit.log").read_text()
    records = [json.loads(line) for line in log.splitlines() if json.loads(line).get("client") == client]
    assert len(records) >= len(values) - 1
    for label, value in values.items():
        assert value not in log, label
        assert base64.b64encode(value.encode()).decode() not in log, label
    assert "DB_PASSWORD=«redacted»" in log  # the name stays: a person reading the log sees what was set
    journal = journal_records(sandbox, client, len(records))
    assert len(journal) >= len(records)
    text = json.dumps(journal)
    for label, value in values.items():
        assert value not in text, label
