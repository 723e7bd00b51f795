"""The built-in tools the tests expect by name, written down once: a rename must show up as a test failure."""

from __future__ import annotations

BUS_READ_TOOLS = frozenset(
    {
        "list_services",
        "list_objects",
        "introspect",
        "call_method",
        "get_property",
        "get_properties",
        "wait_signal",
        "explain",
        "find_methods",
    }
)
OPERATOR_READ_TOOLS = (
    "list_units",
    "unit_status",
    "list_unit_files",
    "unit_dependencies",
    "query_journal",
    "host_info",
    "system_status",
    "top_processes",
    "network_status",
    "time_status",
    "list_sessions",
    "health_check",
)
OPERATOR_WRITE_TOOLS = (
    "start_unit",
    "stop_unit",
    "restart_unit",
    "reload_unit",
    "try_restart_unit",
    "enable_unit",
    "disable_unit",
    "reset_failed_unit",
)
READONLY_TOOLS = BUS_READ_TOOLS | frozenset(OPERATOR_READ_TOOLS)
"""What the readonly preset lists before any tool pack."""
