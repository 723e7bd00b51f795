"""fleetbus: an MCP server that inspects and operates Linux hosts through D-Bus, under operator policy."""

__version__ = "0.1.0"
