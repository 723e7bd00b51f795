"""The command runs with the garbage collector on: only its imports ran without it, and what they made is frozen
(out of every later collection) rather than left for the collector to walk again and again."""

from __future__ import annotations

import subprocess
import sys

PROBE = """
import gc, json
import fleetbus.cli
def seen() -> int:
    print(json.dumps({"collecting": gc.isenabled(), "frozen": gc.get_freeze_count()}))
    return 0
fleetbus.cli.main = seen
from fleetbus.launch import main
raise SystemExit(main())
"""


def test_the_command_runs_collecting_with_its_imports_frozen() -> None:
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip().startswith('{"collecting": true'), done.stdout + done.stderr
    assert int(done.stdout.split('"frozen": ')[1].rstrip("}\n")) > 10_000


def test_python_dash_m_fleetbus_is_the_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fleetbus", "--version"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("fleetbus "), done.stdout
