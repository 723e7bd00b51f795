"""Annotations tell the truth on the sandbox's real services: a tool that can perform a dangerous operation — by
its member, or by what a unit job reaches — says destructiveHint: true, under every preset that lists it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from fleetbus.gateway import Caller
from fleetbus.guard.catalog import Risk
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.conftest import sandbox_settings

pytestmark = pytest.mark.sandbox

PRESETS = ("readonly", "operator", "admin")
UNIT_JOBS = (
    "systemd1_start_unit",
    "systemd1_restart_unit",
    "systemd1_try_restart_unit",
    "systemd1_reload_or_restart_unit",
    "systemd1_stop_unit",
    "systemd1_kill_unit",
    "systemd1_enqueue_unit_job",
    "systemd1_enable_unit_files",
    "systemd1_reenable_unit_files",
    "systemd1_preset_unit_files",
    "systemd1_set_default_target",
)
"""Manager members that are routine by name and dangerous by what they reach."""


@pytest.fixture
async def runtimes(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[dict[str, Runtime]]:
    built = {}
    for preset in PRESETS:
        runtime = Runtime.build(
            sandbox_settings(sandbox, tmp_path_factory.mktemp(preset), safety=preset, toolsets=["all"])
        )
        await runtime.start(follow=False)
        built[preset] = runtime
    yield built
    for runtime in built.values():
        await runtime.stop()
        runtime.close()


async def test_tools_that_can_do_something_dangerous_are_destructive(runtimes: dict[str, Runtime]) -> None:
    specs = {spec.name: spec for spec in runtimes["admin"].registry}
    for name in UNIT_JOBS:
        assert Risk.DANGEROUS in specs[name].operations[0].risks, name
    for preset, runtime in runtimes.items():
        runtime.budget = type(runtime.budget)(1000, 10_000_000)
        for listed in runtime.listed(Caller("annotations")):
            dangerous = any(Risk.DANGEROUS in pattern.risks for pattern in listed.spec.operations)
            permitted = runtime.policy.could_permit
            if dangerous and any(Risk.DANGEROUS in permitted(p) for p in listed.spec.operations):
                assert listed.annotations.destructive, (preset, listed.spec.name)
    listed_admin = {entry.spec.name: entry for entry in runtimes["admin"].listed(Caller("annotations"))}
    for name in ("unit_job", "unit_file", "systemd1_start_unit", "systemd1_restart_unit"):
        assert listed_admin[name].annotations.destructive, name
