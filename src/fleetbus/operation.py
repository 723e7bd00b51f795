"""The canonical description of one effect on one host: what policy decides on, audit records, approvals bind to."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

LOCAL_HOST = "local"
BUSES = ("system", "session")

DBUS_CALL = "dbus.call"
DBUS_WATCH = "dbus.watch"
AUDIT_QUERY = "audit.query"
JOURNAL_QUERY = "journal.query"
"""Reading a host's journal: args are journalctl options (the executor runs `journalctl -o json` with them)."""
HOST_METRICS = "host.metrics"
"""Reading a host's resource figures (load, memory, disks, processes, sockets): member names the snapshot."""
HOST_PROBE = "host.probe"
"""Trying to reach a host now (list_hosts' probe): a connection attempt, an SSH login on a remote host."""
FLEET_PLAN = "fleet.plan"
"""A whole plan of changes across hosts (a rolling job) as one operation to approve: its argument is the plan's
digest, its host the pattern; each change in it is still decided on its own host."""


@dataclass(frozen=True)
class Operation:
    """One effect: for D-Bus `(host, bus, destination, path, interface, member, signature, args)`.

    `args` are the JSON form of the D-Bus arguments, already checked against `signature`, so two
    operations that would put the same message on the bus compare (and hash) equal.
    """

    kind: str
    host: str
    """The host it acts on (`local`, or a name of the inventory): required, so no call site forgets it."""
    bus: str = "system"
    destination: str = ""
    path: str = ""
    interface: str = ""
    member: str = ""
    signature: str = ""
    args: tuple[Any, ...] = field(default=())

    def canonical(self) -> bytes:
        return self._canonical

    def digest(self) -> str:
        return self._digest

    # Computed once: an operation is decided, audited and matched against approvals several times.
    @functools.cached_property
    def _canonical(self) -> bytes:
        # The fields by name, as asdict() gives them but without its deep copy (every call is hashed once):
        # args are JSON values, and a tuple encodes as the list asdict() would make of it.
        fields = {f.name: getattr(self, f.name) for f in _FIELDS}
        return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()

    @functools.cached_property
    def _digest(self) -> str:
        return hashlib.sha256(self._canonical).hexdigest()

    def describe(self) -> str:
        """Short human form, e.g. `system org.freedesktop.systemd1 /org/freedesktop/systemd1 ….Manager.StartUnit`."""
        target = f"{self.interface}.{self.member}" if self.interface else self.member
        return f"{self.host}:{self.bus} {self.destination} {self.path} {target}".strip()


_FIELDS = dataclasses.fields(Operation)
