"""The PID line a bridge's shell prints before the bus conversation (relay._Pair): taken off the stream whole,
however the channel splits it, and when it is not a PID, nothing the remote sends reaches the bus client."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

import asyncssh
import pytest

from fleetbus.hosts.channels import ChannelSlots
from fleetbus.hosts.relay import Bridged, _Pair


class Transport:
    """What the pair writes to its bus client."""

    def __init__(self) -> None:
        self.written = bytearray()

    def write(self, data: bytes) -> None:
        self.written += data


def bridged_pair() -> tuple[_Pair, Transport]:
    relay = SimpleNamespace(
        host="host01", route=Bridged(("systemd-stdio-bridge",)), _pairs=set(), _slots=ChannelSlots("host01")
    )
    pair = _Pair(relay)  # type: ignore[arg-type]
    transport = Transport()
    pair.local = transport  # type: ignore[assignment]
    return pair, transport


async def test_a_pid_line_split_across_packets_is_taken_off_whole() -> None:
    pair, transport = bridged_pair()
    for chunk in (b"12", b"34", b"\nOK 0123\r\n", b"more"):
        pair.from_remote(chunk)
    assert await asyncio.wait_for(pair.pid_reported, 1) == 1234
    assert bytes(transport.written) == b"OK 0123\r\nmore"


@pytest.mark.parametrize("first", [b"Welcome to host01!\n", b"9" * 40])
async def test_without_a_pid_nothing_the_remote_says_reaches_the_client(first: bytes) -> None:
    pair, transport = bridged_pair()
    pair.from_remote(first)
    with pytest.raises(asyncssh.ChannelOpenError, match="no PID"):
        await asyncio.wait_for(pair.pid_reported, 1)
    # What follows in later packets, before the pair is closed, is the shell's, not the bus's.
    pair.from_remote(b"1234\nOK 0123\r\n")
    assert bytes(transport.written) == b""
