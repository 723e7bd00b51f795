"""Start tests/services/example_service.py as its own process, so the bus sees a real peer come and go."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


@contextmanager
def example_service(bus_address: str, name: str, *also: str) -> Iterator[subprocess.Popen[str]]:
    """The example service owning `name` (and the names `also`) on `bus_address`; yields once it has said "ready",
    stops it by PID."""
    names = [argument for owned in (name, *also) for argument in ("--name", owned)]
    command = [sys.executable, "-m", "tests.services.example_service", "--address", bus_address, *names]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().strip()
        if line != "ready":
            raise RuntimeError(f"example service {name} did not start: {line!r}")
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
