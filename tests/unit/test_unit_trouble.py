"""Judging units from systemd's properties: since when a unit is in a transition, whether that is stuck, and
whether systemd restarted it on its own recently. Property values as systemd 252 reports them (usec)."""

from __future__ import annotations

from typing import Any

from fleetbus.tools.unit_trouble import RECENT_RESTART_S, Moment, restarted, stuck, unsettled_since

S = 1_000_000
BOOT_REALTIME = 1_796_162_535 * S


def stamps(**monotonic_s: float) -> dict[str, Any]:
    """Unit properties with each named timestamp at that many seconds after boot (both clocks)."""
    props: dict[str, Any] = {}
    for name, seconds in monotonic_s.items():
        props[f"{name}Monotonic"] = int(seconds * S)
        props[name] = BOOT_REALTIME + int(seconds * S)
    return props


def test_activating_from_inactive_dates_from_leaving_inactive() -> None:
    # Started at 100 s; start-pre then start: the last state change (130 s) is not when the start began.
    props = stamps(InactiveExitTimestamp=100, StateChangeTimestamp=130, ActiveExitTimestamp=40)
    assert unsettled_since("activating", props) == Moment(100 * S, BOOT_REALTIME + 100 * S)


def test_activating_after_being_active_dates_from_leaving_active() -> None:
    props = stamps(InactiveExitTimestamp=10, ActiveExitTimestamp=500, StateChangeTimestamp=505)
    assert unsettled_since("activating", props) == Moment(500 * S, BOOT_REALTIME + 500 * S)


def test_deactivating_straight_from_activating_counts_the_whole_transition() -> None:
    # Stopped while starting: neither exit stamp moves, so the transition began when it left inactive.
    props = stamps(InactiveExitTimestamp=200, ActiveExitTimestamp=50, StateChangeTimestamp=260)
    assert unsettled_since("deactivating", props) == Moment(200 * S, BOOT_REALTIME + 200 * S)


def test_reloading_dates_from_its_last_state_change() -> None:
    props = stamps(InactiveExitTimestamp=10, ActiveExitTimestamp=0, StateChangeTimestamp=700)
    assert unsettled_since("reloading", props) == Moment(700 * S, BOOT_REALTIME + 700 * S)


def test_a_unit_that_never_changed_state_has_no_date() -> None:
    assert unsettled_since("activating", {}) is None


def test_stuck_past_the_threshold() -> None:
    props = stamps(InactiveExitTimestamp=100, StateChangeTimestamp=100)
    found = stuck("db.service", "activating", "start", props, now_usec=400 * S, threshold_s=60)
    assert found is not None
    assert (found.unit, found.state, found.sub, found.seconds) == ("db.service", "activating", "start", 300.0)
    assert stuck("db.service", "activating", "start", props, now_usec=150 * S, threshold_s=60) is None


def test_settled_units_and_pending_restarts_are_not_stuck() -> None:
    props = stamps(InactiveExitTimestamp=100, StateChangeTimestamp=100)
    assert stuck("web.service", "active", "running", props, now_usec=10_000 * S, threshold_s=60) is None
    # Waiting RestartSec= to restart is `activating (auto-restart)`: a restart, not a hang.
    assert stuck("web.service", "activating", "auto-restart", props, now_usec=10_000 * S, threshold_s=60) is None
    # A device seen by the kernel but not by udev stays `activating (tentative)` with no job running.
    assert stuck("dev-vda.device", "activating", "tentative", props, now_usec=10_000 * S, threshold_s=60) is None


def service(restarts: int, started_s: float) -> dict[str, Any]:
    return {"NRestarts": restarts, **stamps(ExecMainStartTimestamp=started_s)}


def test_a_unit_restarted_by_systemd_recently_is_named_while_active() -> None:
    found = restarted("worker.service", "running", service(restarts=4, started_s=1000), now_usec=1003 * S)
    assert found is not None
    assert (found.restarts, found.last_restart_s, found.waiting) == (4, 3.0, False)


def test_an_old_restart_is_not_news() -> None:
    now = (1000 + RECENT_RESTART_S + 1) * S
    assert restarted("worker.service", "running", service(restarts=4, started_s=1000), now_usec=now) is None


def test_a_unit_started_by_hand_has_no_restarts_to_report() -> None:
    # A manual start resets NRestarts: its main process start is not a restart.
    assert restarted("worker.service", "running", service(restarts=0, started_s=1000), now_usec=1001 * S) is None


def test_a_unit_waiting_to_restart_is_named_even_before_its_first_restart() -> None:
    found = restarted("worker.service", "auto-restart", service(restarts=0, started_s=1000), now_usec=1001 * S)
    assert found is not None
    assert (found.restarts, found.last_restart_s, found.waiting) == (0, None, True)
