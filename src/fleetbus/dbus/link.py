"""One connection to one bus, with a deadline on everything, and the pool that hands them out."""

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
from dbus_fast.validators import is_bus_name_valid, is_interface_name_valid, is_member_name_valid, is_object_path_valid

from fleetbus.dbus import writer  # noqa: F401 — dbus-fast's writer fixed before any connection (see there)
from fleetbus.dbus.errors import BusError, BusUnavailable, CallTimeout, InvalidTarget, RemoteError

log = logging.getLogger(__name__)

DBUS_NAME = "org.freedesktop.DBus"
DBUS_PATH = "/org/freedesktop/DBus"
PROPERTIES = "org.freedesktop.DBus.Properties"
NAME_OWNER_CHANGED_RULE = f"type='signal',sender='{DBUS_NAME}',interface='{DBUS_NAME}',member='NameOwnerChanged'"

MAX_CLIENT_MATCHES = 256
"""Match rules clients' signal watches may hold on one connection; a stock bus allows 512 per connection."""

OwnerListener = Callable[[str, str, str], None]
"""(name, old_owner, new_owner); empty strings mean 'none'."""
SignalListener = Callable[[Message], None]


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
                bus = MessageBus(bus_address=self.address, auth_timeout=self.connect_timeout)
                await bus.connect()
        except TimeoutError:
            raise BusUnavailable(
                f"the {self.label} bus at {self.address} did not accept a connection within {self.connect_timeout:g} s"
            ) from None
        except Exception as exc:  # dbus-fast raises assorted types here: OSError, AuthError, ValueError…
            raise BusUnavailable(f"cannot connect to the {self.label} bus at {self.address}: {exc}") from exc
        bus.add_message_handler(self._on_message)
        self._bus = bus
        self._match_counts.clear()
        self._client_rules.clear()
        try:
            await self.add_match(NAME_OWNER_CHANGED_RULE)
        except BusError:
            self.close()
            raise

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
        context = f"{interface + '.' if interface else ''}{member} on {destination} {path}"
        message = Message(
            destination=destination,
            path=path,
            interface=interface or None,
            member=member,
            signature=signature,
            body=list(body),
            flags=MessageFlag.NONE,
        )
        try:
            async with asyncio.timeout(timeout):
                reply = await bus.call(message)
        except TimeoutError:
            self._forget_reply(bus, message.serial)
            raise CallTimeout(f"{context}: no reply within {timeout:g} s") from None
        except BusError:
            raise
        except Exception as exc:
            if not bus.connected:
                self._bus = None
                raise BusUnavailable(f"{context}: the {self.label} bus connection was lost ({exc})") from exc
            raise BusError(f"{context}: {exc}") from exc
        if reply.message_type == MessageType.ERROR:
            text = reply.body[0] if reply.body and isinstance(reply.body[0], str) else ""
            raise RemoteError(reply.error_name or "unknown error", text, context)
        if destination and not destination.startswith(":") and reply.sender:
            self.owners.setdefault(destination, reply.sender)
        return Reply(reply.signature, list(reply.body), reply.sender or "")

    async def call_bus(self, member: str, signature: str = "", *body: Any, timeout: float = 5.0) -> Reply:
        """A call to the bus daemon itself (org.freedesktop.DBus)."""
        return await self.call(DBUS_NAME, DBUS_PATH, DBUS_NAME, member, signature, body, timeout=timeout)

    @staticmethod
    def _forget_reply(bus: MessageBus, serial: int) -> None:
        # dbus-fast keeps a handler per outstanding call until a reply comes; a peer that never
        # answers would otherwise leave one behind for every timed-out call.
        handlers = getattr(bus, "_method_return_handlers", None)
        if isinstance(handlers, dict):
            handlers.pop(serial, None)

    def _require_bus(self) -> MessageBus:
        if self._bus is None or not self._bus.connected:
            raise BusUnavailable(f"not connected to the {self.label} bus at {self.address}")
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


class LinkPool:
    """Connections by (host, bus), made on first use and remade when they drop."""

    def __init__(self, addresses: dict[str, str], connect_timeout: float) -> None:
        self.addresses = addresses
        self.connect_timeout = connect_timeout
        self._links: dict[tuple[str, str], BusLink] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._owner_listeners: list[Callable[[BusLink, str, str, str], None]] = []

    def add_owner_listener(self, listener: Callable[[BusLink, str, str, str], None]) -> None:
        """Called for NameOwnerChanged on every link, now and later."""
        self._owner_listeners.append(listener)

    def peek(self, host: str, bus: str) -> BusLink | None:
        """The connected link for (host, bus) if there is one; never connects."""
        link = self._links.get((host, bus))
        return link if link is not None and link.connected else None

    async def get(self, host: str, bus: str) -> BusLink:
        key = (host, bus)
        link = self._links.get(key)
        if link is not None and link.connected:
            return link
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            link = self._links.get(key)
            if link is not None and link.connected:
                return link
            link = self._new_link(host, bus)
            await link.connect()
            self._links[key] = link
            return link

    def _new_link(self, host: str, bus: str) -> BusLink:
        if host != "local":
            raise BusUnavailable(f"unknown host {host!r}: only 'local' is configured")
        address = self.addresses.get(bus)
        if not address:
            raise BusUnavailable(f"no address configured for the {bus} bus")
        link = BusLink(bus, address, self.connect_timeout, host)
        for listener in self._owner_listeners:
            link.add_owner_listener(functools.partial(listener, link))
        return link

    def close(self) -> None:
        for link in self._links.values():
            link.close()
        self._links.clear()
