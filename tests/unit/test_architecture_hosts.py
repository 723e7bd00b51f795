"""SSH stays in hosts/: only that package imports asyncssh, and it imports nothing above it (no MCP, policy or
tools), so a connection to a host can only be used through the gateway."""

from __future__ import annotations

from tests.unit.test_architecture import PACKAGE, imports, modules

ABOVE_HOSTS = (
    "fleetbus.server",
    "fleetbus.tools",
    "fleetbus.gateway",
    "fleetbus.guard",
    "fleetbus.cli",
    "fleetbus.runtime",
    "fleetbus.sandbox",
)


def test_only_hosts_imports_asyncssh() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path, top in modules()
        if top != "hosts"
        for name in imports(path)
        if name.split(".")[0] == "asyncssh"
    ]
    assert offenders == []
    assert "asyncssh" in imports(PACKAGE / "hosts" / "ssh.py")  # the scan sees real imports


def test_hosts_imports_nothing_above_it() -> None:
    paths = sorted((PACKAGE / "hosts").rglob("*.py"))
    assert paths
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in paths
        for name in imports(path)
        if any(name == banned or name.startswith(banned + ".") for banned in ABOVE_HOSTS)
    ]
    assert offenders == []
