"""MCP Tool objects for listed tools, in the lean wire form of fleetbus.tools.wire."""

from __future__ import annotations

import mcp_types as types

from fleetbus.tools.registry import Listed, wire_definition


def tool(entry: Listed) -> types.Tool:
    return types.Tool.model_validate(wire_definition(entry))
