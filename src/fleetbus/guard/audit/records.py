"""One audit record as written: its canonical JSON, the hash that chains it to the one before, the fields the writer
owns."""

from __future__ import annotations

import functools
import hashlib
import hmac
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from fleetbus import json_text

GENESIS = "0" * 64


def canonical(record: Mapping[str, Any]) -> bytes:
    return json_text.canonical(record)


def digest_of(content: bytes, key: bytes | None) -> str:
    """SHA-256 of a record's content, or HMAC-SHA256 under `key` (a keyed chain: only the key holder can extend it)."""
    if key is None:
        return hashlib.sha256(content).hexdigest()
    return hmac.new(key, content, hashlib.sha256).hexdigest()


def record_hash(record: Mapping[str, Any], key: bytes | None = None) -> str:
    return digest_of(canonical({k: v for k, v in record.items() if k != "hash"}), key)


def seal(record: Mapping[str, Any], key: bytes | None = None) -> tuple[str, bytes]:
    """`record_hash(record, key)` and the canonical JSON of the record with that hash, encoding its content once
    (the writer's hot path): with sorted keys, `hash` sits between the keys that sort before it and those after."""
    before = json_text.canonical({k: v for k, v in record.items() if k < "hash"})[:-1]  # "{…" — or "{" when none
    after = json_text.canonical({k: v for k, v in record.items() if k > "hash"})[1:]  # "…}" — or "}" when none
    opened, closes = len(before) > 1, len(after) > 1
    digest = digest_of(before + (b"," if opened and closes else b"") + after, key)
    field = b'"hash":"' + digest.encode() + b'"'
    line = before + (b"," if opened else b"") + field + (b"," if closes else b"") + after
    return digest, line


def now_stamp() -> str:
    """The time now in UTC, `2026-12-02T07:16:52.146619Z` (datetime's isoformat to the microsecond, with Z)."""
    seconds, fraction = divmod(time.time_ns() // 1000, 1_000_000)
    return f"{_to_the_second(seconds)}.{fraction:06d}Z"


@functools.lru_cache(maxsize=4)
def _to_the_second(seconds: int) -> str:
    # Every record takes a stamp: the part to the second is formatted once a second, not per record.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class AuditError(ValueError):
    """The audit log cannot be continued or written; nothing should run unrecorded."""


RESERVED = frozenset({"seq", "time", "prev", "hash", "chain"})
"""Fields the writer sets; a caller's value for them would break or disguise the chain."""


def monotonic_ms(started: float) -> float:
    return round((time.monotonic() - started) * 1000, 3)
