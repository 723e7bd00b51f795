"""Generated calls of every listed tool — of every preset, pack tools included, from their FULL input schemas —
mixed with hostile values and malformed frames, sent as raw JSON-RPC frames to a real `fleetbus serve` over stdio
on the sandbox. Every frame must be answered within a deadline, and nothing may be an internal error: no -32603,
no "internal error" text, no traceback in the server's stderr.

The server runs under the readonly preset: whatever the fuzz sends, nothing can change (the operator and admin
presets' tools are called too, and refused by policy after their arguments were checked). CI runs
FLEETBUS_FUZZ_CALLS calls (default 1,500) from the recorded seed FLEETBUS_FUZZ_SEED; a nightly run sets
FLEETBUS_FUZZ_CALLS=10000 or more."""

from __future__ import annotations

import json
import os
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

from fleetbus.gateway import Caller
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox
from tests.conftest import sandbox_settings
from tests.e2e.raw_stdio import RawServer, Unanswered, raw_server
from tests.frame_cases import BAD_FRAMES
from tests.fuzz.hostile import frame, hostile, hostile_for, plausible
from tests.fuzz.schemas import any_json, from_schema

pytestmark = pytest.mark.sandbox

CALLS = int(os.environ.get("FLEETBUS_FUZZ_CALLS", "1500"))
SEED = int(os.environ.get("FLEETBUS_FUZZ_SEED", "20261202"))
BATCH = 8
"""Frames in flight at once: a slow call (a signal wait) holds one slot, not the whole run."""
DEADLINE = 60.0
"""For a batch's answers; a call's own deadline is at most 2 s here (max_call_timeout), so only a frame that is
never answered waits this long."""
LIMITS = {
    "call_timeout": "1",
    "max_call_timeout": "2",
    "read_rate": "1000000",
    "read_burst": "1000000",
    "change_rate": "1000000",
    "change_burst": "1000000",
    "toolsets": '["all"]',
}
PRESETS = ("readonly", "operator", "admin")


async def listed_schemas(sandbox: Sandbox, state: Path) -> dict[str, Mapping[str, Any]]:
    """Every tool some preset lists (default and all toolsets), pack tools included, with its full input schema."""
    schemas: dict[str, Mapping[str, Any]] = {}
    for preset in PRESETS:
        for toolsets in (["default"], ["all"]):
            limits = {key: json.loads(value) for key, value in LIMITS.items() if key != "toolsets"}
            runtime = Runtime.build(
                sandbox_settings(sandbox, state / preset, safety=preset, toolsets=toolsets, **limits)
            )
            try:
                await runtime.start(follow=False)
                for entry in runtime.listed(Caller("stdio")):
                    schemas.setdefault(entry.spec.name, entry.spec.input_schema)
            finally:
                await runtime.stop()
                runtime.close()
    return schemas


@pytest.fixture(scope="module")
async def tools(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Mapping[str, Any]]:
    return await listed_schemas(sandbox, tmp_path_factory.mktemp("fuzz-schemas"))


@dataclass
class Tally:
    calls: int = 0
    bad_frames: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    tools: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)


@pytest.fixture(scope="module")
def served(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RawServer, Tally]]:
    with raw_server(sandbox, tmp_path_factory.mktemp("fuzz") / "state", safety="readonly", **LIMITS) as server:
        server.initialize()
        tally = Tally()
        yield server, tally
        stderr = server.stderr()
    summary = (
        f"fuzz: {tally.calls} calls and {tally.bad_frames} bad frames in {time.monotonic() - tally.started:.0f} s, "
        f"seed {SEED}: {dict(tally.outcomes)}"
    )
    print(summary)
    print(f"fuzz: {len(tally.tools)} tools called: {dict(sorted(tally.tools.items()))}")
    assert "Traceback" not in stderr, stderr[stderr.index("Traceback") - 2000 :][:6000]
    failed = re.search(r"tool \S+ failed", stderr)
    assert failed is None, stderr[failed.start() :][:4000] if failed else ""


