"""Every malformed stdio frame gets the JSON-RPC answer for it, within a deadline, and the session keeps working
after; a real `fleetbus serve` on the sandbox, spoken to in raw frames. HTTP answers the same frames alike."""

from __future__ import annotations

import time
from pathlib import Path

import httpx2
import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e.raw_stdio import raw_server
from tests.e2e.serving import INITIALIZE, http_server, mint
from tests.frame_cases import BAD_FRAMES

pytestmark = pytest.mark.sandbox
DEADLINE = 10.0
"""Generous for a loaded machine: an answer that does not come at all is what this catches."""


def test_every_bad_frame_is_answered_and_the_session_goes_on(sandbox: Sandbox, tmp_path: Path) -> None:
    with raw_server(sandbox, tmp_path / "state") as server:
        server.send(b"not json, before the handshake")
        early = server.answer(60.0)  # the first answer may wait for the server's start
        assert (early["id"], early["error"]["code"]) == (None, -32700)
        assert server.initialize()["result"]["serverInfo"]["name"] == "fleetbus"
        for number, (name, frame, code, request_id) in enumerate(BAD_FRAMES):
            started = time.monotonic()
            server.send(frame)
            answer = server.answer(DEADLINE)
            assert time.monotonic() - started < DEADLINE
            assert answer["jsonrpc"] == "2.0", name
            assert (answer["id"], answer["error"]["code"]) == (request_id, code), (name, answer)
            assert "id" in answer  # null, not absent
            pong = server.request({"jsonrpc": "2.0", "id": f"after-{number}", "method": "ping"}, DEADLINE)
            assert pong["result"] == {}, name
        listed = server.request({"jsonrpc": "2.0", "id": "list", "method": "tools/list"}, 60.0)
        assert any(tool["name"] == "get_property" for tool in listed["result"]["tools"])
        log = server.stderr()
    assert server.unparsable == []
    assert "a bad frame of 30 bytes answered with -32700" in log  # the first one; a flood is logged once a second
    assert "Traceback" not in log


def test_a_frame_over_the_limit_is_refused_unread_and_the_next_one_served(sandbox: Sandbox, tmp_path: Path) -> None:
    with raw_server(sandbox, tmp_path / "state", max_frame_bytes="65536") as server:
        server.initialize()
        server.send(b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"' + b"x" * 200_000 + b'"}}')
        answer = server.answer(DEADLINE)
        assert (answer["id"], answer["error"]["code"]) == (None, -32600)
        assert "at most 65536 bytes" in answer["error"]["message"]
        assert server.request({"jsonrpc": "2.0", "id": 2, "method": "ping"}, DEADLINE)["result"] == {}


def test_http_answers_the_same_frames_alike(sandbox: Sandbox, tmp_path: Path) -> None:
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    differences = []
    with (
        http_server(sandbox, tmp_path / "state", "--insecure-no-auth") as served,
        httpx2.Client(headers=headers, timeout=30) as http,
    ):
        opened = http.post(served.url, json=INITIALIZE)
        assert opened.status_code == 200, opened.text
        session = {"mcp-session-id": opened.headers["mcp-session-id"], "mcp-protocol-version": "2025-06-18"}
        for name, frame, code, request_id in BAD_FRAMES:
            answer = http.post(served.url, content=frame, headers=session)
            body = answer.json() if answer.status_code != 202 else None
            got = (body["id"], body["error"]["code"]) if body else "202 Accepted, no answer"
            if got != (request_id, code):
                differences.append((name, got))
    assert differences == []


def test_over_http_with_tokens_only_an_authenticated_body_is_read(sandbox: Sandbox, tmp_path: Path) -> None:
    state = tmp_path / "state"
    token = mint(sandbox, state, "frames", "read")
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    with http_server(sandbox, state) as served, httpx2.Client(headers=headers, timeout=30) as http:
        anonymous = http.post(served.url, content=b"[not json")
        assert anonymous.status_code == 401
        opened = http.post(served.url, json=INITIALIZE, headers={"authorization": f"Bearer {token}"})
        assert opened.status_code == 200, opened.text
        session = {
            "authorization": f"Bearer {token}",
            "mcp-session-id": opened.headers["mcp-session-id"],
            "mcp-protocol-version": "2025-06-18",
        }
        answer = http.post(served.url, content=b"[not json", headers=session)
    assert answer.status_code == 400
    assert (answer.json()["id"], answer.json()["error"]["code"]) == (None, -32700)
