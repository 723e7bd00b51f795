"""The guard judges a unit call by what it will do, on the sandbox's real service manager: the issue's reproduced
ways of reaching a protected unit or a shutdown without naming it (an invocation-id object path, a dependency
added to a protected unit, a target the protected unit requires, an alias behind 32 other names, an alias of
exit.target as the default, a start that pulls in a unit with FailureAction=, a planted unit file).

Where the old behaviour would have harmed the sandbox itself (systemd-exit.service ends the manager, stopping
basic.target stops its bus), the test asks the gateway for its judgement first and only then makes the call."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbus.gateway import ApprovalRequired, Caller, OperationDenied, OutOfScope, dbus_call
from fleetbus.guard.policy import Verdict
from fleetbus.operation import Operation
from fleetbus.sandbox import Sandbox
from tests.integration.calls import run
from tests.integration.effects_setup import (
    MANAGER,
    MANAGER_PATH,
    SD,
    UNIT,
    active_state,
    fresh,
    guarded,
    invocation_id,
    running,
    stop,
    unit_property,
)

pytestmark = pytest.mark.sandbox

ADMIN = Caller("test-admin")


def manager_call(member: str, signature: str, *args: object) -> Operation:
    return dbus_call(SD, MANAGER_PATH, MANAGER, member, signature, list(args), host="local")


# ---- protected units reached without their name -------------------------------------------------------------


async def test_stop_on_the_invocation_id_path_leaves_a_protected_unit_running(sandbox: Sandbox, tmp_path: Path) -> None:
    precious = running(sandbox, "precious")
    try:
        async with guarded(sandbox, tmp_path / "state", precious) as runtime:
            path = f"{MANAGER_PATH}/unit/{invocation_id(sandbox, precious)}"
            stop_it = dbus_call(SD, path, UNIT, "Stop", "s", ["replace"], host="local")
            with pytest.raises(OperationDenied) as refused:
                await runtime.gateway.call(stop_it, ADMIN)
            assert refused.value.decision.rule == "protected-units"
            assert precious in refused.value.decision.reason
            assert active_state(sandbox, precious) == "active"
    finally:
        stop(sandbox, precious)


async def test_a_dependency_cannot_be_added_to_a_protected_unit(sandbox: Sandbox, tmp_path: Path) -> None:
    precious = running(sandbox, "precious")
    worker = running(sandbox, "worker")
    try:
        async with guarded(sandbox, tmp_path / "state", precious) as runtime:
            add = manager_call("AddDependencyUnitFiles", "asssbb", [worker], precious, "Requires", False, False)
            with pytest.raises(OperationDenied) as refused:
                await runtime.gateway.call(add, ADMIN)
            assert refused.value.decision.rule == "protected-units"
        # Had it passed, stopping the worker would now stop the protected unit.
        sandbox.reload()
        stop(sandbox, worker)
        assert active_state(sandbox, precious) == "active"
    finally:
        stop(sandbox, precious, worker)


async def test_stopping_a_target_a_protected_unit_requires_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    floor = fresh("floor", "target")
    sandbox.write_unit(floor, "[Unit]\nDescription=a target the protected unit stands on\n")
    precious = running(sandbox, "precious", f"Requires={floor}\nAfter={floor}")
    try:
        async with guarded(sandbox, tmp_path / "state", precious) as runtime:
            with pytest.raises(OperationDenied) as refused:
                await runtime.gateway.call(manager_call("StopUnit", "ss", floor, "replace"), ADMIN)
            assert refused.value.decision.rule == "protected-units"
            assert precious in refused.value.decision.reason
            assert active_state(sandbox, precious) == "active"
            assert active_state(sandbox, floor) == "active"
            # The sandbox's own bus (dbus.service, protected by default) requires basic.target: judged, not run.
            judged = await runtime.gateway.assess(manager_call("StopUnit", "ss", "basic.target", "replace"))
            assert judged.decision.verdict is Verdict.DENY
            assert judged.decision.rule == "protected-units"
            assert "dbus.service" in judged.decision.reason
    finally:
        stop(sandbox, precious, floor)


async def test_an_alias_behind_many_other_names_is_still_protected(sandbox: Sandbox, tmp_path: Path) -> None:
    gem = fresh("gem")
    precious = running(sandbox, "precious", install=f"WantedBy=default.target\nAlias={gem}")
    pads = [fresh(f"pad{i}") for i in range(40)]
    for pad in pads:
        sandbox.write_unit(pad, "[Service]\nExecStart=/bin/true\n")
    sandbox.systemd("EnableUnitFiles", "asbb", "1", precious, "false", "false")
    sandbox.reload()
    try:
        assert unit_property(sandbox, precious, "UnitFileState") == "enabled"
        async with guarded(sandbox, tmp_path / "state", precious) as runtime:
            disable = manager_call("DisableUnitFiles", "asb", [*pads, gem], False)
            with pytest.raises(OperationDenied) as refused:
                await runtime.gateway.call(disable, ADMIN)
            assert refused.value.decision.rule == "protected-units"
        sandbox.reload()
        assert unit_property(sandbox, precious, "UnitFileState") == "enabled"
    finally:
        sandbox.systemd("DisableUnitFiles", "asb", "1", precious, "false")
        stop(sandbox, precious)


async def test_a_lookup_that_misses_its_deadline_refuses_the_call(sandbox: Sandbox, tmp_path: Path) -> None:
    precious = running(sandbox, "precious")
    try:
        # A deadline no bus can meet: the guard cannot learn what the call would do, so it refuses.
        async with guarded(sandbox, tmp_path / "state", precious, call_timeout=0.000001) as runtime:
            judged = await runtime.gateway.assess(manager_call("StopUnit", "ss", fresh("anything"), "replace"))
            assert judged.decision.verdict is Verdict.DENY
            assert judged.decision.rule == "effects-unknown"
            assert "within" in judged.decision.reason
    finally:
        stop(sandbox, precious)


# ---- shutdown reached without its name ----------------------------------------------------------------------


async def test_starting_systemd_exit_is_refused_under_admin(sandbox: Sandbox, tmp_path: Path) -> None:
    # It ends the manager (SuccessAction=exit-force) and, through shutdown.target, conflicts with every running
    # unit — the sandbox's own bus among them, which is protected: no person can approve that away.
    async with guarded(sandbox, tmp_path / "state") as runtime:
        judged = await runtime.gateway.assess(manager_call("StartUnit", "ss", "systemd-exit.service", "replace"))
        assert (judged.decision.verdict, judged.classification.risk.label) == (Verdict.DENY, "dangerous")
        assert judged.decision.rule == "protected-units"
        assert "dbus.service" in judged.decision.reason
        assert "SuccessAction=exit-force" in judged.classification.reason
        result = await run(runtime, "unit_job", unit="systemd-exit.service", action="start")
        assert result.is_error
        assert "protected-units" in result.text
        assert active_state(sandbox, "systemd-exit.service") == "inactive"
        assert active_state(sandbox, "dbus.service") == "active"  # the manager still answers


async def test_a_target_that_requires_exit_target_is_not_made_the_default(sandbox: Sandbox, tmp_path: Path) -> None:
    farewell = fresh("farewell", "target")
    sandbox.write_unit(farewell, "[Unit]\nRequires=exit.target\nAfter=exit.target\n")
    goodbye = fresh("goodbye", "target")
    (sandbox.paths.unit_dir / goodbye).symlink_to("/usr/lib/systemd/user/exit.target")
    sandbox.reload()
    before = sandbox.systemd("GetDefaultTarget")
    try:
        async with guarded(sandbox, tmp_path / "state") as runtime:
            with pytest.raises(ApprovalRequired):
                await runtime.gateway.call(manager_call("SetDefaultTarget", "sb", farewell, True), ADMIN)
            # systemd itself refuses an alias as the default, but the guard does not rely on that.
            judged = await runtime.gateway.assess(manager_call("SetDefaultTarget", "sb", goodbye, True))
            assert judged.classification.risk.label == "dangerous"
        async with guarded(sandbox, tmp_path / "operator", safety="operator") as runtime:
            with pytest.raises(OperationDenied):
                await runtime.gateway.call(manager_call("SetDefaultTarget", "sb", farewell, True), ADMIN)
        assert sandbox.systemd("GetDefaultTarget") == before
    finally:
        default = sandbox.paths.unit_dir / "default.target"
        if default.is_symlink():
            default.unlink()
        (sandbox.paths.unit_dir / goodbye).unlink()
        sandbox.reload()


async def test_a_start_that_pulls_in_a_unit_with_a_failure_action_is_dangerous(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    trap, wrapper = fresh("trap"), fresh("wrapper", "target")
    sandbox.write_unit(trap, "[Unit]\nFailureAction=exit\n[Service]\nType=oneshot\nExecStart=/bin/true\n")
    sandbox.write_unit(wrapper, f"[Unit]\nWants={trap}\n")
    async with guarded(sandbox, tmp_path / "state") as runtime:
        with pytest.raises(ApprovalRequired) as waiting:
            await runtime.gateway.call(manager_call("StartUnit", "ss", wrapper, "replace"), ADMIN)
        assert f"{trap}" in waiting.value.decision.reason or "FailureAction=exit" in str(waiting.value)
    assert active_state(sandbox, wrapper) == "inactive"
    assert active_state(sandbox, trap) == "inactive"


# ---- link and exec disguised as enable ----------------------------------------------------------------------


def planted(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("[Service]\nExecStart=/bin/sh -c 'echo planted'\n[Install]\nWantedBy=default.target\n")
    return path


async def test_enabling_a_file_from_a_path_needs_the_exec_scope(sandbox: Sandbox, tmp_path: Path) -> None:
    name = fresh("planted")
    path = planted(tmp_path / "elsewhere", name)
    writer = Caller("units-writer", scopes=frozenset({"read", "units:write"}))
    try:
        async with guarded(sandbox, tmp_path / "state") as runtime:
            enable = manager_call("EnableUnitFiles", "asbb", [str(path)], False, False)
            with pytest.raises(OutOfScope) as missing:
                await runtime.gateway.call(enable, writer)
            assert missing.value.scope == "exec"
            with pytest.raises(ApprovalRequired):  # dangerous: a person decides, even under admin
                await runtime.gateway.call(enable, ADMIN)
        assert not (sandbox.paths.unit_dir / name).exists()
    finally:
        for leftover in (sandbox.paths.unit_dir / name, sandbox.paths.unit_dir / "default.target.wants" / name):
            if leftover.is_symlink():
                leftover.unlink()
        sandbox.reload()


async def test_a_planted_file_named_like_a_protected_unit_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    # As dbus.service in /lib/systemd/system on a host: the protected unit's file is in a directory a link in
    # the operator's unit directory would override.
    precious = fresh("precious")
    vendor = sandbox.paths.run / "systemd" / "user" / precious
    vendor.write_text("[Service]\nExecStart=/bin/sleep infinity\n")
    sandbox.reload()
    sandbox.systemd("StartUnit", "ss", precious, "replace")
    path = planted(tmp_path / "elsewhere", precious)
    try:
        async with guarded(sandbox, tmp_path / "state", precious) as runtime:
            for member in ("EnableUnitFiles", "LinkUnitFiles"):
                with pytest.raises(OperationDenied) as refused:
                    await runtime.gateway.call(manager_call(member, "asbb", [str(path)], False, True), ADMIN)
                assert refused.value.decision.rule == "protected-units", member
        assert not (sandbox.paths.unit_dir / precious).is_symlink()
    finally:
        stop(sandbox, precious)
        for leftover in (sandbox.paths.unit_dir / precious, sandbox.paths.unit_dir / "default.target.wants" / precious):
            if leftover.is_symlink():
                leftover.unlink()
        vendor.unlink()
        sandbox.reload()


# ---- unit-object members the catalog missed -----------------------------------------------------------------


async def test_mounting_into_or_attaching_to_a_protected_unit_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    precious = running(sandbox, "precious")
    try:
        async with guarded(sandbox, tmp_path / "state", precious) as runtime:
            service_path = f"{MANAGER_PATH}/unit/{invocation_id(sandbox, precious)}"
            for operation in (
                dbus_call(
                    SD, service_path, f"{SD}.Service", "BindMount", "ssbb", ["/tmp", "/mnt", False, False], host="local"
                ),
                dbus_call(
                    SD,
                    f"{MANAGER_PATH}/unit/dbus_2esocket",
                    f"{SD}.Socket",
                    "AttachProcesses",
                    "sau",
                    ["", []],
                    host="local",
                ),
                dbus_call(
                    SD,
                    f"{MANAGER_PATH}/unit/_2d_2eslice",
                    f"{SD}.Slice",
                    "AttachProcesses",
                    "sau",
                    ["", []],
                    host="local",
                ),
            ):
                judged = await runtime.gateway.assess(operation)
                assert judged.classification.risk.label == "dangerous", operation.member
                assert (judged.decision.verdict, judged.decision.rule) == (Verdict.DENY, "protected-units")
    finally:
        stop(sandbox, precious)
