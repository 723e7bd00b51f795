"""Hosts: the inventory of what fleetbus may reach, the patterns that select from it, and the SSH connections
carrying D-Bus and commands to each host. Knows nothing of MCP or policy."""
