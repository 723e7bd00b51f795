"""A bare D-Bus client for the relay tests, run as a process of its own (so that it can run as another uid, and
so that what it buffers is not counted in the test process): it speaks to a relay socket byte by byte, as a
hostile or careless client would, and prints what happened as one JSON line.

    python relay_client.py PATH hello
        authenticate (EXTERNAL, no uid) and say Hello; prints {"unique_name": …} or {"error": …}
    python relay_client.py PATH flood COUNT SIZE PAUSE
        after Hello, send COUNT calls of SIZE bytes to its own unique name (no reply expected), so the host's
        bus sends them all back; read nothing for PAUSE seconds, then read until they have all come back
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time

from dbus_fast import Message, MessageFlag

READ_TIMEOUT = 30.0


def authenticate(sock: socket.socket) -> None:
    sock.sendall(b"\0AUTH EXTERNAL\r\n")
    expect(sock, b"DATA")
    sock.sendall(b"DATA\r\n")
    expect(sock, b"OK ")
    sock.sendall(b"BEGIN\r\n")


def expect(sock: socket.socket, prefix: bytes) -> None:
    line = b""
    while not line.endswith(b"\r\n"):
        chunk = sock.recv(1)
        if not chunk:
            raise ConnectionError(f"closed during auth after {line!r}")
        line += chunk
    if not line.startswith(prefix):
        raise ConnectionError(f"auth answered {line!r}")


def read_message(sock: socket.socket) -> tuple[int, bytes]:
    """One whole message: its type and its body (little-endian, as dbus-daemon on this machine sends)."""
    fixed = read_exactly(sock, 16)
    body_length, _serial, fields_length = struct.unpack("<III", fixed[4:16])
    padded = (fields_length + 7) & ~7
    read_exactly(sock, padded)
    return fixed[1], read_exactly(sock, body_length)


def read_exactly(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray()
    while len(buffer) < size:
        chunk = sock.recv(min(size - len(buffer), 1 << 20))
        if not chunk:
            raise ConnectionError(f"closed after {len(buffer)} of {size} bytes")
        buffer += chunk
    return bytes(buffer)


def hello(sock: socket.socket) -> str:
    authenticate(sock)
    call = Message(
        destination="org.freedesktop.DBus", path="/org/freedesktop/DBus", interface="org.freedesktop.DBus",
        member="Hello", serial=1,
    )  # fmt: skip
    sock.sendall(call._marshall(False))
    while True:
        kind, body = read_message(sock)
        if kind == 2:  # METHOD_RETURN: the body is one string
            (length,) = struct.unpack("<I", body[:4])
            return body[4 : 4 + length].decode()


def flood(sock: socket.socket, count: int, size: int, pause: float) -> dict[str, object]:
    name = hello(sock)
    payload = "x" * size
    began = time.monotonic()
    for serial in range(2, count + 2):
        call = Message(
            destination=name, path="/", interface="org.fleetbus.Flood", member="Take", signature="s",
            body=[payload], serial=serial, flags=MessageFlag.NO_REPLY_EXPECTED,
        )  # fmt: skip
        sock.sendall(call._marshall(False))
    sent = time.monotonic() - began
    print(json.dumps({"sent": count, "seconds": round(sent, 3)}), flush=True)
    time.sleep(pause)
    received = 0
    while received < count:
        kind, body = read_message(sock)
        if kind == 1 and len(body) >= size:  # a METHOD_CALL: one of ours, back from the bus
            received += 1
    return {"received": received, "seconds": round(time.monotonic() - began, 3)}


def main() -> None:
    path, mode, *args = sys.argv[1:]
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(READ_TIMEOUT)
    try:
        sock.connect(path)
        if mode == "hello":
            result: dict[str, object] = {"unique_name": hello(sock)}
        elif mode == "flood":
            result = flood(sock, int(args[0]), int(args[1]), float(args[2]))
        else:
            raise SystemExit(f"unknown mode {mode!r}")
    except (OSError, ConnectionError) as exc:
        result = {"error": f"{type(exc).__name__}: {exc}"}
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
