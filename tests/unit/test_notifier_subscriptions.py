"""What a connection subscribed to is held per connection, capped, and let go when the connection's teardown runs
(the SDK unwinds each connection's exit stack when it closes)."""

from __future__ import annotations

import gc
from contextlib import AsyncExitStack

import pytest
from mcp.server.session import ServerSession

from fleetbus.server.notify import Notifier, SubscriptionLimit


class Connection:
    """What the notifier needs of the SDK's Connection: an exit stack unwound when it closes."""

    def __init__(self) -> None:
        self.exit_stack = AsyncExitStack()


def session_on(connection: Connection) -> ServerSession:
    # The SDK builds one ServerSession proxy per request around the connection; only `_connection` matters here.
    session = object.__new__(ServerSession)
    session._connection = connection  # type: ignore[assignment]
    return session


async def test_subscriptions_are_capped_per_connection_and_freed_with_it() -> None:
    notifier = Notifier(subscriptions_per_session=4)
    connection = Connection()
    other = Connection()
    for index in range(4):
        notifier.subscribe(session_on(connection), f"dbus://system/a.b/n{index}")
    notifier.subscribe(session_on(connection), "dbus://system/a.b/n0")  # already held: not a fifth
    with pytest.raises(SubscriptionLimit, match="4 resource subscriptions"):
        notifier.subscribe(session_on(connection), "dbus://system/a.b/n4")
    notifier.subscribe(session_on(other), "dbus://system/services")
    assert notifier.subscriptions() == 5

    await connection.exit_stack.aclose()
    assert notifier.subscriptions() == 1
    await other.exit_stack.aclose()
    assert notifier.subscriptions() == 0
    del connection, other
    gc.collect()
    assert len(notifier._sessions) == 0
