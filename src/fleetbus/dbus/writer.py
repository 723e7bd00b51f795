"""A fix for dbus-fast 5.2's writer: a socket that is full at a message boundary means wait, not disconnect.

`_MessageWriter.write_callback` writes queued messages in a loop; a message finished, it starts the next at once,
and when the socket buffer is full right then, `send()` raises EAGAIN — which the writer treats as a broken
connection (`bus._finalize`): every pending call fails and fleetbus's shared connection drops for every client.
Two calls whose bodies fill the socket buffer (a 1 MB argument, then any other call) are enough; found by
tests/fuzz. This is the same loop, waiting for the socket to be writable again instead. Imported by
fleetbus.dbus.link, before any connection is made."""

from __future__ import annotations

import array
import socket
from typing import Any

from dbus_fast.aio import message_bus

_Writer: Any = message_bus._MessageWriter


def _write_callback(self: Any, remove_writer: bool = True) -> None:
    sock = self.sock
    try:
        while True:
            if self.buf is None:
                if not self.messages:
                    if remove_writer:
                        self.loop.remove_writer(self.fd)
                    return
                buf, unix_fds, fut = self.messages.popleft()
                self.unix_fds = unix_fds
                self.buf = memoryview(buf)
                self.offset = 0
                self.fut = fut
            try:
                if self.unix_fds and self.negotiate_unix_fd:
                    ancdata = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", self.unix_fds))]
                    self.offset += sock.sendmsg([self.buf[self.offset :]], ancdata)
                    self.unix_fds = None
                else:
                    self.offset += sock.send(self.buf[self.offset :])
            except BlockingIOError:
                self.loop.add_writer(self.fd, self.write_callback)  # the socket is full: go on when it is not
                return
            if self.offset < len(self.buf):
                return
            self.buf = None
            message_bus._future_set_result(self.fut, None)
    except Exception as e:
        if self.bus._user_disconnect:
            message_bus._future_set_result(self.fut, None)
        else:
            message_bus._future_set_exception(self.fut, e)
        self.bus._finalize(e)


_Writer.write_callback = _write_callback
