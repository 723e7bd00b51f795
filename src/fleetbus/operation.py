"""The canonical description of one effect on one host: what policy decides on, audit records, approvals bind to."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import threading
from dataclasses import dataclass, field
from typing import Any

from fleetbus import json_text
from fleetbus.dbus import types

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
        return self._encoded[0]

    def digest(self) -> str:
        return self._encoded[1]

    # Computed once: an operation is decided, audited and matched against approvals several times.
    @functools.cached_property
    def _encoded(self) -> tuple[bytes, str]:
        """The canonical JSON and its SHA-256, shared by equal operations: a client's reads repeat the same few, and
        encoding and hashing each anew was a tenth of a read's own cost. Shared only where equality fixes the JSON:
        the arguments' types are part of the key (True == 1), and only short scalars are shared (types.memoisable:
        never floats, -0.0 == 0.0)."""
        if not types.memoisable(self.args):
            return _encode(self)
        key = (self, tuple(type(arg) for arg in self.args))
        known = _ENCODED.get(key)
        if known is None:
            known = _encode(self)
            with _ENCODING:  # approvals digest operations in worker threads too
                while len(_ENCODED) >= ENCODED:
                    _ENCODED.pop(next(iter(_ENCODED)))
                _ENCODED[key] = known
        return known

    def describe(self) -> str:
        """Short human form, e.g. `system org.freedesktop.systemd1 /org/freedesktop/systemd1 ….Manager.StartUnit`."""
        target = f"{self.interface}.{self.member}" if self.interface else self.member
        return f"{self.host}:{self.bus} {self.destination} {self.path} {target}".strip()


_FIELDS = dataclasses.fields(Operation)
ENCODED = 1024
"""Operations whose canonical JSON and digest are kept for equal ones (the oldest forgotten first)."""
_ENCODED: dict[tuple[Operation, tuple[type, ...]], tuple[bytes, str]] = {}
_ENCODING = threading.Lock()


def _encode(operation: Operation) -> tuple[bytes, str]:
    # The fields by name, as asdict() gives them but without its deep copy (every call is hashed once): args are
    # JSON values, and a tuple encodes as the list asdict() would make of it.
    fields = {f.name: getattr(operation, f.name) for f in _FIELDS}
    canonical = json_text.canonical(fields)
    return canonical, hashlib.sha256(canonical).hexdigest()
