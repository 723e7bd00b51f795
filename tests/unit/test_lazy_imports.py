"""A server starts, lists its tools and accepts valid arguments without importing what only some calls need:
jsonschema (the wording of a refused argument, ~50 ms), PyYAML (a YAML inventory), toon-format (the first table),
jmespath (call_method's select). Each is imported by the call that needs it, and that call still works."""

from __future__ import annotations

import json
import subprocess
import sys

LAZY = ("jsonschema", "yaml", "toon_format", "jmespath")

PROBE = """
import json, sys
from fleetbus.config import load_settings
from fleetbus.gateway import Caller
from fleetbus.runtime import Runtime
from fleetbus.server import wire
from fleetbus.server.app import build_server
from fleetbus.tools.registry import ToolError

runtime = Runtime.build(load_settings(system_bus="unix:path=/nonexistent", session_bus="unix:path=/nonexistent"))
build_server(runtime)
listed = [wire.tool(entry) for entry in runtime.listed(Caller("stdio"))]
target = {"service": "org.freedesktop.hostname1", "path": "/org/freedesktop/hostname1",
          "interface": "org.freedesktop.hostname1", "property": "Hostname"}
runtime.registry.validate("get_property", target)
started = [name for name in LAZY if name in sys.modules]
try:
    runtime.registry.validate("get_property", {**target, "property": 7})
    refusal = None
except ToolError as exc:
    refusal = str(exc)
print(json.dumps({"tools": len(listed), "started": started, "refusal": refusal,
                  "after": [name for name in LAZY if name in sys.modules]}))
"""


def test_a_server_starts_and_accepts_a_call_without_the_lazy_libraries() -> None:
    probe = f"LAZY = {LAZY!r}\n{PROBE}"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    seen = json.loads(done.stdout)
    assert seen["tools"] > 10
    assert seen["started"] == [], f"imported at start: {seen['started']}"
    # A refusal still gets jsonschema's judgement, worded for a model.
    assert seen["refusal"] is not None
    assert "property" in seen["refusal"], seen["refusal"]
    assert "jsonschema" in seen["after"]
