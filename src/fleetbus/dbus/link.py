"""One connection to one bus, with a deadline on everything (fleetbus.hosts hands them out, per host)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from dbus_fast import Message, MessageFlag, MessageType
from dbus_fast.aio import MessageBus
from dbus_fast.auth import UID_NOT_SPECIFIED, AuthExternal
from dbus_fast.validators import is_bus_name_valid, is_interface_name_valid, is_member_name_valid, is_object_path_valid

from fleetbus import well_known
from fleetbus.dbus import writer  # noqa: F401 — dbus-fast's writer fixed before any connection (see there)
from fleetbus.dbus.errors import BusError, BusUnavailable, CallTimeout, InvalidTarget, RemoteError

log = logging.getLogger(__name__)

DBUS_NAME = well_known.DBUS
DBUS_PATH = well_known.DBUS_PATH
PROPERTIES = well_known.PROPERTIES
NAME_OWNER_CHANGED_RULE = f"type='signal',sender='{DBUS_NAME}',interface='{DBUS_NAME}',member='NameOwnerChanged'"

MAX_CLIENT_MATCHES = 256
"""Match rules clients' signal watches may hold on one connection; a stock bus allows 512 per connection."""

OwnerListener = Callable[[str, str, str], None]
"""(name, old_owner, new_owner); empty strings mean 'none'."""
SignalListener = Callable[[Message], None]


class _Expired(Exception):
    """A call's reply did not come in time (raised into its future by the timer, caught by BusLink.call)."""


def _expire(answered: asyncio.Future[Message]) -> None:
    if not answered.done():
        answered.set_exception(_Expired())


@dataclass(frozen=True)
class Reply:
    signature: str
    body: list[Any]
    sender: str


def check_target(destination: str, path: str, interface: str, member: str) -> None:
    """Refuse names D-Bus would reject, before they reach the wire, naming the bad part."""
    if not is_bus_name_valid(destination):
        raise InvalidTarget(f"{destination!r} is not a valid bus name (e.g. org.freedesktop.hostname1 or :1.42)")
    if not is_object_path_valid(path):
        raise InvalidTarget(f"{path!r} is not a valid object path (e.g. /org/freedesktop/hostname1)")
    if interface and not is_interface_name_valid(interface):
        raise InvalidTarget(f"{interface!r} is not a valid interface name (e.g. org.freedesktop.DBus.Properties)")
    if not is_member_name_valid(member):
        raise InvalidTarget(f"{member!r} is not a valid method name (e.g. GetUnit)")


