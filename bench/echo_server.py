"""The floor: a bare MCP SDK server (low-level `Server`, the SDK's own stdio transport) with one `echo` tool that
returns its arguments as text and structured content. Nothing fleetbus does is in it.

Run: python bench/echo_server.py   (speaks MCP on stdin/stdout)
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import mcp_types as types
from mcp.server import Server, ServerRequestContext
from mcp.server.stdio import stdio_server

ECHO = types.Tool(
    name="echo",
    description="Return the arguments.",
    input_schema={"type": "object", "additionalProperties": True},
    output_schema={"type": "object"},
)


async def list_tools(
    ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
) -> types.ListToolsResult:
    return types.ListToolsResult(tools=[ECHO])


async def call_tool(ctx: ServerRequestContext[Any], params: types.CallToolRequestParams) -> types.CallToolResult:
    arguments = dict(params.arguments or {})
    return types.CallToolResult(
        content=[types.TextContent(type="text", text=json.dumps(arguments))], structured_content=arguments
    )


async def main() -> None:
    server: Server[Any] = Server("echo", version="0", on_list_tools=list_tools, on_call_tool=call_tool)
    async with stdio_server() as (read_stream, write_stream):
        await server.run(read_stream, write_stream, server.create_initialization_options())


if __name__ == "__main__":
    anyio.run(main)
