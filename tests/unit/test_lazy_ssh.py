"""A server that reaches no other host never imports asyncssh: it costs ~0.2 s of cold start, and at import it
looks for a C library through a temporary file, which a hardened unit (ProtectSystem=strict, no writable /tmp)
does not have — `fleetbus serve` under fleetbus.socket died there before its first answer."""

from __future__ import annotations

import subprocess
import sys


def test_the_server_and_the_cli_start_without_asyncssh() -> None:
    probe = (
        "import sys\n"
        "import fleetbus.cli, fleetbus.runtime, fleetbus.server.app, fleetbus.server.stdio, fleetbus.server.http\n"
        "from fleetbus.config import load_settings\n"
        "from fleetbus.runtime import Runtime\n"
        "Runtime.build(load_settings(system_bus='unix:path=/nonexistent', session_bus='unix:path=/nonexistent'))\n"
        "print('asyncssh' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False", done.stderr
