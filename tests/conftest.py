"""Fixtures shared by every test tier: a real-services sandbox per test session (per xdist worker)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetbus.config import Settings, load_settings
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox, missing_requirements

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    problems = missing_requirements()
    if problems:
        # Not a skip: a machine that cannot run the sandbox cannot run these tests honestly.
        pytest.fail("the real-services sandbox cannot start here: " + "; ".join(problems))
    with Sandbox.create(die_with_parent=True) as started:
        yield started


@pytest.fixture(scope="session")
def example_service(sandbox: Sandbox) -> Iterator[str]:
    """tests/services/example_service.py running on the sandbox's system bus; yields its bus name."""
    name = "com.example.Fleet"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.services.example_service",
            "--address",
            sandbox.system_bus_address,
            "--name",
            name,
        ],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if line != "ready":
        process.kill()
        pytest.fail(f"example service did not start: {line!r}")
    yield name
    process.terminate()
    process.wait(timeout=10)


EXAMPLE_POLICY = ROOT / "tests" / "policies" / "example_service.toml"


def sandbox_settings(sandbox: Sandbox, state_dir: Path, **overrides: Any) -> Settings:
    """Settings for a server on the sandbox, with its own approvals and audit log under `state_dir`."""
    values: dict[str, Any] = {
        "system_bus": sandbox.system_bus_address,
        "session_bus": sandbox.session_bus_address,
        "state_dir": state_dir,
        "policy_file": EXAMPLE_POLICY,
        "journal_socket": sandbox.paths.run / "systemd" / "journal" / "socket",
        **overrides,
    }
    return load_settings(**values)


@pytest.fixture
def settings(sandbox: Sandbox, tmp_path: Path) -> Settings:
    return sandbox_settings(sandbox, tmp_path / "state")


@pytest.fixture
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    built = Runtime.build(settings)
    yield built
    built.close()
