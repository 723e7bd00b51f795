"""Where fleetbus listens: parsing `--listen`, binding TCP and unix sockets (a unix socket bound by us, private
before anyone can connect), and naming a socket as the URL clients use."""

from __future__ import annotations

import contextlib
import grp
import ipaddress
import os
import socket
from collections.abc import Iterator
from pathlib import Path

MCP_PATH = "/mcp"


class StartError(Exception):
    """fleetbus will not serve as asked (no tokens for HTTP, a socket in the way…); the message says what to do."""


def default_socket_path() -> Path:
    """/run/fleetbus/fleetbus.sock for root (what fleetbus.socket listens on), else in $XDG_RUNTIME_DIR."""
    if os.geteuid() == 0:
        return Path("/run/fleetbus/fleetbus.sock")
    runtime_dir = os.environ.get("XDG_RUNTIME_DIR") or f"/run/user/{os.geteuid()}"
    return Path(runtime_dir) / "fleetbus" / "fleetbus.sock"


def parse_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise StartError(f"--listen {listen!r}: expected HOST:PORT, e.g. 127.0.0.1:8765 or [::1]:8765")
    return host.strip("[]"), int(port)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_tcp(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # Say IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose protocol says TCP, and without it
    # every small SSE write waits for a delayed ACK (44 ms per call, measured).
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise StartError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    return sock


@contextlib.contextmanager
def bound_unix_socket(path: Path, group: str | None) -> Iterator[socket.socket]:
    """The socket, bound by us with the mode set before anyone can connect (uvicorn's `uds=` would make it 0666)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
    if path.is_socket() or path.exists():
        if not path.is_socket():
            raise StartError(f"{path} exists and is not a socket; refusing to replace it")
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(path))
        except OSError:
            path.unlink()  # a stale socket of a server that is gone
        else:
            raise StartError(f"another server is listening on {path}")
        finally:
            probe.close()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # umask closes the window between bind() and chmod() in which the socket would have default permissions.
    old_umask = os.umask(0o177)
    try:
        sock.bind(str(path))
    finally:
        os.umask(old_umask)
    mode = 0o600
    if group is not None:
        try:
            os.chown(path, -1, grp.getgrnam(group).gr_gid)
        except KeyError:
            sock.close()
            path.unlink()
            raise StartError(f"socket_group {group!r}: no such group") from None
        mode = 0o660
    os.chmod(path, mode)
    sock.listen(128)
    inode = path.stat().st_ino
    try:
        yield sock
    finally:
        sock.close()
        # Only remove it if it is still ours: a newer server may have replaced it.
        with contextlib.suppress(OSError):
            if path.stat().st_ino == inode:
                path.unlink()


def describe(sock: socket.socket) -> str:
    """The MCP URL of a listening socket, as a client would write it."""
    address = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"http+unix://{address or '(unnamed)'}{MCP_PATH}"
    return f"http://{url_host(str(address[0]), int(address[1]))}{MCP_PATH}"
