"""A small real D-Bus service for tests: typed methods, one that is slow, one that never answers, a signal.

The slow ones are named Get* so that a read-only rule that trusts names would let them through.
Run as `python -m tests.services.example_service --address ADDR --name com.example.Fleet`; prints "ready"
once it owns its name.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Annotated

from dbus_fast import BusType, Variant
from dbus_fast.aio import MessageBus
from dbus_fast.annotations import DBusBool, DBusBytes, DBusDouble, DBusSignature, DBusStr, DBusUInt32
from dbus_fast.service import ServiceInterface, method, signal

INTERFACE = "com.example.Fleet1"
PATH = "/com/example/Fleet1"

Options = Annotated[dict[str, Variant], DBusSignature("a{sv}")]
Described = Annotated[tuple[str, dict[str, Variant]], DBusSignature("(sa{sv})")]
Pair = Annotated[tuple[int, int], DBusSignature("(ii)")]
SumAndProduct = Annotated[tuple[int, int], DBusSignature("(ix)")]
Digest = Annotated[tuple[int, bytes], DBusSignature("(uay)")]
Items = Annotated[list[str], DBusSignature("as")]


class Fleet(ServiceInterface):
    def __init__(self) -> None:
        super().__init__(INTERFACE)
        self._never: list[asyncio.Future[None]] = []

    @method()
    def Echo(self, text: DBusStr) -> DBusStr:  # D-Bus member names are CamelCase
        self.Echoed(text)
        return text

    @method()
    def Describe(self, options: Options) -> Described:
        return (f"{len(options)} options", dict(options))

    @method()
    def AddPair(self, pair: Pair) -> SumAndProduct:
        return (pair[0] + pair[1], pair[0] * pair[1])

    @method()
    def Checksum(self, data: DBusBytes) -> Digest:
        return (sum(data) % 2**32, bytes(reversed(data)))

    @method()
    def Collect(self, count: DBusUInt32) -> Items:
        """A list as long as asked for, from a method no catalog knows: a big answer that is not known to be a read."""
        return [f"item-{index:05d}" for index in range(min(count, 100_000))]

    @method()
    async def GetAfter(self, seconds: DBusDouble) -> DBusBool:
        await asyncio.sleep(seconds)
        return True

    @method()
    async def GetNoReply(self) -> DBusBool:
        # Never replies: the caller's deadline is all that ends the wait.
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._never.append(future)
        await future
        return True

    @signal()
    def Echoed(self, text: DBusStr) -> DBusStr:
        return text


async def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--address", required=True)
    parser.add_argument("--name", action="append", help="a bus name to own (repeatable; default com.example.Fleet)")
    args = parser.parse_args()
    bus = await MessageBus(bus_address=args.address, bus_type=BusType.SYSTEM).connect()
    bus.export(PATH, Fleet())
    for name in args.name or ["com.example.Fleet"]:
        await bus.request_name(name)
    print("ready", flush=True)
    await bus.wait_for_disconnect()  # type: ignore[no-untyped-call]
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
