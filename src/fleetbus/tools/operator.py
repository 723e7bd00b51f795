"""The operator tools, in one list for the runtime: units, journal, host health, sessions, triage."""

from __future__ import annotations

from fleetbus.gateway import Deadlines
from fleetbus.tools.host import host_tools
from fleetbus.tools.journal import journal_tools
from fleetbus.tools.registry import ToolSpec
from fleetbus.tools.sessions import session_tools
from fleetbus.tools.triage import triage_tools
from fleetbus.tools.unit_jobs import unit_change_tools
from fleetbus.tools.units import unit_read_tools


def operator_tools(deadlines: Deadlines) -> list[ToolSpec]:
    return [
        *unit_read_tools(),
        *unit_change_tools(deadlines.maximum),
        *journal_tools(),
        *host_tools(),
        *session_tools(),
        *triage_tools(),
    ]
