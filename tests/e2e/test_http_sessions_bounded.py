"""HTTP sessions are bounded per token and in total: real HTTP clients opening 10× the caps leave at most the
caps open (the idlest evicted first, their ids answering 404 so a client initializes again), and the server's
memory does not grow with the sessions opened."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import AsyncExitStack
from pathlib import Path

import httpx2
import pytest

from fleetbus.sandbox import Sandbox
from tests.e2e.serving import INITIALIZE, Served, http_server, mint
from tests.resources_used import MiB, rss

pytestmark = pytest.mark.sandbox

TOTAL = 40
PER_TOKEN = 8
TOKENS = 5
HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
PING = {"jsonrpc": "2.0", "id": 7, "method": "ping"}


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sessions") / "state"


@pytest.fixture(scope="module")
def tokens(sandbox: Sandbox, state: Path) -> list[str]:
    return [mint(sandbox, state, f"sessions-{index}", "read") for index in range(TOKENS)]


@pytest.fixture(scope="module")
def server(sandbox: Sandbox, state: Path, tokens: list[str]) -> Iterator[Served]:
    with http_server(sandbox, state, http_sessions_max=str(TOTAL), http_sessions_per_client=str(PER_TOKEN)) as served:
        yield served
    assert served.returncode == 0, served.output()


async def open_session(http: httpx2.AsyncClient, url: str, token: str) -> str:
    response = await http.post(url, json=INITIALIZE, headers={**HEADERS, "authorization": f"Bearer {token}"})
    assert response.status_code == 200, response.text
    return response.headers["mcp-session-id"]


async def ping(http: httpx2.AsyncClient, url: str, token: str, session: str) -> int:
    headers = {
        **HEADERS,
        "authorization": f"Bearer {token}",
        "mcp-session-id": session,
        "mcp-protocol-version": "2025-06-18",
    }
    return (await http.post(url, json=PING, headers=headers)).status_code


async def test_ten_times_the_caps_leave_the_caps_open(server: Served, tokens: list[str]) -> None:
    async with httpx2.AsyncClient(timeout=60, limits=httpx2.Limits(max_connections=16)) as http:
        warm = [await open_session(http, server.url, tokens[0]) for _ in range(PER_TOKEN)]
        opened: dict[str, list[str]] = {token: [] for token in tokens}
        rounds = 10 * TOTAL // TOKENS  # 80 per token: 10× the per-token cap, 400 in all: 10× the total
        marks = []
        for index in range(rounds):
            if index in (rounds // 2, rounds - 1):
                marks.append(rss(server.process.pid))
            ids = await asyncio.gather(*(open_session(http, server.url, token) for token in tokens))
            for token, session in zip(tokens, ids, strict=True):
                opened[token].append(session)
        # The first half fills the caps and warms the allocator; the second half must cost nothing more.
        before, after = marks

        live: dict[str, list[str]] = {}
        for token, sessions in opened.items():
            statuses = await asyncio.gather(*(ping(http, server.url, token, s) for s in sessions))
            assert set(statuses) <= {200, 404}, statuses
            live[token] = [s for s, status in zip(sessions, statuses, strict=True) if status == 200]
        assert sum(len(sessions) for sessions in live.values()) <= TOTAL
        for token, sessions in live.items():
            assert 1 <= len(sessions) <= PER_TOKEN
            # Least recently used first out: what is left is that token's newest sessions.
            assert sessions == opened[token][-len(sessions) :]
        assert [await ping(http, server.url, tokens[0], s) for s in warm] == [404] * len(warm)

        # An evicted client initializes again and is served.
        again = await open_session(http, server.url, tokens[0])
        assert await ping(http, server.url, tokens[0], again) == 200
    print(f"server RSS {before / MiB:.1f} -> {after / MiB:.1f} MiB over the second {TOKENS * rounds // 2} sessions")
    # 200 more sessions kept would cost ~9 MB (~46 kB each); at the caps they replace others.
    assert after - before <= 6 * MiB, f"server RSS grew {(after - before) / MiB:.1f} MiB"


async def test_a_busy_session_is_not_evicted(server: Served, tokens: list[str]) -> None:
    """A session with a request in flight (an open GET stream) is in use: eviction passes it over."""
    token = tokens[1]
    async with httpx2.AsyncClient(timeout=60, limits=httpx2.Limits(max_connections=16)) as http:
        streaming = await open_session(http, server.url, token)
        headers = {
            "accept": "text/event-stream",
            "authorization": f"Bearer {token}",
            "mcp-session-id": streaming,
            "mcp-protocol-version": "2025-06-18",
        }
        async with http.stream("GET", server.url, headers=headers) as stream:
            assert stream.status_code == 200
            for _ in range(3 * PER_TOKEN):
                await open_session(http, server.url, token)
            assert await ping(http, server.url, token, streaming) == 200


async def test_when_every_session_of_a_token_is_busy_a_new_one_gets_503(server: Served, tokens: list[str]) -> None:
    token = tokens[2]
    async with (
        httpx2.AsyncClient(timeout=60, limits=httpx2.Limits(max_connections=32)) as http,
        AsyncExitStack() as stack,
    ):
        for _ in range(PER_TOKEN):
            session = await open_session(http, server.url, token)
            headers = {
                "accept": "text/event-stream",
                "authorization": f"Bearer {token}",
                "mcp-session-id": session,
                "mcp-protocol-version": "2025-06-18",
            }
            stream = await stack.enter_async_context(http.stream("GET", server.url, headers=headers))
            assert stream.status_code == 200
        refused = await http.post(server.url, json=INITIALIZE, headers={**HEADERS, "authorization": f"Bearer {token}"})
        assert refused.status_code == 503
        assert f"{PER_TOKEN} per client" in refused.json()["error"]["message"]
