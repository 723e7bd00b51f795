"""Connections to hosts: inventory, SSH links carrying D-Bus and commands; knows nothing of MCP or policy."""
