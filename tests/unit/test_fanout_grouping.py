"""Host ranges folded as ClusterShell prints them, volatile fields ignored, identical answers merged."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetbus.tools.fanout.engine import Outcome
from fleetbus.tools.fanout.grouping import (
    compress_hosts,
    expand_folded,
    group_outcomes,
    volatile_paths,
    without_volatile,
)
from fleetbus.tools.fanout.tools import VOLATILE_FIELDS


def test_a_padded_run_with_a_gap() -> None:
    assert compress_hosts(["host01", "host02", "host03", "host05"]) == "host[01-03,05]"


def test_forty_web_servers_fold_to_one_range() -> None:
    assert compress_hosts([f"web{n:02d}" for n in range(1, 41)]) == "web[01-40]"


def test_unpadded_numbers_cross_a_digit_boundary() -> None:
    assert compress_hosts(["node9", "node10", "node11"]) == "node[9-11]"


def test_padding_is_never_mixed() -> None:
    # `07` and `7` are different hosts; `09` runs on into `10` (same width).
    assert compress_hosts(["n7", "n07", "n08", "n09", "n10"]) == "n[07-10,7]"


def test_several_numeric_segments_fold_last_first() -> None:
    names = [f"rack{r}-n{n:02d}" for r in (1, 2) for n in range(1, 5)]
    assert compress_hosts(names) == "rack[1-2]-n[01-04]"


def test_an_uneven_grid_keeps_what_differs() -> None:
    names = ["rack1-n01", "rack1-n02", "rack2-n01"]
    assert compress_hosts(names) == "rack1-n[01-02],rack2-n01"


def test_names_without_numbers_and_mixed_names() -> None:
    names = ["db-primary", "web2", "web1", "db-replica", "10.0.0.1", "10.0.0.2"]
    assert compress_hosts(names) == "10.0.0.[1-2],db-primary,db-replica,web[1-2]"


def test_one_host_and_none() -> None:
    assert compress_hosts(["host04"]) == "host04"
    assert compress_hosts([]) == ""


names = st.lists(
    st.builds(
        lambda prefix, number, pad, suffix: f"{prefix}{str(number).zfill(pad)}{suffix}",
        st.sampled_from(["web", "db-", "rack1-n", "x"]),
        st.integers(0, 120),
        st.sampled_from([0, 2, 3]),
        st.sampled_from(["", ".lan", "-b"]),
    ),
    max_size=40,
)


@given(names)
def test_folding_loses_and_invents_no_host(hosts: list[str]) -> None:
    folded = compress_hosts(hosts)
    assert sorted(expand_folded(folded)) == sorted(set(hosts))


def test_volatile_paths_with_globs_and_any_depth() -> None:
    value = {
        "unit": "worker.service",
        "since": "2026-12-02T01:00:00Z",
        "main_pid": 412,
        "units": [{"name": "a", "pid": 1}, {"name": "b", "pid": 2}],
        "deep": {"x": {"timestamp": 5}},
    }
    found = volatile_paths(value, ["since", "units.*.pid", "**.timestamp", "main_*"])
    assert found == {
        "since": value["since"],
        "units.0.pid": 1,
        "units.1.pid": 2,
        "deep.x.timestamp": 5,
        "main_pid": 412,
    }
    assert without_volatile(value, ["since", "units.*.pid", "**.timestamp", "main_*"]) == {
        "unit": "worker.service",
        "units": [{"name": "a"}, {"name": "b"}],
        "deep": {"x": {}},
    }
    assert without_volatile(value, []) is value


def _ok(host: str, state: str, pid: int) -> Outcome[dict[str, object]]:
    return Outcome(host, value={"active": state, "main_pid": pid})


def test_identical_answers_merge_largest_first_and_outliers_stay_visible() -> None:
    outcomes = [
        _ok("host01", "active", 100),
        _ok("host02", "active", 200),
        _ok("host03", "active", 300),
        _ok("host04", "failed", 0),
        _ok("host05", "active", 500),
        Outcome("host06", kind="unreachable", message="connection refused"),
        Outcome("host07", kind="unreachable", message="connection refused"),
        Outcome("host08", kind="timeout", message="no answer within 5 s"),
    ]
    grouped = group_outcomes(outcomes, volatile=["main_pid"])
    assert [g.row() for g in grouped.answers] == [
        {"hosts": "host[01-03,05]", "count": 4, "answer": {"active": "active"}},
        # A group of one is shown whole: the outlier keeps every field it answered.
        {"hosts": "host04", "count": 1, "answer": {"active": "failed", "main_pid": 0}},
    ]
    assert [g.row() for g in grouped.failures] == [
        {"hosts": "host[06-07]", "count": 2, "kind": "unreachable", "message": "connection refused"},
        {"hosts": "host08", "count": 1, "kind": "timeout", "message": "no answer within 5 s"},
    ]
    assert grouped.varying == []


def test_volatile_fields_shown_per_host_only_when_asked() -> None:
    outcomes = [_ok("a1", "active", 1), _ok("a2", "active", 2)]
    grouped = group_outcomes(outcomes, volatile=["main_pid"], show_varying=True)
    assert len(grouped.answers) == 1
    assert grouped.varying == [
        {"host": "a1", "path": "main_pid", "value": 1},
        {"host": "a2", "path": "main_pid", "value": 2},
    ]


def test_without_declared_volatile_fields_every_difference_counts() -> None:
    grouped = group_outcomes([_ok("a1", "active", 1), _ok("a2", "active", 2)])
    assert [g.hosts for g in grouped.answers] == [["a1"], ["a2"]]


def test_health_answers_that_differ_only_in_a_pressure_figure_share_a_group() -> None:
    def health(load: float | None) -> dict[str, object]:
        pressure = [] if load is None else [{"what": "load per CPU (1 min)", "value": load, "threshold": 2.0}]
        return {"healthy": load is None, "failed_units": [], "hanging": [], "pressure": pressure,
                "load": {"1m": (load or 1.0) * 2}, "memory_used_percent": 3.1}  # fmt: skip

    outcomes = [Outcome("host01", health(4.57)), Outcome("host02", health(4.61)), Outcome("host03", health(None))]
    grouped = group_outcomes(outcomes, volatile=VOLATILE_FIELDS["health_check"], show_varying=True)
    assert [group.hosts for group in grouped.answers] == [["host01", "host02"], ["host03"]]
    assert {"host": "host02", "path": "pressure.0.value", "value": 4.61} in grouped.varying
