"""asyncio reports each failed accept (out of fds) through the loop's exception handler; fleetbus logs them once
per interval with a count, and leaves every other report to the handler that was there."""

from __future__ import annotations

import asyncio
import errno
import logging

import pytest

from fleetbus.server.connections import ACCEPT_ERROR, RateLimitedLog, quiet_accept_errors


async def test_a_thousand_accept_errors_make_one_line(caplog: pytest.LogCaptureFixture) -> None:
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()
    others: list[dict[str, object]] = []
    loop.set_exception_handler(lambda _, context: others.append(context))
    try:
        limited = quiet_accept_errors(loop, interval=60)
        with caplog.at_level(logging.WARNING, logger="fleetbus.server.accept"):
            for _ in range(1000):
                loop.call_exception_handler(
                    {"message": f"{ACCEPT_ERROR}: retrying", "exception": OSError(errno.EMFILE, "Too many open files")}
                )
            loop.call_exception_handler({"message": "something else"})
    finally:
        loop.set_exception_handler(previous)
    accept_lines = [r for r in caplog.records if r.name == "fleetbus.server.accept"]
    assert len(accept_lines) == 1
    assert limited.lines == 1
    assert "Too many open files" in accept_lines[0].getMessage()
    assert [context["message"] for context in others] == ["something else"]


def test_the_next_line_counts_what_it_left_out(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    limited = RateLimitedLog(logging.getLogger("fleetbus.test"), interval=10, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="fleetbus.test"):
        for second in range(25):
            now[0] = float(second)
            limited.event("refusing %s", "x")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "refusing x (1× since the last such line; one line per 10 s)",
        "refusing x (10× since the last such line; one line per 10 s)",
        "refusing x (10× since the last such line; one line per 10 s)",
    ]
