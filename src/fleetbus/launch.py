"""The `fleetbus` command's entry point (and `python -m fleetbus`'s): the CLI, imported with the garbage collector
paused.

Importing fleetbus, the MCP SDK and pydantic makes ~100,000 objects that live as long as the process, and next to
no garbage: the cyclic collector's passes over them while they were made took ~0.15 s of a server's start (about
290 collections). Once imported they are frozen — left out of every later pass — and the collector runs as usual.
"""

from __future__ import annotations

import gc


def main() -> int:
    collecting = gc.isenabled()
    gc.disable()
    try:
        from fleetbus.cli import main as run  # noqa: PLC0415 -- the import is what runs without the collector
    finally:
        gc.freeze()
        if collecting:
            gc.enable()
    return run()
