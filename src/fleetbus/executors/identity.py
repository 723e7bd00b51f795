"""Parser of os-release (`/etc/os-release`, else `/usr/lib/os-release`): the target's own name for its OS."""

from __future__ import annotations

import shlex


def os_release(text: str) -> dict[str, str]:
    """`KEY=value` lines, values quoted as in a shell (os-release(5)); comments and malformed lines are skipped."""
    found: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        key, equals, value = line.partition("=")
        if not equals or line.startswith("#") or not key.replace("_", "").isalnum():
            continue
        try:
            words = shlex.split(value)
        except ValueError:
            continue
        found[key] = " ".join(words)
    return found