class BusLink:
    """A connection to one bus. Tracks who owns which name, so callers can key caches by unique owner."""

    def __init__(self, label: str, address: str, connect_timeout: float, host: str = "local") -> None:
        self.label = label
        self.host = host
        self.address = address
        self.connect_timeout = connect_timeout
        self.owners: dict[str, str] = {}
        self._bus: MessageBus | None = None
        self._owner_listeners: list[OwnerListener] = []
        self._signal_listeners: list[SignalListener] = []
        self._match_counts: dict[str, int] = {}
        self._client_rules: set[str] = set()

    @property
    def where(self) -> str:
        """How errors name this bus: `the system bus`, or `host02: the system bus` for a remote host's."""
        return f"the {self.label} bus" if self.host == "local" else f"{self.host}: the {self.label} bus"

    @property
    def key(self) -> str:
        """Identifies this bus among all hosts' buses (caches key on it)."""
        return f"{self.host}/{self.label}"

    @property
    def connected(self) -> bool:
        return self._bus is not None and self._bus.connected

    @property
    def unique_name(self) -> str | None:
        return self._bus.unique_name if self._bus else None

    async def connect(self) -> None:
        try:
            async with asyncio.timeout(self.connect_timeout):
                bus = MessageBus(
                    bus_address=self.address, auth=self._authenticator(), auth_timeout=self.connect_timeout
                )
                await bus.connect()
        except TimeoutError:
            raise BusUnavailable(
                f"{self.where} at {self.address} did not accept a connection within {self.connect_timeout:g} s"
            ) from None
        except Exception as exc:  # dbus-fast raises assorted types here: OSError, AuthError, ValueError…
            raise BusUnavailable(f"cannot connect to {self.where} at {self.address}: {exc}") from exc
        bus.add_message_handler(self._on_message)
        self._bus = bus
        self._match_counts.clear()
        self._client_rules.clear()
        try:
            await self.add_match(NAME_OWNER_CHANGED_RULE)
        except BusError:
            self.close()
            raise

    def _authenticator(self) -> AuthExternal:
        # A remote host's bus takes the uid its kernel sees (sshd's, for a forwarded socket): ours, named in
        # EXTERNAL auth, would be another host's uid and refused. The local bus gets ours, as dbus-fast sends.
        return AuthExternal(None if self.host == "local" else UID_NOT_SPECIFIED)

    async def wait_disconnected(self) -> None:
        """Returns when the connection ends (at once when there is none): how a host learns its link dropped."""
        bus = self._bus
        if bus is None or not bus.connected:
            return
        with contextlib.suppress(Exception):
            await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]

    def close(self) -> None:
        if self._bus is not None:
            self._bus.disconnect()
            self._bus = None

    # ---- calls ----------------------------------------------------------------------------------

    async def call(
        self,
        destination: str,
        path: str,
        interface: str,
        member: str,
        signature: str = "",
        body: Iterable[Any] = (),
        *,
        timeout: float,
    ) -> Reply:
        check_target(destination, path, interface, member)
        bus = self._require_bus()
        if not timeout > 0:  # no time left (or NaN): not sent, as a reply could never be waited for
            context = self._context(destination, path, interface, member)
            raise CallTimeout(f"{context}: no time left to wait for a reply")
        message = Message(
            destination=destination,
            path=path,
            interface=interface or None,
            member=member,
            signature=signature,
            body=list(body),
            flags=MessageFlag.NONE,
        )
        # dbus-fast's MessageBus.call without its coroutine, and a timer on the reply instead of asyncio.timeout:
        # on every call's path, where asyncio.timeout's bookkeeping cost a read more than the rest of this method.
        loop = asyncio.get_running_loop()
        answered = loop.create_future()
        try:
            bus._call(message, functools.partial(bus._reply_handler, answered))
            expiry = loop.call_later(timeout, _expire, answered)
            try:
                reply = await answered
            finally:
                expiry.cancel()
        except asyncio.CancelledError:
            self._forget_reply(bus, message.serial)  # no one waits for the reply any more
            raise
        except _Expired:
            self._forget_reply(bus, message.serial)
            raise CallTimeout(
                f"{self._context(destination, path, interface, member)}: no reply within {timeout:g} s"
            ) from None
        except BusError:
            raise
        except Exception as exc:
            context = self._context(destination, path, interface, member)
            if not bus.connected:
                self._bus = None
                raise BusUnavailable(f"{context}: the {self.label} bus connection was lost ({exc})") from exc
            raise BusError(f"{context}: {exc}") from exc
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise RemoteError(
                reply.error_name or "unknown error", text, self._context(destination, path, interface, member)
            )
        if destination and not destination.startswith(":") and reply.sender:
            self.owners.setdefault(destination, reply.sender)
        return Reply(reply.signature, list(reply.body), reply.sender or "")

    async def call_bus(self, member: str, signature: str = "", *body: Any, timeout: float = 5.0) -> Reply:
        """A call to the bus daemon itself (org.freedesktop.DBus)."""
        return await self.call(DBUS_NAME, DBUS_PATH, DBUS_NAME, member, signature, body, timeout=timeout)

    def _context(self, destination: str, path: str, interface: str, member: str) -> str:
        """How an error names the call (formatted only when one is raised)."""
        context = f"{interface + '.' if interface else ''}{member} on {destination} {path}"
        return context if self.host == "local" else f"{self.host}: {context}"

    @staticmethod
    def _forget_reply(bus: MessageBus, serial: int) -> None:
        # dbus-fast keeps a handler per outstanding call until a reply comes; a peer that never
        # answers would otherwise leave one behind for every timed-out call.
        handlers = getattr(bus, "_method_return_handlers", None)
        if isinstance(handlers, dict):
            handlers.pop(serial, None)

    def _require_bus(self) -> MessageBus:
        if self._bus is None or not self._bus.connected:
            raise BusUnavailable(f"not connected to {self.where} at {self.address}")
        return self._bus

    # ---- names and signals ----------------------------------------------------------------------

    async def owner_of(self, name: str, timeout: float = 5.0) -> str | None:
        """The unique name owning `name` now, or None; unique names own themselves."""
        if name.startswith(":"):
            return name
        if name in self.owners:
            return self.owners[name]
        try:
            reply = await self.call_bus("GetNameOwner", "s", name, timeout=timeout)
        except RemoteError:
            return None
        owner = str(reply.body[0])
        self.owners[name] = owner
        return owner

    def add_owner_listener(self, listener: OwnerListener) -> None:
        self._owner_listeners.append(listener)

    def add_signal_listener(self, listener: SignalListener) -> None:
        self._signal_listeners.append(listener)

    def remove_signal_listener(self, listener: SignalListener) -> None:
        with contextlib.suppress(ValueError):
            self._signal_listeners.remove(listener)

    async def add_match(self, rule: str, timeout: float = 5.0, *, for_clients: bool = False) -> None:
        """Add a match rule (counted: the bus sees each rule once). Rules `for_clients` (their signal watches) are
        capped below the bus's per-connection limit, so the connection keeps room for fleetbus's own rules
        (job results, name owners) however many watches clients open."""
        count = self._match_counts.get(rule, 0)
        if count == 0:
            if for_clients and len(self._client_rules) >= MAX_CLIENT_MATCHES:
                raise BusError(
                    f"the {self.label} bus connection already carries {MAX_CLIENT_MATCHES} signal watches for "
                    "clients; wait for one to end (the rest of the bus's match rules are fleetbus's own)"
                )
            await self.call_bus("AddMatch", "s", rule, timeout=timeout)
        if for_clients:
            self._client_rules.add(rule)
        self._match_counts[rule] = count + 1

    async def remove_match(self, rule: str, timeout: float = 5.0) -> None:
        count = self._match_counts.get(rule, 0)
        if count <= 1:
            self._match_counts.pop(rule, None)
            self._client_rules.discard(rule)
            if count == 1 and self.connected:
                with contextlib.suppress(BusError):
                    await self.call_bus("RemoveMatch", "s", rule, timeout=timeout)
        else:
            self._match_counts[rule] = count - 1

    def _on_message(self, message: Message) -> None:
        if message.message_type != MessageType.SIGNAL:
            return
        if message.member == "NameOwnerChanged" and message.sender == DBUS_NAME and message.signature == "sss":
            name, old, new = (str(v) for v in message.body)
            if new and not name.startswith(":"):
                self.owners[name] = new
            else:
                self.owners.pop(name, None)
            for owner_listener in list(self._owner_listeners):
                try:
                    owner_listener(name, old, new)
                except Exception:
                    log.exception("owner listener failed")
        for listener in list(self._signal_listeners):
            try:
                listener(message)
            except Exception:
                log.exception("signal listener failed")
