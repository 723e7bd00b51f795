"""The stdio transport's writer: answers go straight to a non-blocking pipe, and a client that is slow to read
makes it wait (on the event loop, never blocking it) without losing or reordering a byte."""

from __future__ import annotations

import os
import threading
import time

from fleetbus.server.stdio import _Writer


async def test_a_slow_reader_gets_every_byte_in_order() -> None:
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    lines = [f'{{"id":{n},"pad":"{"x" * 3000}"}}\n' for n in range(300)]  # ~900 KB: the pipe holds 64 KiB
    received = bytearray()

    def read_slowly() -> None:
        while chunk := os.read(read_end, 8192):
            received.extend(chunk)
            time.sleep(0.0005)

    reader = threading.Thread(target=read_slowly)
    reader.start()
    writer = _Writer(write_end)
    for line in lines:
        await writer.write(line)
    os.close(write_end)
    reader.join(60)
    os.close(read_end)
    assert received.decode() == "".join(lines)


async def test_a_client_that_closed_its_end_ends_the_writing_not_the_process() -> None:
    """A notification written after the client hung up (a socket-activated instance, Accept=yes) is dropped: a
    BrokenPipeError escaping would end the instance with a traceback and exit status 1."""
    for blocking in (False, True):
        read_end, write_end = os.pipe()
        os.set_blocking(write_end, blocking)
        os.close(read_end)
        writer = _Writer(write_end, blocking=blocking)
        await writer.write('{"jsonrpc":"2.0","method":"notifications/tools/list_changed"}\n')
        await writer.write("{}\n")
        assert writer.gone
        os.close(write_end)
