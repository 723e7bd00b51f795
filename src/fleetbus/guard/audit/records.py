"""One audit record as written: its canonical JSON, the hash that chains it to the one before, the fields the writer
owns."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64
_encode = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode


def canonical(record: Mapping[str, Any]) -> bytes:
    return _encode(record).encode()


def record_hash(record: Mapping[str, Any]) -> str:
    return hashlib.sha256(canonical({k: v for k, v in record.items() if k != "hash"})).hexdigest()


def seal(record: Mapping[str, Any]) -> tuple[str, bytes]:
    """`record_hash(record)` and the canonical JSON of the record with that hash, encoding its content once (the
    writer's hot path): with sorted keys, `hash` sits between the keys that sort before it and those after."""
    before = _encode({k: v for k, v in record.items() if k < "hash"})[:-1]  # "{…" — or "{" when none
    after = _encode({k: v for k, v in record.items() if k > "hash"})[1:]  # "…}" — or "}" when none
    opened, closes = len(before) > 1, len(after) > 1
    digest = hashlib.sha256((before + ("," if opened and closes else "") + after).encode()).hexdigest()
    line = before + ("," if opened else "") + f'"hash":"{digest}"' + ("," if closes else "") + after
    return digest, line.encode()


def now_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


class AuditError(ValueError):
    """The audit log cannot be continued or written; nothing should run unrecorded."""


RESERVED = frozenset({"seq", "time", "prev", "hash"})
"""Fields the writer sets; a caller's value for them would break or disguise the chain."""


def monotonic_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
