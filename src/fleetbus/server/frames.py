"""One stdio frame (a line) → a JSON-RPC message, or the error answer JSON-RPC 2.0 prescribes for it.

The SDK's stdio reader hands an undecodable line to the session as an exception, which it only logs, and decodes
`"id": null`, `"id": 1.5` or `"id": true` as a *notification* (pydantic ignores the unknown `id`): the client waits
for its answer forever. Here every frame that is not a valid message gets one: -32700 when it is not JSON (the
parser refuses lone surrogates, integers over 4,300 digits and nesting of 200 levels or more), -32600 when it is
JSON but not a request, notification or response, with the request's id when it can be read and `null` when not.
JSON is parsed by the same parser, with the same limits, as the SDK's Streamable HTTP transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import mcp_types as types
import pydantic_core
from pydantic import ValidationError

MAX_SHOWN = 120
"""Characters of a parser's complaint kept in the answer (they name a line and column, never the content)."""


@dataclass(frozen=True)
class BadFrame:
    """A frame that gets an error answer instead of reaching the session."""

    code: int
    message: str
    id: types.RequestId | None

    def answer(self) -> types.JSONRPCError:
        return types.JSONRPCError(
            jsonrpc="2.0", id=self.id, error=types.ErrorData(code=self.code, message=self.message)
        )


def decode(frame: bytes) -> types.JSONRPCMessage | BadFrame:
    """The message a frame carries, or why it carries none."""
    try:
        raw = pydantic_core.from_json(frame)
    except ValueError as exc:
        return BadFrame(types.PARSE_ERROR, f"Parse error: {str(exc)[:MAX_SHOWN]}", None)
    return envelope(raw)


def _readable_id(raw: dict[str, Any]) -> types.RequestId | None:
    """An id the answer can carry: an integer or a string (MCP allows no other; JSON-RPC discourages null)."""
    value = raw.get("id")
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return None


def envelope(raw: Any) -> types.JSONRPCMessage | BadFrame:
    """A parsed frame checked as a JSON-RPC 2.0 message in MCP's terms."""
    if isinstance(raw, list):
        # MCP 2025-06-18 removed JSON-RPC batching; no protocol version fleetbus speaks has it.
        return BadFrame(types.INVALID_REQUEST, "Invalid Request: batches are not supported", None)
    if not isinstance(raw, dict):
        return BadFrame(types.INVALID_REQUEST, "Invalid Request: a message is a JSON object", None)
    request_id = _readable_id(raw)
    if raw.get("jsonrpc") != "2.0":
        return BadFrame(types.INVALID_REQUEST, 'Invalid Request: "jsonrpc" must be "2.0"', request_id)
    has_id = "id" in raw
    if has_id and request_id is None and "method" in raw:
        return BadFrame(
            types.INVALID_REQUEST, "Invalid Request: the id must be a string or an integer (not null)", None
        )
    if "method" in raw:
        if not isinstance(raw["method"], str):
            return BadFrame(types.INVALID_REQUEST, 'Invalid Request: "method" must be a string', request_id)
        if "params" in raw and raw["params"] is not None and not isinstance(raw["params"], dict):
            if request_id is None:
                return BadFrame(types.INVALID_REQUEST, 'Invalid Request: "params" must be an object', None)
            return BadFrame(types.INVALID_PARAMS, 'Invalid params: "params" must be an object', request_id)
    elif "result" not in raw and "error" not in raw:
        return BadFrame(types.INVALID_REQUEST, 'Invalid Request: no "method"', request_id)
    try:
        return types.jsonrpc_message_adapter.validate_python(raw, by_name=False)
    except ValidationError as exc:
        errors = exc.errors()
        where, why = (".".join(str(part) for part in errors[0]["loc"][1:]), errors[0]["msg"]) if errors else ("", "")
        # A malformed *response* answers nothing of the client's: its id is ours, so it is not echoed back.
        answered = request_id if "method" in raw else None
        return BadFrame(types.INVALID_REQUEST, f"Invalid Request: {where or 'message'}: {why or 'invalid'}", answered)
