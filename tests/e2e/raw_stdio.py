"""`fleetbus serve` over stdio spoken to in raw frames: lines of bytes in, JSON-RPC answers out, each awaited with
a deadline — so a frame the server never answers is seen as such (an SDK client would just wait)."""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fleetbus.sandbox import Sandbox
from tests.e2e.client import ROOT, server_env

INITIALIZE = {
    "jsonrpc": "2.0",
    "id": "init",
    "method": "initialize",
    "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "1"}},
}


class Unanswered(AssertionError):
    """No answer came within the deadline."""


class RawServer:
    def __init__(self, process: subprocess.Popen[bytes], log: Path) -> None:
        self.process = process
        self.log = log
        self._answers: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.unparsable: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                self.unparsable.append(line)
                continue
            if isinstance(message, dict) and ("result" in message or "error" in message):
                self._answers.put(message)  # notifications and server requests are not answers
        self._answers.put(None)

    def send(self, frame: bytes) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(frame if frame.endswith(b"\n") else frame + b"\n")
        self.process.stdin.flush()

    def send_message(self, message: Any) -> None:
        self.send(json.dumps(message).encode())

    def answer(self, deadline: float = 10.0) -> dict[str, Any]:
        """The next answer, within `deadline` seconds."""
        try:
            message = self._answers.get(timeout=deadline)
        except queue.Empty:
            raise Unanswered(f"no answer within {deadline} s") from None
        if message is None:
            raise Unanswered(f"the server closed its output (exit {self.process.poll()}):\n{self.stderr()}")
        return message

    def request(self, message: dict[str, Any], deadline: float = 10.0) -> dict[str, Any]:
        self.send_message(message)
        answer = self.answer(deadline)
        assert answer.get("id") == message["id"], (message, answer)
        return answer

    def initialize(self) -> dict[str, Any]:
        answer = self.request(INITIALIZE, 60.0)
        self.send_message({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return answer

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")


@contextmanager
def raw_server(sandbox: Sandbox, state: Path, *args: str, **settings: str) -> Iterator[RawServer]:
    """A server on the sandbox (stderr in a log beside `state`); its stdin closed and the process waited for."""
    state.mkdir(parents=True, exist_ok=True)
    log = state.parent / "serve-stdio.log"
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "fleetbus", "serve", *args],
            env=server_env(sandbox, state_dir=str(state), **settings),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            cwd=ROOT,
        )
    server = RawServer(process, log)
    try:
        yield server
    finally:
        assert process.stdin is not None
        process.stdin.close()
        deadline = time.monotonic() + 30
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None:
            process.kill()
        process.wait(10)
        if process.stdout is not None:
            process.stdout.close()
