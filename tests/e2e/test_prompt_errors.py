"""prompts/get of a prompt or an argument that is not there, over the official SDK client in both protocol eras:
JSON-RPC invalid params (-32602) naming it and the ones there are, and no traceback in the server's log."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import mcp_types as types
import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from fleetbus.sandbox import Sandbox
from fleetbus.server.prompts import GUIDES
from tests.e2e.client import ERAS, server_env

pytestmark = pytest.mark.sandbox


@asynccontextmanager
async def serving(sandbox: Sandbox, era: str, log: Path) -> AsyncIterator[Client]:
    """The server over stdio, its stderr (the log) in `log`."""
    server = StdioServerParameters(command=sys.executable, args=["-m", "fleetbus", "serve"], env=server_env(sandbox))
    with log.open("w") as errlog:
        async with Client(stdio_client(server, errlog=errlog), mode=era) as client:
            yield client


@pytest.mark.parametrize("era", ERAS)
async def test_an_unknown_prompt_is_invalid_params_naming_the_prompts(
    sandbox: Sandbox, tmp_path: Path, era: str
) -> None:
    log = tmp_path / "server.log"
    async with serving(sandbox, era, log) as client:
        known = [prompt.name for prompt in (await client.list_prompts()).prompts]
        with pytest.raises(MCPError) as raised:
            await client.get_prompt("securty_review")
    assert known == [guide.name for guide in GUIDES]
    assert raised.value.code == types.INVALID_PARAMS  # was 0 (handshake era) or "Internal server error"
    assert raised.value.message.startswith("unknown prompt 'securty_review'; did you mean security_review?")
    assert all(name in raised.value.message for name in known)
    assert "Traceback" not in log.read_text()


@pytest.mark.parametrize("era", ERAS)
async def test_an_unknown_prompt_argument_is_invalid_params(sandbox: Sandbox, tmp_path: Path, era: str) -> None:
    log = tmp_path / "server.log"
    async with serving(sandbox, era, log) as client:
        with pytest.raises(MCPError) as raised:
            await client.get_prompt("security_review", {"focuss": "ssh"})  # was silently ignored
        fine = await client.get_prompt("security_review", {"focus": "ssh"})
    assert raised.value.code == types.INVALID_PARAMS
    assert "prompt 'security_review' has no argument 'focuss'; did you mean focus?" in raised.value.message
    content = fine.messages[0].content
    assert isinstance(content, types.TextContent)
    assert "focus: ssh" in content.text
    assert "Traceback" not in log.read_text()