def arguments(schema: Mapping[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Valid arguments; or one of them made hostile (NaN where a number goes, a NUL where a string goes, …); or a
    few of them replaced by plausible, hostile or arbitrary values, unknown keys sometimes added."""
    names = list(schema.get("properties", {}))
    valid = from_schema(schema)
    unknown = st.dictionaries(st.text(max_size=12).filter(lambda n: n not in names), hostile | any_json, max_size=2)
    with_unknown = st.builds(lambda base, extra: {**base, **extra}, valid, unknown)
    if not names:
        return st.one_of(valid, with_unknown)
    properties = schema["properties"]
    aimed = st.sampled_from(names).flatmap(lambda name: st.tuples(st.just(name), hostile_for(properties[name])))
    mixed = st.sampled_from(names).flatmap(
        lambda name: st.tuples(
            st.just(name), st.one_of(plausible(name), hostile_for(properties[name]), hostile, any_json)
        )
    )
    one_hostile = st.builds(lambda base, change: {**base, change[0]: change[1]}, valid, aimed)
    changed = st.builds(lambda base, changes: {**base, **dict(changes)}, valid, st.lists(mixed, min_size=1, max_size=3))
    return st.one_of(
        valid, one_hostile, one_hostile, changed, st.builds(lambda base, extra: {**base, **extra}, changed, unknown)
    )


def batches(name: str, schema: Mapping[str, Any]) -> st.SearchStrategy[list[tuple[str, Any]]]:
    """BATCH frames: calls of one tool with generated arguments, and now and then a malformed frame."""
    call = arguments(schema).map(lambda args: (name, args))
    bad = st.sampled_from(BAD_FRAMES).map(lambda case: ("", case))
    return st.lists(st.one_of(*[call] * 9, bad), min_size=BATCH, max_size=BATCH)


def check_answer(answer: dict[str, Any], what: str, tally: Tally) -> None:
    if "error" in answer:
        code = answer["error"].get("code")
        tally.outcomes[f"jsonrpc {code}"] += 1
        if code not in (-32700, -32600, -32602):
            tally.problems.append(f"{what}: JSON-RPC error {answer['error']}")
        return
    result = answer.get("result", {})
    text = "".join(part.get("text", "") for part in result.get("content", []))
    tally.outcomes["isError" if result.get("isError") else "success"] += 1
    if "internal error" in text.lower():
        tally.problems.append(f"{what}: {text[:300]}")


def run_batch(server: RawServer, batch: list[tuple[str, Any]], tally: Tally) -> None:
    """Send the batch's frames at once; then every one must be answered: by its id, or — where the id could not be
    read (a frame the parser refuses) — with id null."""
    expected: Counter[Any] = Counter()
    sent: dict[Any, str] = {}
    null_frames = 0
    for tool, arguments_or_case in batch:
        if tool:
            tally.calls += 1
            tally.tools[tool] += 1
            request_id = f"c{tally.calls}"
            message = {
                "jsonrpc": "2.0",
                "id": request_id,
                "method": "tools/call",
                "params": {"name": tool, "arguments": arguments_or_case},
            }
            server.send(frame(message))
            expected[request_id] += 1
            sent[request_id] = f"{tool} {str(arguments_or_case)[:300]}"
        else:
            tally.bad_frames += 1
            name, raw, _, case_id = arguments_or_case
            server.send(raw)
            if case_id is None:
                null_frames += 1
            else:
                expected[case_id] += 1
                sent.setdefault(case_id, f"bad frame: {name}")
    deadline = time.monotonic() + DEADLINE
    nulls = 0
    for _ in batch:
        try:
            answer = server.answer(max(0.1, deadline - time.monotonic()))
        except Unanswered:
            missing = [sent.get(waiting, str(waiting)) for waiting, n in expected.items() if n > 0]
            raise AssertionError(
                f"unanswered within {DEADLINE} s (some were answered with id null): {missing}"
            ) from None
        answered = answer.get("id")
        if answered is None:
            nulls += 1
        else:
            assert expected[answered] > 0, f"an answer to nothing sent, or a second one: {answer}"
            expected[answered] -= 1
        check_answer(answer, sent.get(answered, "a frame whose id could not be read"), tally)
    # Each call not answered by its id was answered with id null: its frame could not be parsed.
    assert sum(expected.values()) == nulls - null_frames, (expected, nulls, null_frames)


@pytest.mark.timeout(max(1200, CALLS))
async def test_fuzz_every_listed_tool_over_stdio(
    tools: dict[str, Mapping[str, Any]], served: tuple[RawServer, Tally]
) -> None:
    server, tally = served
    assert len(tools) > 30
    assert any("_" in name and name.split("_")[0] in {"systemd1", "login1", "hostname1"} for name in tools)

    # Tool by tool, the same number of batches each (hypothesis, left to pick the tool, favours the first ones).
    per_tool = -(-CALLS * 10 // (9 * BATCH * len(tools)))
    for name in sorted(tools):

        @seed(SEED)
        @settings(
            max_examples=per_tool,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
            phases=[Phase.generate],  # problems are collected and reported, not shrunk against a running server
        )
        @given(batches(name, tools[name]))
        def fuzz(batch: list[tuple[str, Any]]) -> None:
            run_batch(server, batch, tally)

        fuzz()
    assert tally.problems == [], tally.problems[:20]
    assert tally.calls >= CALLS * 0.95  # about a tenth of the frames are malformed ones, not calls
    assert server.process.poll() is None, "the server died"
