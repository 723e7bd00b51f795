"""Malformed JSON-RPC frames and the answer JSON-RPC 2.0 gives each: (name, frame, code, id)."""

from __future__ import annotations

PING = b'{"jsonrpc":"2.0","id":%s,"method":"ping"}'

BAD_FRAMES: list[tuple[str, bytes, int, int | str | None]] = [
    ("invalid JSON", b'{"jsonrpc":"2.0","id":1,"method":', -32700, None),
    ("a lone surrogate", b'{"jsonrpc":"2.0","id":2,"method":"ping","params":{"s":"\\ud800"}}', -32700, None),
    (
        "an integer over 4,300 digits",
        b'{"jsonrpc":"2.0","id":3,"method":"ping","params":{"n":' + b"9" * 4400 + b"}}",
        -32700,
        None,
    ),
    (
        "nesting of 200",
        b'{"jsonrpc":"2.0","id":4,"method":"ping","params":{"a":' + b"[" * 200 + b"]" * 200 + b"}}",
        -32700,
        None,
    ),
    ("invalid UTF-8", b'{"jsonrpc":"2.0","id":5,"method":"p\xffng"}', -32700, None),
    ("a batch", b"[" + PING % b"6" + b"," + PING % b"7" + b"]", -32600, None),
    ("an empty batch", b"[]", -32600, None),
    ("not an object", b"42", -32600, None),
    ('"jsonrpc": "1.0"', b'{"jsonrpc":"1.0","id":8,"method":"ping"}', -32600, 8),
    ("no jsonrpc member", b'{"id":"nine","method":"ping"}', -32600, "nine"),
    ("a null id", PING % b"null", -32600, None),
    ("a fractional id", PING % b"1.5", -32600, None),
    ("a float id", PING % b"10.0", -32600, None),
    ("a boolean id", PING % b"true", -32600, None),
    ("an object id", PING % b'{"a":1}', -32600, None),
    ("no method", b'{"jsonrpc":"2.0","id":11,"params":{}}', -32600, 11),
    ("a method that is not a string", b'{"jsonrpc":"2.0","id":12,"method":5}', -32600, 12),
    ("params that are an array", b'{"jsonrpc":"2.0","id":13,"method":"ping","params":[1]}', -32602, 13),
]
