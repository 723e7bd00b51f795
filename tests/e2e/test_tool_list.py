"""The tool list as a client sees it: every schema passes the MCP Inspector's --strict portability lint, under
every preset; and under every preset the default list holds the core and bus toolsets plus pack tools of systemd1,
login1 and hostname1 within 40 tools and 4,000 cl100k tokens."""

from __future__ import annotations

import json
import subprocess
import sys

import bpe_openai
import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e.client import server_env
from tests.e2e.inspector import INSPECTOR, NODE, NODE_DIR, STRICT_FAILED, ensure_installed
from tests.tool_names import READONLY_TOOLS

pytestmark = pytest.mark.sandbox

PACKS = {"systemd1", "login1", "hostname1", "timedate1", "packagekit"}
EVERYTHING = {"tool_budget": "1000", "tool_budget_chars": "10000000", "toolsets": '["all"]'}


def strict_tools_list(
    sandbox: Sandbox, **settings: str
) -> tuple[subprocess.CompletedProcess[str], list[dict[str, object]]]:
    """tools/list through the Inspector CLI (it starts `fleetbus serve` over stdio) with --strict."""
    ensure_installed()
    env = server_env(sandbox, **settings)
    variables = [f"-e{key}={value}" for key, value in env.items() if key.startswith(("DBUS_", "FLEETBUS_"))]
    command = [
        str(NODE),
        str(INSPECTOR),
        "--cli",
        *variables,
        "--format",
        "json",
        "--method",
        "tools/list",
        "--strict",
        sys.executable,
        "-m",
        "fleetbus",
        "serve",
    ]
    home = NODE_DIR / ".home"
    home.mkdir(exist_ok=True)
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env={"HOME": str(home), "PATH": f"{NODE.parent}:/usr/bin:/bin", "NO_COLOR": "1", "CI": "1"},
    )
    tools = json.loads(done.stdout)["result"]["tools"] if done.stdout else []
    return done, tools


@pytest.mark.parametrize("safety", ["readonly", "operator", "admin"])
def test_every_tool_passes_the_inspectors_strict_lint(sandbox: Sandbox, safety: str) -> None:
    done, tools = strict_tools_list(sandbox, safety=safety, **EVERYTHING)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.returncode != STRICT_FAILED
    assert "Warning" not in done.stderr, done.stderr[-3000:]
    names = {str(tool["name"]) for tool in tools}
    assert names >= READONLY_TOOLS
    # Every pack tool is in this list (no budget): the lint covered each generated schema.
    assert any(name.startswith("systemd1_") for name in names)
    if safety == "admin":
        assert {"systemd1_power_off", "login1_reboot", "systemd1_start_transient_unit"} <= names


@pytest.mark.parametrize("safety", ["readonly", "operator", "admin"])
def test_the_default_list_fits_a_40_tool_client_in_4000_tokens_under_every_preset(
    sandbox: Sandbox, safety: str
) -> None:
    done, tools = strict_tools_list(sandbox, safety=safety)
    assert done.returncode == 0, done.stderr[-3000:]
    names = [str(tool["name"]) for tool in tools]
    # What the client received, as compact JSON, counted with the tokenizer GPT-4-class models use.
    tokens = len(bpe_openai.get_encoding("cl100k_base").encode(json.dumps({"tools": tools}, separators=(",", ":"))))
    packed = [name for name in names if name.split("_")[0] in PACKS]
    print(f"{safety} tools/list: {len(names)} tools ({len(packed)} from packs), {tokens} cl100k tokens")
    assert set(names) >= READONLY_TOOLS
    if safety != "readonly":
        assert "unit_job" in names
    for pack in ("systemd1_", "login1_", "hostname1_"):
        assert any(name.startswith(pack) for name in names), (pack, names)
    assert len(names) <= 40
    assert tokens <= 4000
