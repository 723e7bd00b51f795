"""The built-in tools the tests expect by name, written down once: a rename must show up as a test failure."""

from __future__ import annotations

BUS_READ_TOOLS = frozenset(
    {"list_services", "list_objects", "introspect", "call_method", "get_property", "get_properties", "wait_signal"}
)
DISCOVERY_TOOLS = frozenset({"find_tools", "enable_toolset"})
CORE_READ_TOOLS = ("health_check", "list_units", "unit_status", "query_journal", "system_status", "top_processes")
OPERATOR_READ_TOOLS = (
    *CORE_READ_TOOLS,
    "list_unit_files",
    "unit_dependencies",
    "host_info",
    "network_status",
    "time_status",
    "list_sessions",
    "list_hosts",
)
OPERATOR_WRITE_TOOLS = ("unit_job", "unit_file", "reset_failed_unit")
READONLY_TOOLS = BUS_READ_TOOLS | DISCOVERY_TOOLS | frozenset(CORE_READ_TOOLS)
"""What the readonly preset lists by default (the core and bus toolsets) before any tool pack."""
