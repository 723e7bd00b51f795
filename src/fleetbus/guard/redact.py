"""What the audit log keeps of an operation's arguments: secrets hidden, long values shortened.

Secrets are found two ways. By knowledge: the catalog marks the arguments that carry them (an environment for
SetEnvironment, a transient unit's Environment= and SetCredential=, a NetworkManager PSK), so a secret in a list
element is hidden although no key names it. By value: `KEY=VALUE` and `--key=value` with a secret-like key, a
bearer token, a password in a URL, a private key, a token-like blob — wherever they appear. The audit record (file
and journald copy alike) is built once by the gateway from these arguments, so both are redacted, for refused
calls as much as for those that run.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from fleetbus.guard.catalog import CATALOG, SecretArg, SecretKind, lookup
from fleetbus.guard.catalog.secrets import CONNECTION_SECRETS, SECRET_UNIT_PROPERTIES
from fleetbus.operation import Operation

REDACTED = "«redacted»"
SECRET_WORDS = r"pass|pwd|secret|token|key|cred|auth|cookie|private|psk|session"
SECRET_KEY = re.compile(SECRET_WORDS, re.IGNORECASE)
MAX_ARG_CHARS = 256
MAX_ARG_ITEMS = 64

_ASSIGNMENT = re.compile(rf"(?P<key>[\w.-]*(?:{SECRET_WORDS})[\w.-]*)(?P<sep>=|:[ \t]*)(?P<value>\S+)", re.IGNORECASE)
"""`DB_PASSWORD=…`, `--api-key=…`, `token: …` anywhere in a string (a command line, an environment block)."""
_BEARER = re.compile(r"\b(?P<scheme>bearer|basic|token)(?P<sep>[ \t]+)(?P<value>[\w.~+/=-]{8,})", re.IGNORECASE)
_URL_PASSWORD = re.compile(r"(?P<head>[a-z][a-z0-9+.-]*://[^/\s:@]*:)(?P<value>[^/\s@]+)(?P<at>@)", re.IGNORECASE)
_PRIVATE_KEY = re.compile(
    r"-----BEGIN (?P<kind>[A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?)-----.*?(?:-----END [A-Z0-9 ]*-----|$)", re.DOTALL
)
_JWT = re.compile(r"\beyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}")
_BLOB = re.compile(r"^[A-Za-z0-9+/=_-]{40,}$")
_MAY_CARRY = re.compile(r"[=:@ \t]|-----BEGIN|eyJ")
"""What every pattern above but _BLOB needs somewhere in the text: an assignment's `=`/`:`, a scheme's blank, a URL's
`@`, a PEM header, a JWT's start. Most arguments (bus names, paths, unit names) have none, and one search instead
of five substitutions keeps redaction off the per-call bill."""


def audit_arguments(operation: Operation) -> list[Any]:
    """The arguments of `operation` as its audit record keeps them."""
    args = list(operation.args)
    for secret in _secret_args(operation):
        if secret.index < len(args):
            args[secret.index] = hide(args[secret.index], secret.kind)
    return [redact(arg) for arg in args]


def _secret_args(operation: Operation) -> tuple[SecretArg, ...]:
    if operation.interface:
        entry = lookup(operation.interface, operation.member)
        return entry.secrets if entry is not None else ()
    # Without an interface the call reaches whichever interface has the member: hide what any of them would.
    return tuple(s for entries in CATALOG.values() for e in entries if e.member == operation.member for s in e.secrets)


# ---- by knowledge ---------------------------------------------------------------------------------------------


def hide(value: Any, kind: SecretKind) -> Any:
    """`value` with the secrets the catalog says it carries hidden; a value of another shape is left to `redact`."""
    if kind is SecretKind.WHOLE:
        return REDACTED
    if kind is SecretKind.ASSIGNMENTS:
        return _assignments(value)
    if kind is SecretKind.UNIT_PROPERTIES:
        return _unit_properties(value)
    if kind is SecretKind.AUX_UNITS:
        return (
            [
                [unit[0], _unit_properties(unit[1])] if isinstance(unit, list) and len(unit) == 2 else unit
                for unit in value
            ]
            if isinstance(value, list)
            else value
        )
    return _connection_settings(value)


def _assignments(value: Any) -> Any:
    """`KEY=VALUE` → `KEY=«redacted»`: which variables were set stays readable, not what they were set to."""
    if isinstance(value, str):
        key, equals, _ = value.partition("=")
        return f"{key}={REDACTED}" if equals else value
    if isinstance(value, list):
        return [_assignments(item) for item in value]
    return value


def _unit_properties(value: Any) -> Any:
    if not isinstance(value, list):
        return value
    return [_unit_property(item) for item in value]


def _unit_property(item: Any) -> Any:
    if not (isinstance(item, list) and len(item) == 2 and isinstance(item[0], str)):
        return item
    name, variant = item
    kind = SECRET_UNIT_PROPERTIES.get(name)
    if kind is None:
        return item
    if not (isinstance(variant, dict) and "value" in variant):
        return [name, REDACTED]
    return [name, {**variant, "value": hide(variant["value"], kind)}]


def _connection_settings(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    return {
        group: {
            key: REDACTED if key in CONNECTION_SECRETS or key.endswith(("-password", "-psk", "-key")) else item
            for key, item in settings.items()
        }
        if isinstance(settings, dict)
        else settings
        for group, settings in value.items()
    }


# ---- by value -------------------------------------------------------------------------------------------------


def redact(value: Any, key: str = "") -> Any:
    """A value as the log keeps it: values under secret-looking keys hidden, secrets recognisable in strings hidden,
    long strings and lists shortened."""
    if key and SECRET_KEY.search(key):
        return REDACTED
    if isinstance(value, str):
        cleaned = redact_text(value)
        return cleaned if len(cleaned) <= MAX_ARG_CHARS else f"{cleaned[:MAX_ARG_CHARS]}…({len(cleaned)} chars)"
    if isinstance(value, list):
        if _is_named_value(value) and SECRET_KEY.search(value[0]):
            return [value[0], REDACTED]  # (name, variant) pairs, as in a(sv) property lists
        kept = [redact(v) for v in value[:MAX_ARG_ITEMS]]
        return kept if len(value) <= MAX_ARG_ITEMS else [*kept, f"…({len(value)} items)"]
    if isinstance(value, dict):
        if set(value) == {"signature", "value"}:
            return {"signature": value["signature"], "value": redact(value["value"], key)}
        return {k: redact(v, str(k)) for k, v in value.items()}
    return value


def _is_named_value(value: Sequence[Any]) -> bool:
    return (
        len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], dict)
        and set(value[1]) == {"signature", "value"}
    )


def redact_text(text: str) -> str:
    """`text` with the secrets it visibly carries replaced by «redacted»."""
    if _BLOB.match(text) and not text.startswith("/") and _mixed(text):
        return REDACTED  # a key, a token or a credential blob on its own
    if not _MAY_CARRY.search(text):
        return text
    return substitute_secrets(text)


def substitute_secrets(text: str) -> str:
    """Every secret pattern's replacement applied to `text` (what redact_text does once the cheap search says a
    pattern could match)."""
    text = _PRIVATE_KEY.sub(lambda m: f"-----BEGIN {m['kind']}-----{REDACTED}", text)
    text = _JWT.sub(REDACTED, text)
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}{REDACTED}{m['at']}", text)
    text = _BEARER.sub(lambda m: f"{m['scheme']}{m['sep']}{REDACTED}", text)
    return _ASSIGNMENT.sub(lambda m: f"{m['key']}{m['sep']}{REDACTED}", text)


def _mixed(text: str) -> bool:
    """Upper- and lower-case letters and digits together: what random keys look like, and hex digests do not."""
    return any(c.isupper() for c in text) and any(c.islower() for c in text) and any(c.isdigit() for c in text)
