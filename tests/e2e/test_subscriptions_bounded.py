"""resources/subscribe holds only URIs this server serves, at most so many per session: 1,000 subscribe attempts
of 100 kB each are refused with an error naming the argument, and the server's memory does not grow with them
(they used to be kept for ever: 83 → 288 MB)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mcp.shared.exceptions import MCPError

from fleetbus.sandbox import Sandbox
from tests.e2e.serving import Served, http_client, http_server
from tests.resources_used import MiB, rss

pytestmark = pytest.mark.sandbox

PER_SESSION = 8
SERVICES = "dbus://system/services"


@pytest.fixture(scope="module")
def server(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    state = tmp_path_factory.mktemp("subscriptions") / "state"
    with http_server(
        sandbox, state, "--insecure-no-auth", resource_subscriptions_per_session=str(PER_SESSION)
    ) as served:
        yield served
    assert served.returncode == 0, served.output()


async def test_a_thousand_huge_uris_are_refused_and_cost_nothing(server: Served) -> None:
    async with http_client(server.url) as client:
        for index in range(20):  # warm up
            with pytest.raises(MCPError):
                await client.session.subscribe_resource(f"dbus://system/{index}" + "x" * 100_000)
        before = rss(server.process.pid)
        for index in range(1000):
            uri = f"dbus://system/{index}/" + "x" * 100_000
            with pytest.raises(MCPError) as refused:
                await client.session.subscribe_resource(uri)
            assert "uri:" in refused.value.error.message
            assert "1024" in refused.value.error.message
        after = rss(server.process.pid)
        await client.session.subscribe_resource(SERVICES)  # the session still works
    print(f"server RSS {before / MiB:.1f} -> {after / MiB:.1f} MiB over 1,000 × 100 kB subscribe attempts")
    assert after - before <= 8 * MiB, f"server RSS grew {(after - before) / MiB:.1f} MiB"


@pytest.mark.parametrize(
    "uri",
    [
        "http://example.com/x",
        "dbus://nosuchbus/services",
        "dbus://system/not a name/x",
        "dbus://system/org.freedesktop.hostname1/bad//path",
        "file:///etc/passwd",
    ],
)
async def test_a_uri_the_server_does_not_serve_is_refused(server: Served, uri: str) -> None:
    async with http_client(server.url) as client:
        with pytest.raises(MCPError) as refused:
            await client.session.subscribe_resource(uri)
        assert "is not a resource this server serves" in refused.value.error.message


async def test_ten_times_the_per_session_cap(server: Served) -> None:
    uris = [f"dbus://system/org.freedesktop.hostname1/obj/n{index}" for index in range(10 * PER_SESSION)]
    async with http_client(server.url) as client:
        for uri in uris[:PER_SESSION]:
            await client.session.subscribe_resource(uri)
        for uri in uris[PER_SESSION:]:
            with pytest.raises(MCPError, match="the most it may"):
                await client.session.subscribe_resource(uri)
        # Subscribing again to one held is no new subscription; unsubscribing makes room.
        await client.session.subscribe_resource(uris[0])
        await client.session.unsubscribe_resource(uris[0])
        await client.session.subscribe_resource(SERVICES)
    async with http_client(server.url) as again:
        for uri in uris[:PER_SESSION]:  # a new session starts with none
            await again.session.subscribe_resource(uri)
