"""`fleetbus serve --transport http` with bearer tokens, driven by clients nobody on this team wrote (the MCP
Inspector CLI, the official conformance suite) and by the SDK client: scopes checked with the policy, 401s where
the token is missing, expired or revoked, and every call in the audit log under the token's name."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.client.context import ClientRequestContext

from fleetbus.sandbox import Sandbox
from tests.e2e import inspector
from tests.e2e.client import ERAS, ROOT, server_env, text
from tests.e2e.serving import (
    HOSTNAME1,
    INITIALIZE,
    Served,
    audit_records,
    fleetbus,
    free_port,
    http_client,
    http_server,
    mint,
    raw_post,
    verify_audit,
)
from tests.e2e.test_guard import main_pid, started_worker
from tests.unit import test_jwt as jwt_tokens
from tests.unit.test_jwt import serving_jwks

pytestmark = pytest.mark.sandbox


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("http") / "state"


@pytest.fixture(scope="module")
def server(sandbox: Sandbox, state: Path) -> Iterator[Served]:
    """One server for the module, under the operator preset (changes need approval), with tokens."""
    mint(sandbox, state, "bootstrap", "read")  # HTTP refuses to start without any token
    with http_server(sandbox, state, safety="operator") as served:
        yield served
    assert served.returncode == 0, served.output()


@pytest.mark.parametrize("era", inspector.ERAS)
def test_inspector_lists_tools_and_calls_one_with_a_token(
    sandbox: Sandbox, state: Path, server: Served, era: str
) -> None:
    token = mint(sandbox, state, f"inspector-{era}", "read")
    listed = inspector.inspector(server.url, "--method", "tools/list", era=era, token=token)
    assert listed.returncode == 0, listed.stderr
    names = {tool["name"] for tool in listed.json()["result"]["tools"]}
    assert {"get_property", "list_services", "unit_job"} <= names

    called = inspector.inspector(
        server.url,
        "--method",
        "tools/call",
        "--tool-name",
        "get_property",
        "--tool-args-json",
        json.dumps(HOSTNAME1),
        era=era,
        token=token,
    )
    assert called.returncode == 0, called.stderr
    result = called.json()["result"]
    assert result["isError"] is False
    assert result["structuredContent"]["value"] == sandbox.hostname

    mine = [r for r in audit_records(state) if r["client"] == f"inspector-{era}"]
    assert ("succeeded", "Get") in {(r["event"], r["operation"]["member"]) for r in mine}


def test_without_a_token_the_answer_is_401_with_a_bearer_challenge(server: Served) -> None:
    # What the challenge and OAuth discovery say is tests/e2e/test_http_discovery.py's subject.
    refused = raw_post(server.url, INITIALIZE)
    assert refused.status_code == 401
    assert refused.headers["www-authenticate"].startswith("Bearer ")

    wrong = raw_post(server.url, INITIALIZE, token="fleetbus_00000000_" + "A" * 43)
    assert wrong.status_code == 401
    garbage = raw_post(server.url, INITIALIZE, token="not-a-fleetbus-token")
    assert garbage.status_code == 401

    unauthenticated = inspector.inspector(server.url, "--method", "tools/list")
    assert unauthenticated.returncode != 0
    assert "auth_required" in unauthenticated.stdout + unauthenticated.stderr


def test_a_read_token_calling_unit_job_gets_an_error_naming_the_scope(
    sandbox: Sandbox, state: Path, server: Served
) -> None:
    unit = "worker-scoped.service"
    pid = started_worker(sandbox, unit)
    token = mint(sandbox, state, "reader", "read")
    called = inspector.inspector(
        server.url,
        "--method",
        "tools/call",
        "--tool-name",
        "unit_job",
        "--tool-arg",
        f"unit={unit}",
        "--tool-arg",
        "action=restart",
        token=token,
    )
    assert called.returncode == inspector.TOOL_ERROR, called.stdout + called.stderr
    message = "".join(block["text"] for block in called.json()["result"]["content"])
    assert "lacks scope units:write" in message
    assert unit in message
    assert main_pid(sandbox, unit) == pid  # nothing happened
    denied = [r for r in audit_records(state) if r["client"] == "reader" and r["event"] == "denied"]
    assert denied, "the refusal must be in the audit log"
    assert denied[-1]["scope"] == "units:write"
    assert denied[-1]["operation"]["member"] == "RestartUnit"


@pytest.mark.parametrize("era", ERAS)
async def test_scopes_narrow_what_the_policy_allows_in_both_eras(
    sandbox: Sandbox, state: Path, server: Served, era: str
) -> None:
    """A token for web-* units cannot restart a worker; its units:write:GLOB scope is named in the refusal."""
    unit = f"worker-glob-{era.replace('-', '')}.service"
    pid = started_worker(sandbox, unit)
    token = mint(sandbox, state, f"web-only-{era}", "read,units:write:web-*")
    async with http_client(server.url, token, era) as client:
        read = await client.call_tool("get_property", HOSTNAME1)
        refused = await client.call_tool("unit_job", {"unit": unit, "action": "restart"})
    assert not read.is_error, text(read)
    assert refused.is_error
    assert f"lacks scope units:write (or units:write:GLOB matching {unit})" in text(refused)
    assert main_pid(sandbox, unit) == pid
    assert "units:write:web-*" in text(refused)


async def test_hosts_limit_where_a_token_reaches(sandbox: Sandbox, state: Path, server: Served) -> None:
    token = mint(sandbox, state, "web-hosts", "read", "--hosts", "web-*")
    async with http_client(server.url, token) as client:
        result = await client.call_tool("get_property", HOSTNAME1)
    assert result.is_error
    assert "may not touch host 'local'" in text(result)


async def test_expired_and_revoked_tokens_get_401(sandbox: Sandbox, state: Path, server: Served) -> None:
    short = mint(sandbox, state, "short-lived", "read", "--ttl", "2s")
    assert raw_post(server.url, INITIALIZE, token=short).status_code == 200
    await anyio.sleep(2.2)
    assert raw_post(server.url, INITIALIZE, token=short).status_code == 401

    revoked = mint(sandbox, state, "to-revoke", "read")
    async with http_client(server.url, revoked) as client:
        assert not (await client.call_tool("get_property", HOSTNAME1)).is_error
    done = fleetbus(sandbox, state, "token", "revoke", "to-revoke")
    assert done.returncode == 0, done.stderr
    # The running server reads the store again when it changes: the very next request is refused.
    assert raw_post(server.url, INITIALIZE, token=revoked).status_code == 401
    listed = fleetbus(sandbox, state, "token", "list", "--json")
    states = {entry["name"]: entry["state"] for entry in json.loads(listed.stdout)}
    assert states["short-lived"] == "expired"
    assert states["to-revoke"] == "revoked"
    turned_away = {(r["client"], r["reason"]) for r in audit_records(state) if r["event"] == "token-refused"}
    assert {("short-lived", "expired"), ("to-revoke", "revoked")} <= turned_away
    stored = (state / "tokens.json").read_text()
    assert revoked not in stored  # only hashes are kept
    assert short not in stored
    assert (state / "tokens.json").stat().st_mode & 0o777 == 0o600


def approving(answer: str, seen: list[str]) -> Any:
    async def respond(context: ClientRequestContext, params: types.ElicitRequestParams) -> types.ElicitResult:
        seen.append(params.message)
        return types.ElicitResult(action="accept", content={"approve": answer == "accept"})

    return respond


@pytest.mark.parametrize("era", ERAS)
async def test_elicitation_over_http_counts_only_for_tokens_that_may_approve(
    sandbox: Sandbox, state: Path, server: Served, era: str
) -> None:
    unit = f"worker-http-{era.replace('-', '')}.service"
    first = started_worker(sandbox, unit)

    operator_token = mint(sandbox, state, f"operator-{era}", "read,units:write,approve")
    seen: list[str] = []
    async with http_client(server.url, operator_token, era, elicitation=approving("accept", seen)) as client:
        done = await client.call_tool("unit_job", {"unit": unit, "action": "restart"})
    assert not done.is_error, text(done)
    assert len(seen) == 1
    assert unit in seen[0]
    assert main_pid(sandbox, unit) != first

    # Without `approve`, nobody is asked through this client: the call waits for `fleetbus approve`.
    worker_token = mint(sandbox, state, f"no-approve-{era}", "read,units:write")
    unseen: list[str] = []
    async with http_client(server.url, worker_token, era, elicitation=approving("accept", unseen)) as client:
        waiting = await client.call_tool("unit_job", {"unit": unit, "action": "restart"})
    assert waiting.is_error
    assert "needs a person's approval" in text(waiting)
    assert unseen == []


def test_http_refuses_to_start_without_tokens_or_on_an_open_address(sandbox: Sandbox, tmp_path: Path) -> None:
    def serve(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "fleetbus", "serve", "--transport", "http", *args],
            env=server_env(sandbox, state_dir=str(tmp_path / "empty")),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
        )

    no_tokens = serve("--listen", "127.0.0.1:1")
    assert no_tokens.returncode == 2
    assert "fleetbus token mint" in no_tokens.stderr
    open_address = serve("--listen", "0.0.0.0:1", "--insecure-no-auth")
    assert open_address.returncode == 2
    assert "loopback" in open_address.stderr


def test_the_session_audit_log_verifies(sandbox: Sandbox, state: Path, server: Served) -> None:
    assert verify_audit(sandbox, state).returncode == 0


async def test_jwts_from_an_external_issuer(sandbox: Sandbox, tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/mcp"
    with serving_jwks() as jwks:
        issuer = json.dumps({"issuer": jwt_tokens.ISSUER, "jwks_url": jwks})
        state = tmp_path / "state"
        with http_server(sandbox, state, port=port, jwt=issuer) as server:
            good = jwt_tokens.token(audience=url, scope="openid read")
            async with http_client(server.url, good) as client:
                read = await client.call_tool("get_property", HOSTNAME1)
            elsewhere = jwt_tokens.token(audience="http://elsewhere/mcp", scope="read")
            refused = raw_post(server.url, INITIALIZE, token=elsewhere)
    assert not read.is_error, text(read)
    assert refused.status_code == 401
    assert "jwt:alice" in {r["client"] for r in audit_records(state)}


# ---- the official conformance suite ---------------------------------------------------------------


@pytest.fixture(scope="module")
def open_server(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """The conformance suite sends no token: it runs against a loopback server without authentication."""
    state = tmp_path_factory.mktemp("conformance") / "state"
    with http_server(sandbox, state, "--insecure-no-auth") as served:
        yield served
    assert served.returncode == 0, served.output()


@pytest.mark.parametrize("scenario", inspector.FIXTURE_FREE_SCENARIOS)
def test_conformance_scenario(open_server: Served, scenario: str) -> None:
    run = inspector.conformance(open_server.url, scenario)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "0 failed" in run.stdout
