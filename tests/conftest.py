"""Fixtures shared by every test tier: a real-services sandbox per test session (per xdist worker)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from fleetbus.config import Settings, load_settings
from fleetbus.runtime import Runtime
from fleetbus.sandbox import Sandbox, missing_requirements
from tests.services.spawn import example_service as example_service_process

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
    with example_service_process(sandbox.system_bus_address, name):
        yield name


EXAMPLE_POLICY = ROOT / "tests" / "policies" / "example_service.toml"


def sandbox_settings(sandbox: Sandbox, state_dir: Path, **overrides: Any) -> Settings:
    """Settings for a server on the sandbox, with its own approvals and audit log under `state_dir`."""
    values: dict[str, Any] = {
        "system_bus": sandbox.system_bus_address,
        "session_bus": sandbox.session_bus_address,
        "state_dir": state_dir,
        "policy_file": EXAMPLE_POLICY,
        "journal_socket": sandbox.paths.run / "systemd" / "journal" / "socket",
        "journal_directory": sandbox.paths.journal_dir,
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
