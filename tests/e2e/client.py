"""Driving `fleetbus serve` over stdio with the official SDK client, for the end-to-end tests."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import mcp_types as types
from mcp import Client
from mcp.client.session import ElicitationFnT, MessageHandlerFnT
from mcp.client.stdio import StdioServerParameters

from fleetbus.sandbox import Sandbox

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_POLICY = ROOT / "tests" / "policies" / "example_service.toml"
ERAS = ["legacy", "2026-07-28"]


def server_env(sandbox: Sandbox, **settings: str) -> dict[str, str]:
    """The environment of a server on the sandbox: its buses, its state dir, the example-service policy."""
    env = {**sandbox.env(), "PATH": os.environ["PATH"], "FLEETBUS_POLICY_FILE": str(EXAMPLE_POLICY)}
    env.update({f"FLEETBUS_{key.upper()}": value for key, value in settings.items()})
    return env


@asynccontextmanager
async def serve(
    sandbox: Sandbox,
    era: str,
    *,
    elicitation: ElicitationFnT | None = None,
    messages: MessageHandlerFnT | None = None,
    **settings: str,
) -> AsyncIterator[Client]:
    # A context manager rather than a fixture: the SDK's task groups must be entered and left in one task.
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "fleetbus", "serve"], env=server_env(sandbox, **settings)
    )
    async with Client(server, mode=era, elicitation_callback=elicitation, message_handler=messages) as connected:
        yield connected


def text(result: types.CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


async def call(client: Client, name: str, **arguments: Any) -> types.CallToolResult:
    return await client.call_tool(name, arguments)
