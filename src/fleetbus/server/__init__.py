"""The MCP protocol side: server wiring and transports."""
