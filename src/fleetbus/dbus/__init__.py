"""Talking to one D-Bus bus: types, connections, introspection, signals. Knows nothing of MCP or policy."""
