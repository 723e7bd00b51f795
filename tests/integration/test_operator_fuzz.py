"""Random arguments against every operator tool, through the registry on the sandbox: whatever comes in, the
answer is a result — success or an error result — never an exception and never an internal error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetbus.gateway import Caller
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.conftest import sandbox_settings
from tests.tool_names import OPERATOR_READ_TOOLS, OPERATOR_WRITE_TOOLS

pytestmark = pytest.mark.sandbox

TOOLS = OPERATOR_READ_TOOLS + OPERATOR_WRITE_TOOLS
SLOW = {"sample"}
"""top_processes measures CPU for `sample` seconds; the fuzz keeps it out to stay quick."""

scalars = st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=30)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)
plausible = {
    "unit": st.sampled_from(["dbus.service", "dbus", "ghost.service", "-.slice", "a b", "../x", ""]),
    "since": st.sampled_from(["-15m", "1 hour ago", "yesterday", "2026-11-21T17:00Z", "soon", "15m", "@0"]),
    "until": st.sampled_from(["now", "-1m", "+1h", "garbage"]),
    "limit": st.integers(-2, 1200),
    "format": st.sampled_from(["toon", "json", "xml"]),
    "manager": st.sampled_from(["system", "user", "root"]),
    "action": st.sampled_from(["start", "stop", "restart", "reload", "try_restart", "enable", "disable", "kill"]),
    "cursor": st.sampled_from(["", "x", "eyJrIjoicXVlcnlfam91cm5hbCJ9", "eyJrIjoibGlzdF91bml0cyIsInEiOiIiLCJwIjp7fX0"]),
}


@pytest.fixture
def fuzz_runtime(sandbox: Sandbox, tmp_path: Path) -> Runtime:
    state = tmp_path / "fuzz-state"
    # Per test, closed by the test before the event loop its bus connections belong to. Readonly: random
    # arguments must never change the sandbox. A generous read budget: this is not a rate-limit test.
    return Runtime.build(sandbox_settings(sandbox, state, read_rate=1e6, read_burst=1e6))


def arguments_for(runtime: Runtime, tool: str) -> st.SearchStrategy[dict[str, Any]]:
    spec = runtime.registry.get(tool)
    assert spec is not None
    names = [n for n in spec.input_schema.get("properties", {}) if n not in SLOW]
    value = {name: plausible.get(name, json_values) | json_values for name in names}
    known = st.fixed_dictionaries({}, optional=value) if names else st.just({})
    extra = st.dictionaries(st.text(max_size=10), json_values, max_size=2)
    return st.one_of(known, st.builds(lambda a, b: {**b, **a}, known, extra))


@pytest.mark.parametrize("tool", TOOLS)
def test_random_arguments_give_results_never_exceptions(fuzz_runtime: Runtime, tool: str) -> None:
    loop = asyncio.new_event_loop()

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(arguments=arguments_for(fuzz_runtime, tool))
    def check(arguments: dict[str, Any]) -> None:
        result = loop.run_until_complete(
            fuzz_runtime.registry.run(fuzz_runtime.context(Caller("fuzz")), tool, arguments)
        )
        assert "internal error" not in result.text, (arguments, result.text)
        if result.is_error:
            assert result.text
        else:
            assert isinstance(result.structured, dict)

    try:
        check()
    finally:
        fuzz_runtime.close()
        loop.close()
