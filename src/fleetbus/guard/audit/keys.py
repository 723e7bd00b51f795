"""The audit key: with it the hash chain is an HMAC chain and the head is signed, so someone who can write the log
but cannot read the key can neither append, edit, nor cut records and rewrite the head undetected."""

from __future__ import annotations

import hashlib
import hmac
import os
import stat
from pathlib import Path

from fleetbus.guard.audit.records import AuditError

CHAIN_HMAC = "hmac-sha256"
"""The `chain` field of a keyed record: its `hash` is HMAC-SHA256 under the key, not a plain SHA-256."""
MIN_KEY_BYTES = 32
MAX_KEY_BYTES = 4096


class AuditKeyError(AuditError):
    """The key file cannot be used: missing, too short, or readable by someone it should not be."""


def load_key(path: Path) -> bytes:
    """The bytes of `path`, after checking that only its owner (root, or the user fleetbus runs as) can read it.

    A key others can read authenticates nothing, so it is refused rather than used: the server does not start.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except FileNotFoundError:
        raise AuditKeyError(f"audit key file {path} does not exist") from None
    except OSError as exc:
        raise AuditKeyError(f"audit key file {path} cannot be opened: {exc.strerror}") from None
    try:
        info = os.fstat(fd)  # the file opened, not whatever the path names a moment later
        if not stat.S_ISREG(info.st_mode):
            raise AuditKeyError(f"audit key file {path} is not a regular file")
        if info.st_uid not in (0, os.geteuid()):
            raise AuditKeyError(
                f"audit key file {path} belongs to uid {info.st_uid}; it must belong to root (or to the user "
                "fleetbus runs as)"
            )
        if info.st_mode & 0o077:
            raise AuditKeyError(
                f"audit key file {path} has mode {stat.S_IMODE(info.st_mode):04o}: group or others may read or "
                f"change it, so it would authenticate nothing; run `chmod 600 {path}` (only its owner may read it)"
            )
        key = os.read(fd, MAX_KEY_BYTES + 1)
    finally:
        os.close(fd)
    if len(key) < MIN_KEY_BYTES:
        raise AuditKeyError(
            f"audit key file {path} holds {len(key)} bytes; an audit key needs at least {MIN_KEY_BYTES} "
            f"(e.g. `head -c 32 /dev/urandom > {path}`)"
        )
    if len(key) > MAX_KEY_BYTES:
        raise AuditKeyError(f"audit key file {path} is longer than {MAX_KEY_BYTES} bytes; is it the right file?")
    return key


def head_mac(key: bytes, seq: int, digest: str) -> str:
    """The head's signature: it names record `seq` with hash `digest`, and only the key holder could say so."""
    return hmac.new(key, f"fleetbus-audit-head:{seq}:{digest}".encode(), hashlib.sha256).hexdigest()
