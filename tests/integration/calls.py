"""Calling a tool the way the MCP layer does (registry → gateway), for the integration tests."""

from __future__ import annotations

from typing import Any

from fleetbus.gateway import Caller
from fleetbus.output import ToolResult
from fleetbus.runtime import Runtime


async def run(runtime: Runtime, tool: str, /, **arguments: Any) -> ToolResult:
    # Positional-only, so a tool argument called `name` or `tool` cannot collide with these parameters.
    return await runtime.registry.run(runtime.context(Caller("test")), tool, arguments)


async def ok(runtime: Runtime, tool: str, /, **arguments: Any) -> dict[str, Any]:
    """The structured answer of a call that must succeed; a failure shows the tool's own error text."""
    result = await run(runtime, tool, **arguments)
    assert not result.is_error, result.text
    return result.structured
