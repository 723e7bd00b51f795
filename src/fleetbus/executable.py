"""How to run this very fleetbus again, from any shell: for approval messages, client and unit configuration."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def fleetbus_argv() -> list[str]:
    """The console script next to this Python (a venv's `bin/fleetbus`), else this Python with `-m fleetbus`.

    Absolute, but not resolved: a venv's python is a symlink to the system's, which would lose the venv.
    """
    python = Path(os.path.abspath(sys.executable))
    script = python.with_name("fleetbus")
    if script.exists():
        return [str(script)]
    return [str(python), "-m", "fleetbus"]


def checkout_run_script() -> Path | None:
    """scripts/run.sh of the checkout this fleetbus runs from (an editable install, as setup.sh makes), if any."""
    script = Path(__file__).resolve().parents[2] / "scripts" / "run.sh"
    return script if os.access(script, os.X_OK) else None
