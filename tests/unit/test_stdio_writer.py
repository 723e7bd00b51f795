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
