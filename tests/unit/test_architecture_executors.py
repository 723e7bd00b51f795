"""Tools never run a process or read the host themselves: the journal and metrics executors under the gateway do,
and those executors import nothing above them."""

from __future__ import annotations

from tests.unit.test_architecture import PACKAGE, imports

HOST_ACCESS = ("subprocess", "psutil", "asyncio.subprocess", "shutil")
ABOVE_EXECUTORS = ("fleetbus.server", "fleetbus.tools", "fleetbus.gateway", "fleetbus.guard", "fleetbus.cli")


def test_tools_do_not_run_processes_or_read_host_figures() -> None:
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in sorted((PACKAGE / "tools").rglob("*.py"))
        for name in imports(path)
        if name in HOST_ACCESS
    ]
    assert offenders == []


def test_executors_import_nothing_above_them() -> None:
    paths = sorted((PACKAGE / "executors").rglob("*.py"))
    assert paths, "the executors package moved"
    offenders = [
        f"{path.relative_to(PACKAGE)} imports {name}"
        for path in paths
        for name in imports(path)
        if any(name == banned or name.startswith(banned + ".") for banned in ABOVE_EXECUTORS)
    ]
    assert offenders == []
    assert "fleetbus.executors" in imports(PACKAGE / "gateway.py")
