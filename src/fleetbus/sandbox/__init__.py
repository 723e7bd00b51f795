"""Disposable environments of real services (a private system bus, systemd, journald, hostnamed…) for tests,
benchmarks and demos on machines without a system bus of their own."""

from fleetbus.sandbox.control import Sandbox, SandboxError, missing_requirements

__all__ = ["Sandbox", "SandboxError", "missing_requirements"]
