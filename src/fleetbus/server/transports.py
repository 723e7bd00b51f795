"""Serving the MCP server: over stdio for now."""

from __future__ import annotations

import logging

from mcp.server.stdio import stdio_server

from fleetbus.runtime import Runtime
from fleetbus.server.app import build_server

log = logging.getLogger(__name__)


async def serve_stdio(runtime: Runtime) -> None:
    server = build_server(runtime, client="stdio")
    try:
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
    finally:
        runtime.close()
