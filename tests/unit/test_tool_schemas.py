"""Tool schemas are valid JSON Schema (Draft 2020-12): every built-in tool's and every pack tool's are checked here,
and the registry checks a tool's schemas against the metaschema before its first call runs — not at start, where
checking ~200 tools cost most of the server's cold start."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from fleetbus.config import PackSettings, load_settings
from fleetbus.dbus.introspect import parse
from fleetbus.gateway import Caller
from fleetbus.runtime import Runtime
from fleetbus.tools.packs import build_tools
from fleetbus.tools.registry import Annotations, ToolContext, ToolRegistry, ToolSpec
from tests.unit.test_packs import EXAMPLE_XML


def test_every_built_in_tool_has_valid_schemas(tmp_path: Path) -> None:
    runtime = Runtime.build(load_settings(state_dir=tmp_path, system_bus="unix:path=/nonexistent"))
    try:
        specs = list(runtime.registry)
        assert len(specs) > 20
        for spec in specs:
            Draft202012Validator.check_schema(spec.input_schema)
            if spec.output_schema is not None:
                Draft202012Validator.check_schema(spec.output_schema)
    finally:
        runtime.close()


def test_pack_tools_have_valid_schemas() -> None:
    built = build_tools(
        PackSettings(name="example", service="com.example.*"),
        "com.example.Fleet",
        [parse(EXAMPLE_XML, "/com/example/Fleet1")],
    )
    assert built.specs
    for spec in built.specs:
        Draft202012Validator.check_schema(spec.input_schema)
        assert spec.output_schema is not None
        Draft202012Validator.check_schema(spec.output_schema)


def spec(name: str, input_schema: dict[str, Any], ran: list[str]) -> ToolSpec:
    async def handler(ctx: ToolContext, args: dict[str, Any]) -> dict[str, Any]:
        ran.append(name)
        return {"ok": True}

    annotations = Annotations(read_only=True, destructive=False, idempotent=True)
    return ToolSpec(name, name, "d", input_schema, {"type": "object"}, annotations, handler)


async def test_a_schema_is_checked_before_the_first_call_runs_not_at_registration() -> None:
    ran: list[str] = []
    registry = ToolRegistry()
    # Registering does not check (start stays fast); the first call does, and refuses to run against a schema
    # that is not valid JSON Schema.
    registry.add(spec("broken", {"type": "object", "properties": {"n": {"type": "no-such-type"}}}, ran))
    registry.add(spec("fine", {"type": "object", "properties": {"n": {"type": "integer"}}}, ran))
    context = ToolContext(gateway=None, caller=Caller("test"))  # type: ignore[arg-type]
    broken = await registry.run(context, "broken", {"n": 1})
    assert broken.is_error
    assert "broken" in broken.text
    assert ran == []
    assert not (await registry.run(context, "fine", {"n": 1})).is_error
    invalid = await registry.run(context, "fine", {"n": "one"})
    assert invalid.is_error
    assert "'n'" in invalid.text
    assert ran == ["fine"]
