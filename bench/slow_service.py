"""A latency-bound service on every simulated host's system bus: one process, one connection per host.

On each bus it owns `org.fleetbus.Bench1` and answers `Properties.Get("org.fleetbus.Bench1", "Delayed")` on
`/org/fleetbus/Bench1` only after a fixed delay, with that host's name — like a host across a WAN or a slow service.
A fan-out of that read is bound by the delay, not by CPU: if the fan-out is concurrent, its time barely grows with
the number of hosts. It runs apart from the bench so its own (small) CPU is not counted as fleetbus's.

Started by bench_fleet.py as: python bench/slow_service.py --delay-ms 20 NAME=SOCKET [NAME=SOCKET …]
It prints `ready N` once it owns the name on all N buses, and exits when its stdin closes (the bench ended) or on
SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys

from dbus_fast import BusType, Message, MessageType, RequestNameReply, Variant
from dbus_fast.aio import MessageBus

NAME = "org.fleetbus.Bench1"
PATH = "/org/fleetbus/Bench1"
INTERFACE = NAME
PROPERTY = "Delayed"
PROPERTIES = "org.freedesktop.DBus.Properties"
INTROSPECTABLE = "org.freedesktop.DBus.Introspectable"
INTROSPECTION = f"""<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">
<node>
  <interface name="{INTROSPECTABLE}">
    <method name="Introspect"><arg name="xml" type="s" direction="out"/></method>
  </interface>
  <interface name="{PROPERTIES}">
    <method name="Get">
      <arg name="interface" type="s" direction="in"/><arg name="property" type="s" direction="in"/>
      <arg name="value" type="v" direction="out"/>
    </method>
    <method name="GetAll">
      <arg name="interface" type="s" direction="in"/><arg name="properties" type="a{{sv}}" direction="out"/>
    </method>
  </interface>
  <interface name="{INTERFACE}">
    <property name="{PROPERTY}" type="s" access="read">
      <annotation name="org.freedesktop.DBus.Property.EmitsChangedSignal" value="const"/>
    </property>
  </interface>
</node>
"""


class DelayedHost:
    """One host's bus: every read of the property is answered `delay` seconds after it arrived."""

    def __init__(self, host: str, bus: MessageBus, delay: float) -> None:
        self.host, self.bus, self.delay = host, bus, delay
        self.loop = asyncio.get_running_loop()

    def handle(self, message: Message) -> Message | bool | None:
        if message.message_type is not MessageType.METHOD_CALL or message.path != PATH:
            return None  # dbus-fast answers anything else as an unknown method
        if message.interface == INTROSPECTABLE and message.member == "Introspect":
            return Message.new_method_return(message, "s", [INTROSPECTION])
        if message.interface != PROPERTIES or message.member not in ("Get", "GetAll"):
            return None
        if message.body[0] != INTERFACE or (message.member == "Get" and message.body[1] != PROPERTY):
            return Message.new_error(message, "org.freedesktop.DBus.Error.UnknownProperty", f"no {message.body}")
        value = Variant("s", self.host)
        reply = (
            Message.new_method_return(message, "v", [value])
            if message.member == "Get"
            else Message.new_method_return(message, "a{sv}", [{PROPERTY: value}])
        )
        # A timer, not a task: the wait costs nothing, so what the fan-out measures is the delay.
        self.loop.call_later(self.delay, self.bus.send, reply)
        return True


async def attach(host: str, socket: str, delay: float) -> MessageBus:
    bus = await MessageBus(bus_address=f"unix:path={socket}", bus_type=BusType.SYSTEM).connect()
    bus.add_message_handler(DelayedHost(host, bus, delay).handle)
    reply = await bus.request_name(NAME)
    if reply is not RequestNameReply.PRIMARY_OWNER:
        raise RuntimeError(f"{host}: RequestName({NAME}) answered {reply}")
    return bus


async def serve(targets: list[tuple[str, str]], delay: float) -> None:
    buses = await asyncio.gather(*(attach(host, socket, delay) for host, socket in targets))
    loop = asyncio.get_running_loop()
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    # The bench holds our stdin's write end: when it ends, however it ends, the read sees EOF and we stop too.
    stdin = sys.stdin.fileno()
    loop.add_reader(stdin, lambda: None if os.read(stdin, 4096) else done.set())
    print(f"ready {len(buses)}", flush=True)
    await done.wait()
    for bus in buses:
        bus.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("targets", nargs="+", metavar="HOST=SOCKET", help="a host's name and its bus socket")
    args = parser.parse_args()
    targets = [target.partition("=") for target in args.targets]
    asyncio.run(serve([(host, socket) for host, _, socket in targets], args.delay_ms / 1000))


if __name__ == "__main__":
    main()
