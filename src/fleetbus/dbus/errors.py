"""What can go wrong when talking to a bus, in words a model (and an operator) can act on."""

from __future__ import annotations


class BusError(Exception):
    """Base class; `str(error)` is a complete sentence naming the bus, target and cause."""


class BusUnavailable(BusError):
    """No connection to the bus: it is not there, refused us, or went away."""


class CallTimeout(BusError):
    """No reply within the deadline."""


class InvalidTarget(BusError):
    """A bus name, object path, interface or member that D-Bus would reject."""


class RemoteError(BusError):
    """The peer answered with a D-Bus error."""

    def __init__(self, name: str, text: str, context: str) -> None:
        super().__init__(f"{context} failed: {name}: {text}" if text else f"{context} failed: {name}")
        self.name = name
        self.text = text
