"""What the audit log keeps of an operation's arguments: secrets hidden, long values shortened.

The audit record (file and journald copy alike) is built once by the gateway, so redacting it here redacts both.
"""

from __future__ import annotations

import re
from typing import Any

REDACTED = "«redacted»"
SECRET_KEY = re.compile(r"pass|secret|token|key|cred|auth|cookie|private", re.IGNORECASE)
MAX_ARG_CHARS = 256
MAX_ARG_ITEMS = 64


def redact(value: Any, key: str = "") -> Any:
    """Arguments as the log keeps them: values under secret-looking keys hidden, long strings and lists shortened."""
    if key and SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        return value if len(value) <= MAX_ARG_CHARS else f"{value[:MAX_ARG_CHARS]}…({len(value)} chars)"
    if isinstance(value, list):
        kept = [redact(v) for v in value[:MAX_ARG_ITEMS]]
        return kept if len(value) <= MAX_ARG_ITEMS else [*kept, f"…({len(value)} items)"]
    if isinstance(value, dict):
        if set(value) == {"signature", "value"}:
            return {"signature": value["signature"], "value": redact(value["value"], key)}
        return {k: redact(v, str(k)) for k, v in value.items()}
    return value
