"""Every malformed frame maps to the JSON-RPC 2.0 answer for it; valid messages pass unchanged."""

from __future__ import annotations

import mcp_types as types
import pytest

from fleetbus.server.frames import BadFrame, decode
from tests.frame_cases import BAD_FRAMES, PING


@pytest.mark.parametrize(("name", "frame", "code", "request_id"), BAD_FRAMES, ids=[case[0] for case in BAD_FRAMES])
def test_a_bad_frame_gets_its_code_and_the_id_when_readable(
    name: str, frame: bytes, code: int, request_id: int | str | None
) -> None:
    decoded = decode(frame)
    assert isinstance(decoded, BadFrame), name
    assert (decoded.code, decoded.id) == (code, request_id)
    answer = decoded.answer().model_dump(by_alias=True, exclude_unset=True)
    assert answer["id"] == request_id  # "id": null is sent, not left out
    assert answer["error"]["code"] == code


@pytest.mark.parametrize(
    "frame",
    [
        PING % b"1",
        PING % b'"a string id"',
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
        b'{"jsonrpc":"2.0","id":3,"result":{}}',
        b'{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"the client could not parse ours"}}',
        b'{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"x","arguments":{"n":NaN}}}',
    ],
)
def test_valid_messages_pass(frame: bytes) -> None:
    assert not isinstance(decode(frame), BadFrame)


def test_a_malformed_response_is_answered_without_echoing_our_id() -> None:
    decoded = decode(b'{"jsonrpc":"2.0","id":3,"result":[1]}')
    assert isinstance(decoded, BadFrame)
    assert (decoded.code, decoded.id) == (types.INVALID_REQUEST, None)
