"""Tools never run a process or read the host themselves: the journal and metrics executors under the gateway do,
and those executors import nothing above them."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.unit.test_architecture import PACKAGE, imports, modules

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


PROCESS_LIBRARIES = ("psutil", "subprocess", "asyncio.subprocess", "pty", "multiprocessing")
MAY_RUN_PROCESSES = ("dbus", "hosts", "executors", "sandbox")
SPAWNING_CALLS = frozenset(
    {"create_subprocess_exec", "create_subprocess_shell", "system", "popen", "fork", "forkpty", "posix_spawn"}
    | {f"exec{suffix}" for suffix in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}
    | {f"spawn{suffix}" for suffix in ("l", "le", "lp", "lpe", "v", "ve", "vp", "vpe")}
)


def _spawning_calls(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    return {
        node.func.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id in ("os", "asyncio")
        and node.func.attr in SPAWNING_CALLS
    }


def test_only_the_layers_that_reach_hosts_run_processes_or_read_host_figures() -> None:
    """Host facts are read through the gateway (an audited host.metrics read) by executors; a process is started
    only by executors (fixed argvs), hosts (SSH), dbus and the sandbox."""
    offenders = []
    for path, top in modules():
        if top in MAY_RUN_PROCESSES:
            continue
        offenders += [
            f"{path.relative_to(PACKAGE)} imports {name}"
            for name in imports(path)
            if name in PROCESS_LIBRARIES or name.split(".")[0] in PROCESS_LIBRARIES
        ]
        offenders += [f"{path.relative_to(PACKAGE)} calls {call}()" for call in _spawning_calls(path)]
    assert offenders == []
    # The scan sees real uses where they are allowed.
    assert "asyncio" in imports(PACKAGE / "executors" / "command.py")
    assert "create_subprocess_exec" in _spawning_calls(PACKAGE / "executors" / "command.py")
    assert "subprocess" in imports(PACKAGE / "sandbox" / "control.py")
