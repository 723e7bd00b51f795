"""Simulated hosts for a sandbox: each in namespaces of its own, with a real sshd, system bus, service manager,
journald and hostnamed, reachable over SSH only through the namespace it lives in."""

from fleetbus.sandbox.fleet.control import Fleet, FleetError, SimulatedHost, missing_requirements
from fleetbus.sandbox.fleet.faults import Fault

__all__ = ["Fault", "Fleet", "FleetError", "SimulatedHost", "missing_requirements"]
