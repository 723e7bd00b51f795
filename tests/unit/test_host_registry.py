"""The host registry's pure parts: which hosts exist and which patterns select them, backoff with jitter, and
what binds to a host (cursors, rate-limit buckets, the `host` argument every host-bound tool gets)."""

from __future__ import annotations

import pytest

from fleetbus import output
from fleetbus.guard.limits import Budget, RateLimited, RateLimiter
from fleetbus.guard.policy import OperationPattern
from fleetbus.hosts.inventory import parse_inventory
from fleetbus.hosts.registry import Backoff, HostRegistry, UnknownHost
from fleetbus.tools.registry import Annotations, ToolSpec, with_host_argument

INVENTORY = """
[web]
web01 ansible_host=10.0.0.1
web02 ansible_host=10.0.0.2
web03 ansible_host=10.0.0.3

[db]
db01 ansible_host=10.0.1.1
"""


def registry(max_connected: int = 64) -> HostRegistry:
    inventory = parse_inventory(INVENTORY, inventory_format="ini", source="test.ini")
    return HostRegistry(inventory, addresses={"system": "unix:path=/nonexistent"}, connect_timeout=1,
                        max_connected=max_connected)  # fmt: skip


def test_local_is_a_host_like_any_other_and_first() -> None:
    hosts = registry()
    assert hosts.names() == ["local", "web01", "web02", "web03", "db01"]
    assert hosts.get("local").is_local
    assert not hosts.get("web01").is_local
    assert hosts.get("web01") is hosts.get("web01")  # one Host (and so one connection) per name
    assert hosts.get("web01").buses == ("system", "session")
    assert hosts.connections_made == 0


def test_an_unknown_host_names_the_closest_ones() -> None:
    with pytest.raises(UnknownHost) as refused:
        registry().get("web4")
    message = str(refused.value)
    assert message.startswith("unknown host 'web4' (argument 'host'); did you mean")
    assert "web01" in message
    assert "list_hosts" in message


def test_patterns_select_as_ansible_does_and_local_only_by_name() -> None:
    hosts = registry()
    assert hosts.select("web:!web02") == ["web01", "web03"]
    assert hosts.select(["web", "!web02"]) == ["web01", "web03"]
    assert hosts.select("all") == ["web01", "web02", "web03", "db01"]
    assert hosts.select("local,db") == ["local", "db01"]
    assert hosts.matches(("all:&web",), "web02")
    assert not hosts.matches(("all:&web",), "db01")
    assert hosts.matches(("web[0:1]",), "web02")
    assert not hosts.matches(("web[0:1]",), "web03")
    assert hosts.matches(("web", "!web02"), "web01")
    assert not hosts.matches(("web", "!web02"), "web02")
    assert not hosts.matches(("web",), "local")
    assert hosts.matches(("*",), "local")
    assert hosts.matches(("local",), "local")
    assert not hosts.matches(("~web.*",), "web01")  # no regex from clients: it selects nothing


def test_backoff_doubles_up_to_its_ceiling_with_jitter() -> None:
    backoff = Backoff(first=0.5, most=8.0, jitter=0.3)
    for attempt, base in enumerate([0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]):
        delays = [backoff.delay(attempt) for _ in range(200)]
        assert all(base * 0.7 <= d <= base * 1.3 for d in delays)
        assert max(delays) - min(delays) > base * 0.1  # jitter spreads hosts dropped together


def test_rate_limit_buckets_are_per_client_and_host() -> None:
    limiter = RateLimiter(Budget(0.001, 1), Budget(0.001, 1), clock=lambda: 0.0)
    limiter.check("alice", True, "web01")
    with pytest.raises(RateLimited, match="reads on web01"):
        limiter.check("alice", True, "web01")
    limiter.check("alice", True, "web02")
    limiter.check("bob", True, "web01")


def test_a_cursor_is_bound_to_its_host() -> None:
    query = {"pattern": "*.service"}
    token = output.encode_cursor("list_units", query, {"after": "a"}, host="web01")
    assert output.decode_cursor(token, "list_units", query, host="web01") == {"after": "a"}
    with pytest.raises(output.CursorError, match="host 'web01', not 'web02'"):
        output.decode_cursor(token, "list_units", query, host="web02")
    bound = output.CURSOR_HOST.set("web02")
    try:
        with pytest.raises(output.CursorError):
            output.decode_cursor(token, "list_units", query)
    finally:
        output.CURSOR_HOST.reset(bound)


async def _handler(_ctx: object, _args: dict[str, object]) -> dict[str, object]:
    return {}


def test_every_host_bound_tool_gets_a_host_argument_and_others_do_not() -> None:
    schema = {"type": "object", "properties": {"unit": {"type": "string"}}}
    bound = ToolSpec("t", "T", "d", schema, None, Annotations(True, False, True), _handler,
                     operations=(OperationPattern(),))  # fmt: skip
    unbound = ToolSpec("u", "U", "d", schema, None, Annotations(True, False, True), _handler)
    assert with_host_argument(bound).input_schema["properties"]["host"]["default"] == "local"
    assert "host" not in with_host_argument(unbound).input_schema["properties"]
    assert "host" not in schema["properties"]  # the spec's own schema is left as it was


def test_a_token_pattern_list_is_evaluated_whole_not_item_by_item() -> None:
    # `fleetbus token mint --hosts '*,!web02'` stores ["*", "!web02"]: the exclusion must hold.
    hosts = registry()
    assert not hosts.matches(("*", "!web02"), "web02")
    assert hosts.matches(("*", "!web02"), "web01")
    assert hosts.matches(("*", "!web02"), "local")
    assert not hosts.matches(("*", "!local"), "local")
    assert not hosts.matches(("web02", "!web02"), "web02")
    assert not hosts.matches(("web02", "&web01"), "web02")
    assert hosts.matches(("local,db",), "local")
