"""Waiting for signals: match rules built safely, and a bounded collection of what arrives."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from dbus_fast import Message
from dbus_fast.validators import is_bus_name_valid, is_interface_name_valid, is_member_name_valid, is_object_path_valid

from fleetbus.dbus.errors import BusError, InvalidTarget
from fleetbus.dbus.link import BusLink


class WatchLimitReached(BusError):
    """A client (or all of them together) holds as many signal watches as allowed."""


class WatchLimits:
    """Signal watches (wait_signal calls in progress, long-lived subscriptions) counted per client and in total.

    Each watch is a listener on the link and, while its match rule is new, a rule on the bus; without a cap per
    client, one client's parallel wait_signal calls could take every one of the link's client rules
    (link.MAX_CLIENT_MATCHES) and every other client's watch would be refused."""

    def __init__(self, per_client: int = 16, total: int = 512) -> None:
        self.per_client = per_client
        self.total = total
        self._held: dict[str, int] = {}

    def held(self, client: str | None = None) -> int:
        return sum(self._held.values()) if client is None else self._held.get(client, 0)

    def acquire(self, client: str) -> Callable[[], None]:
        """Count one watch for `client`; returns what releases it (idempotent). Raises WatchLimitReached."""
        if self._held.get(client, 0) >= self.per_client:
            raise WatchLimitReached(
                f"{client} already holds {self.per_client} signal watches, the most one client may; wait for one to "
                "end (wait_signal returns at its timeout)"
            )
        if self.held() >= self.total:
            raise WatchLimitReached(
                f"fleetbus already holds {self.total} signal watches for all clients, the most it allows; "
                "try again when one ends"
            )
        self._held[client] = self._held.get(client, 0) + 1
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            self._held[client] -= 1
            if not self._held[client]:
                del self._held[client]

        return release

    @contextlib.contextmanager
    def hold(self, client: str) -> Iterator[None]:
        release = self.acquire(client)
        try:
            yield
        finally:
            release()


@dataclass(frozen=True)
class SignalFilter:
    """Which signals to collect; every part optional. `sender` may be a well-known or unique name."""

    sender: str | None = None
    path: str | None = None
    interface: str | None = None
    member: str | None = None

    def __post_init__(self) -> None:
        checks = (
            (self.sender, is_bus_name_valid, "bus name"),
            (self.path, is_object_path_valid, "object path"),
            (self.interface, is_interface_name_valid, "interface name"),
            (self.member, is_member_name_valid, "signal name"),
        )
        for value, valid, what in checks:
            if value is not None and not valid(value):
                raise InvalidTarget(f"{value!r} is not a valid {what}")

    def rule(self) -> str:
        # Every part was validated above, so none can contain a quote or comma that would
        # change the meaning of the rule.
        parts = ["type='signal'"]
        for key, value in (
            ("sender", self.sender),
            ("path", self.path),
            ("interface", self.interface),
            ("member", self.member),
        ):
            if value is not None:
                parts.append(f"{key}='{value}'")
        return ",".join(parts)

    def matches(self, message: Message, sender_owner: str | None) -> bool:
        if self.sender is not None and message.sender not in (self.sender, sender_owner):
            return False
        if self.path is not None and message.path != self.path:
            return False
        if self.interface is not None and message.interface != self.interface:
            return False
        return self.member is None or message.member == self.member


@dataclass(frozen=True)
class ReceivedSignal:
    sender: str
    path: str
    interface: str
    member: str
    signature: str
    body: list[Any]
    received: float
    """Wall-clock time (seconds since the epoch)."""


@dataclass(frozen=True)
class Collected:
    signals: tuple[ReceivedSignal, ...]
    dropped: int
    """Signals that matched after max_count was reached."""
    waited: float


class Subscription:
    """Signals matching a filter, delivered to a callback until closed. For long-lived watchers (tool packs
    following services, signal resources); `collect` is the bounded, one-shot form."""

    def __init__(
        self,
        link: BusLink,
        selector: SignalFilter,
        deliver: Callable[[ReceivedSignal], None],
        release: Callable[[], None] | None = None,
    ) -> None:
        self.link = link
        self.selector = selector
        self._deliver = deliver
        self._release = release
        """Gives back the watch this subscription was counted as (WatchLimits.acquire), once it closes."""
        self._rule = selector.rule()
        self.closed = False

    async def open(self) -> Subscription:
        try:
            if self.selector.sender:
                await self.link.owner_of(self.selector.sender)
            self.link.add_signal_listener(self._on_message)
            try:
                await self.link.add_match(self._rule, for_clients=True)
            except BaseException:
                self.link.remove_signal_listener(self._on_message)
                raise
        except BaseException:
            self._released()
            raise
        return self

    def _released(self) -> None:
        if self._release is not None:
            self._release()

    def _on_message(self, message: Message) -> None:
        owner = self.link.owners.get(self.selector.sender) if self.selector.sender else None
        if not self.closed and self.selector.matches(message, owner):
            self._deliver(_received(message))

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._released()
        self.link.remove_signal_listener(self._on_message)
        await self.link.remove_match(self._rule)


def _received(message: Message) -> ReceivedSignal:
    return ReceivedSignal(
        message.sender or "",
        message.path or "",
        message.interface or "",
        message.member or "",
        message.signature,
        list(message.body),
        time.time(),
    )


async def collect(link: BusLink, selector: SignalFilter, *, timeout: float, max_count: int) -> Collected:
    """Collect matching signals until `max_count` arrive or `timeout` passes, whichever is first."""
    if selector.sender:
        await link.owner_of(selector.sender)  # learn the current owner; NameOwnerChanged keeps it fresh
    received: list[ReceivedSignal] = []
    dropped = 0
    enough = asyncio.Event()

    def on_signal(message: Message) -> None:
        nonlocal dropped
        owner = link.owners.get(selector.sender) if selector.sender else None
        if not selector.matches(message, owner):
            return
        if len(received) >= max_count:
            dropped += 1
            return
        received.append(_received(message))
        if len(received) >= max_count:
            enough.set()

    rule = selector.rule()
    started = time.monotonic()
    link.add_signal_listener(on_signal)
    try:
        await link.add_match(rule, for_clients=True)
        try:
            await asyncio.wait_for(enough.wait(), timeout)
        except TimeoutError:
            pass
        finally:
            await link.remove_match(rule)
    finally:
        link.remove_signal_listener(on_signal)
    return Collected(tuple(received), dropped, time.monotonic() - started)
