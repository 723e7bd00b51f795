"""A short soak in CI (bench/bench_soak.py is the long one): 16 HTTP clients, a fixed number of get_property
calls after warm-up; the server's RSS grows at most 5 MiB and its open fds come back to the start figure."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e.serving import http_server, mint

pytestmark = [pytest.mark.sandbox, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
CALLS = 1600
"""100 per client: ~1 min on a loaded 2-core CI machine."""


def bench_soak() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_soak", ROOT / "bench" / "bench_soak.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("bench_soak", module)  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.timeout(600)
async def test_sixteen_clients_leave_memory_and_fds_where_they_started(sandbox: Sandbox, tmp_path: Path) -> None:
    soak = bench_soak()
    state = tmp_path / "state"
    token = mint(sandbox, state, "soak", "read")
    with http_server(sandbox, state, read_rate="1000000", read_burst="1000000") as server:
        result = await soak.soak(server.url, token, server.process.pid, calls=CALLS, clients=16)
    print(result.report())
    assert result.marks[-1].calls == CALLS
    assert result.problems() == []
