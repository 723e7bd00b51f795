"""Batches and failure limits against the examples Ansible documents (playbooks_strategies, error handling)."""

from __future__ import annotations

import pytest

from fleetbus.tools.fanout.batches import (
    BatchError,
    FailureLimit,
    batch_size,
    parse_max_failures,
    parse_serial,
    plan_batches,
)


def hosts(n: int) -> list[str]:
    return [f"h{i:03d}" for i in range(1, n + 1)]


def sizes(n: int, serial: object) -> list[int]:
    return [len(batch) for batch in plan_batches(hosts(n), parse_serial(serial))]


def test_a_number() -> None:
    # "serial: 3" on 6 hosts: two batches of three.
    assert sizes(6, 3) == [3, 3]
    # "If the number of hosts does not divide equally into the number of passes, the final pass contains the
    # remainder."
    assert sizes(7, 3) == [3, 3, 1]


def test_a_percentage_of_all_hosts_floored() -> None:
    # "serial: 30%" on 20 hosts: 6 per pass (int(0.3 * 20)), the last pass the remainder.
    assert sizes(20, "30%") == [6, 6, 6, 2]
    # Floors, with at least one host: 10% of 5 hosts is 0.5 → 1.
    assert sizes(5, "10%") == [1, 1, 1, 1, 1]
    assert batch_size("12%", 60) == 7  # int(7.2)
    assert batch_size("0%", 10) == 1


def test_a_list_whose_last_item_repeats() -> None:
    # Ansible's example: serial [1, 5, 10] — 1 host, then 5, then 10 at a time until none is left.
    assert sizes(30, [1, 5, 10]) == [1, 5, 10, 10, 4]
    # Mixed: [1, 5, "20%"] on 100 hosts: 1, 5, then 20 (of all 100, not of the 94 left).
    assert sizes(100, [1, 5, "20%"]) == [1, 5, 20, 20, 20, 20, 14]
    # The canary shape of the issue: host01 alone, then two, then the rest.
    assert plan_batches(hosts(5), parse_serial([1, 2, "100%"])) == [["h001"], ["h002", "h003"], ["h004", "h005"]]


def test_batches_keep_host_order_and_lose_no_host() -> None:
    batches = plan_batches(hosts(17), parse_serial([2, "25%"]))
    assert [h for batch in batches for h in batch] == hosts(17)


def test_more_than_all_is_all() -> None:
    assert sizes(3, 10) == [3]
    assert sizes(3, "150%") == [3]
    assert plan_batches([], parse_serial(5)) == []


@pytest.mark.parametrize("bad", [0, -1, [], [1, 0], "x", "12.5%", True, None, [1, "ten"]])
def test_bad_batches_are_refused_naming_the_argument(bad: object) -> None:
    with pytest.raises(BatchError, match="'batches'"):
        parse_serial(bad)


def test_parse_keeps_numbers_and_whole_percentages() -> None:
    assert parse_serial([1, "2", " 50 % ", "100%"]) == (1, 2, "50%", "100%")


def test_max_fail_percentage_must_be_exceeded_not_reached() -> None:
    # Ansible: "if serial were set to 4 and you wanted the task to abort the play when 2 of the systems failed,
    # set the max_fail_percentage at 49 rather than 50."
    at_50 = parse_max_failures("50%")
    assert not at_50.exceeded(2, 4)
    assert at_50.exceeded(3, 4)
    at_49 = parse_max_failures("49%")
    assert at_49.exceeded(2, 4)
    assert not at_49.exceeded(1, 4)
    # "max_fail_percentage: 30 … if more than 3 of the 10 servers in the first batch fail, the rest of the play
    # is aborted."
    assert not parse_max_failures("30%").exceeded(3, 10)
    assert parse_max_failures("30%").exceeded(4, 10)


def test_a_count_and_the_default() -> None:
    assert parse_max_failures(None) == FailureLimit(count=0)
    assert parse_max_failures(None).exceeded(1, 5)
    assert not parse_max_failures(None).exceeded(0, 5)
    assert not parse_max_failures(2).exceeded(2, 10)
    assert parse_max_failures(2).exceeded(3, 10)
    assert parse_max_failures("2") == FailureLimit(count=2)


def test_a_batch_that_failed_entirely_always_stops() -> None:
    assert parse_max_failures("100%").exceeded(1, 1)
    assert parse_max_failures(5).exceeded(3, 3)


@pytest.mark.parametrize("bad", [-1, "101%", "many", True, 1.5])
def test_bad_limits_are_refused_naming_the_argument(bad: object) -> None:
    with pytest.raises(BatchError, match="'max_failures'"):
        parse_max_failures(bad)
