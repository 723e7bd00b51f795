"""Deciding whether an Operation may run: allow, deny, or ask a person (confirm)."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from fleetbus.operation import DBUS_CALL, DBUS_WATCH, Operation

PROPERTIES = "org.freedesktop.DBus.Properties"
READ_PREFIXES = ("Get", "List")
ALWAYS_READ_INTERFACES = ("org.freedesktop.DBus.Introspectable", "org.freedesktop.DBus.Peer")
# Members that change nothing on the host although their names do not say so.
HARMLESS_MEMBERS = {
    ("org.freedesktop.systemd1.Manager", "Subscribe"): "it only asks systemd to emit job and unit signals"
}


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    CONFIRM = "confirm"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    rule: str
    reason: str

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


class ReadOnlyRule:
    """Until the policy engine lands: reads pass, every other operation is refused.

    Reads are `Get*`/`List*` members, introspection, `Peer`, property reads (`Get`, `GetAll`) and
    watching signals. Anything else is refused with a message that says why.
    """

    name = "builtin-read-only"

    def decide(self, operation: Operation) -> Decision:
        if operation.kind == DBUS_WATCH:
            return Decision(Verdict.ALLOW, self.name, "watching signals is a read")
        if operation.kind != DBUS_CALL:
            return Decision(Verdict.DENY, self.name, f"operation kind {operation.kind!r} is not a read")
        if operation.interface in ALWAYS_READ_INTERFACES:
            return Decision(Verdict.ALLOW, self.name, f"{operation.interface} is a read")
        if operation.interface == PROPERTIES:
            if operation.member in ("Get", "GetAll"):
                return Decision(Verdict.ALLOW, self.name, "property reads are reads")
            return Decision(Verdict.DENY, self.name, self._refusal(operation))
        if (reason := HARMLESS_MEMBERS.get((operation.interface, operation.member))) is not None:
            return Decision(Verdict.ALLOW, self.name, reason)
        if operation.member.startswith(READ_PREFIXES):
            return Decision(Verdict.ALLOW, self.name, "Get*/List* members are treated as reads")
        return Decision(Verdict.DENY, self.name, self._refusal(operation))

    @staticmethod
    def _refusal(operation: Operation) -> str:
        return (
            f"{operation.interface}.{operation.member} may change the system; this build only allows reads "
            "(Get*/List* methods, introspection, Peer, property reads, signals) until the policy layer "
            "with presets and approvals is configured"
        )
