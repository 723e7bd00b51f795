"""On the sandbox's real systemd: a protected unit named any way systemd accepts — an alias (a symlink, as
`Alias=` makes), a template instance under a protected glob, an escaped object path in any spelling, its
invocation-id path, buried in a long list — gets the verdict its plain name gets, under every preset.

Only judged (`Gateway.assess`), never run: the verdicts are what is compared."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fleetbus.operation import Operation
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.conftest import sandbox_settings
from tests.integration.effects_setup import invocation_id, stop
from tests.unit_references import UNIT_PATH_PREFIX, escaped_path, name_calls, pads, path_calls, spellings

pytestmark = pytest.mark.sandbox

PRESETS = ("readonly", "operator", "admin")


@dataclass(frozen=True)
class Protected:
    plain: str
    names: tuple[str, ...]
    invocation: str


@pytest.fixture(scope="module")
def protected(sandbox: Sandbox) -> Iterator[list[Protected]]:
    tag = secrets.token_hex(3)
    precious, alias, template = f"precious-{tag}.service", f"gem-{tag}.service", f"keeper-{tag}@.service"
    instance = f"keeper-{tag}@db.service"
    sandbox.write_unit(precious, "[Service]\nExecStart=/bin/sleep infinity\n")
    sandbox.write_unit(template, "[Service]\nExecStart=/bin/sleep infinity\n")
    (sandbox.paths.unit_dir / alias).symlink_to(sandbox.paths.unit_dir / precious)
    sandbox.reload()
    for unit in (precious, instance):
        sandbox.systemd("StartUnit", "ss", unit, "replace")
    try:
        yield [
            Protected(precious, (precious, alias), invocation_id(sandbox, precious)),
            Protected(instance, (instance,), invocation_id(sandbox, instance)),
        ]
    finally:
        stop(sandbox, precious, instance)
        (sandbox.paths.unit_dir / alias).unlink()


@pytest.fixture(scope="module")
async def runtimes(
    sandbox: Sandbox, protected: list[Protected], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[dict[str, Runtime]]:
    globs = [protected[0].plain, protected[1].plain.replace("@db.", "@*.")]
    built = {
        preset: Runtime.build(
            sandbox_settings(sandbox, tmp_path_factory.mktemp(preset), safety=preset, protected_units=globs)
        )
        for preset in PRESETS
    }
    yield built
    for runtime in built.values():
        runtime.close()


async def verdicts(runtime: Runtime, operations: list[Operation]) -> list[tuple[str, str]]:
    judged = [await runtime.gateway.assess(operation) for operation in operations]
    return [(a.decision.verdict.value, a.decision.rule) for a in judged]


BURIED = [f"pad-{i}.service" for i in range(40)]
"""More names before the alias than the old alias check looked up (32)."""


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.integers(0, 1), st.integers(0, 1), pads, st.integers(min_value=0, max_value=60))
@example(which=0, alias=1, padding=BURIED, before=len(BURIED))
async def test_a_protected_unit_by_any_name_gets_the_verdict_of_its_plain_name(
    runtimes: dict[str, Runtime], protected: list[Protected], which: int, alias: int, padding: list[str], before: int
) -> None:
    target = protected[which]
    name = target.names[alias % len(target.names)]
    for preset, runtime in runtimes.items():
        plain = await verdicts(runtime, name_calls(target.plain, padding, before))
        assert await verdicts(runtime, name_calls(name, padding, before)) == plain, (preset, name)
        assert {verdict for verdict, _ in plain} == {"deny"}, preset


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.data())
async def test_a_protected_unit_by_any_object_path_gets_the_verdict_of_its_plain_path(
    runtimes: dict[str, Runtime], protected: list[Protected], data: st.DataObject
) -> None:
    target = data.draw(st.sampled_from(protected), label="unit")
    name = data.draw(st.sampled_from(target.names), label="name")
    path = data.draw(st.one_of(spellings(name), st.just(f"{UNIT_PATH_PREFIX}{target.invocation}")), label="path")
    for preset, runtime in runtimes.items():
        plain = await verdicts(runtime, path_calls(escaped_path(target.plain)))
        assert await verdicts(runtime, path_calls(path)) == plain, (preset, path)
        assert {verdict for verdict, _ in plain} == {"deny"}, preset
        if preset != "readonly":
            assert {rule for _, rule in plain} == {"protected-units"}, preset
