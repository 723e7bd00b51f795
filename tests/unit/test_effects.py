"""What a job does beyond the units it names, over unit graphs given as data: the units a stop takes down, the
units a start really starts, the units those starts stop through conflicts, and the hazards among them."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetbus.guard.catalog import Classification, Effect, Risk, UnitAction
from fleetbus.guard.effects import TAKES_DOWN, Effects, Hazard, UnitFacts, UnitGraph, apply_effects, explore, unjudged


def unit(unit_id: str, state: str = "active", *, names: tuple[str, ...] = (), **edges: Any) -> UnitFacts:
    actions = {k: str(v) for k, v in edges.items() if k.endswith("Action")}
    relations = {k: tuple(v) for k, v in edges.items() if not k.endswith("Action")}
    return UnitFacts(unit_id, (unit_id, *names), state, relations, actions)


def graph(*units: UnitFacts) -> UnitGraph:
    built = UnitGraph()
    for facts in units:
        built.add(facts)
    return built


def effects(g: UnitGraph, effect: Effect, *references: str) -> Effects:
    exploration = explore(g, references, effect)
    assert not exploration.missing, exploration.missing
    assert exploration.effects is not None
    return exploration.effects


# ---- stops --------------------------------------------------------------------------------------------------


def test_a_stop_takes_down_what_requires_the_unit_transitively() -> None:
    g = graph(
        unit("floor.target", RequiredBy=["precious.service"]),
        unit("precious.service", RequiredBy=["leaf.service"], Requires=["floor.target"]),
        unit("leaf.service", Requires=["precious.service"]),
    )
    stopped = effects(g, Effect.STOP, "floor.target")
    assert set(stopped.taken_down) == {"precious.service", "leaf.service"}
    assert stopped.named == ("floor.target",)


def test_every_relation_a_stop_propagates_along_is_followed() -> None:
    g = graph(
        unit("root.slice", SliceOf=["in-slice.service"], BoundBy=["bound.service"], ConsistsOf=["part.service"]),
        unit("in-slice.service", UpheldBy=["upholder.service"]),
        unit("bound.service", PropagatesStopTo=["propagated.service"]),
        unit("part.service"),
        unit("upholder.service"),
        unit("propagated.service"),
        unit("wanted-by.service", Wants=["root.slice"]),
    )
    stopped = effects(g, Effect.STOP, "root.slice")
    assert set(stopped.taken_down) == {
        "in-slice.service",
        "bound.service",
        "part.service",
        "upholder.service",
        "propagated.service",
    }
    assert set(TAKES_DOWN) >= {"RequiredBy", "BoundBy", "ConsistsOf", "UpheldBy", "SliceOf"}


def test_stopping_a_unit_whose_success_action_acts_is_a_hazard() -> None:
    g = graph(unit("ender.service", SuccessAction="poweroff"))
    assert effects(g, Effect.STOP, "ender.service").hazards == (
        Hazard("ender.service", "SuccessAction=poweroff", True),
    )


def test_a_stop_sets_off_on_success_units_and_their_hazards() -> None:
    g = graph(
        unit("worker.service", OnSuccess=["goodbye.target"]),
        unit("goodbye.target", "inactive", Requires=["poweroff.target"]),
        unit("poweroff.target", "inactive"),
    )
    stopped = effects(g, Effect.STOP, "worker.service")
    assert "poweroff.target" in stopped.started
    assert Hazard("poweroff.target", "a shutdown, reboot, sleep or exit unit", False) in stopped.hazards


def test_disabling_or_rewriting_takes_down_for_protection_only() -> None:
    g = graph(unit("base.service", RequiredBy=["dependent.service"], SuccessAction="reboot"), unit("dependent.service"))
    changed = effects(g, Effect.TAKE_DOWN, "base.service")
    assert changed.taken_down == ("dependent.service",)
    assert changed.hazards == ()  # nothing stops now


# ---- starts -------------------------------------------------------------------------------------------------


def test_a_start_that_reaches_exit_target_is_a_hazard_by_any_name() -> None:
    g = graph(
        unit("farewell.target", "inactive", Requires=["goodbye.target"]),
        unit("exit.target", "inactive", names=("goodbye.target",), Requires=["systemd-exit.service"]),
        unit("systemd-exit.service", "inactive", SuccessAction="exit-force"),
    )
    started = effects(g, Effect.START, "farewell.target")
    assert set(started.started) == {"farewell.target", "exit.target", "systemd-exit.service"}
    assert {h.why for h in started.hazards} == {"a shutdown, reboot, sleep or exit unit", "SuccessAction=exit-force"}


def test_a_start_pulls_in_through_the_units_it_starts_only() -> None:
    # systemd drops the jobs of units already up, and the jobs only they pulled in (as the sandbox shows).
    g = graph(
        unit("app.service", "inactive", Requires=["basic.target", "helper.socket"]),
        unit("basic.target", Wants=["stopped.socket"], FailureAction="reboot", OnFailure=["emergency.target"]),
        unit("stopped.socket", "inactive", FailureAction="reboot"),
        unit("helper.socket", "inactive", Triggers=["later.service"]),
        unit("later.service", "inactive", FailureAction="exit"),
        unit("emergency.target", "inactive"),
    )
    started = effects(g, Effect.START, "app.service")
    assert set(started.started) == {"app.service", "helper.socket", "later.service"}
    assert [h.unit for h in started.hazards] == ["later.service"]


def test_a_start_stops_the_running_units_it_conflicts_with_and_what_requires_them() -> None:
    g = graph(
        unit("rescue-ish.target", "inactive", Conflicts=["normal.target"]),
        unit("normal.target", RequiredBy=["precious.service"]),
        unit("precious.service", Requires=["normal.target"], ConflictedBy=["gone.target"]),
        unit("gone.target", "inactive"),
    )
    started = effects(g, Effect.START, "rescue-ish.target")
    assert set(started.taken_down) == {"normal.target", "precious.service"}


def test_an_inactive_conflicting_unit_is_not_taken_down() -> None:
    g = graph(unit("app.service", "inactive", Conflicts=["shutdown.target"]), unit("shutdown.target", "inactive"))
    assert effects(g, Effect.START, "app.service").taken_down == ()


def test_starting_a_running_unit_changes_nothing() -> None:
    g = graph(unit("up.service", SuccessAction="reboot", Conflicts=["other.service"]), unit("other.service"))
    started = effects(g, Effect.START, "up.service")
    assert (started.started, started.taken_down, started.hazards) == ((), (), ())


def test_a_restart_restarts_what_requires_the_unit_and_counts_their_hazards() -> None:
    g = graph(
        unit("db.service", RequiredBy=["app.service"]),
        unit("app.service", Requires=["db.service"], JobTimeoutAction="reboot-force"),
    )
    restarted = effects(g, Effect.RESTART, "db.service")
    assert restarted.taken_down == ("app.service",)
    assert set(restarted.started) == {"db.service", "app.service"}
    assert {(h.unit, h.stops) for h in restarted.hazards} == {("app.service", True), ("app.service", False)}


def test_a_default_target_is_judged_by_what_a_boot_would_start() -> None:
    g = graph(
        unit("multi-user.target", Wants=["local-fs.target", "updates.service"]),
        unit("local-fs.target", OnFailure=["emergency.target"]),
        unit("updates.service", SuccessAction="reboot"),
        unit("emergency.target", "inactive"),
    )
    booted = effects(g, Effect.BOOT, "multi-user.target")
    # A unit that might fail at some boot is not the call's doing; a unit that reboots when it succeeds is.
    assert "emergency.target" not in booted.started
    assert [h.why for h in booted.hazards] == ["SuccessAction=reboot"]


# ---- reading the graph as it is needed ----------------------------------------------------------------------


def test_explore_asks_for_the_units_it_needs_until_it_has_them_all() -> None:
    g = UnitGraph()
    first = explore(g, ["floor.target"], Effect.STOP)
    assert (first.missing, first.effects) == (frozenset({"floor.target"}), None)
    g.add(unit("floor.target", RequiredBy=["precious.service"]))
    second = explore(g, ["floor.target"], Effect.STOP)
    assert second.missing == {"precious.service"}
    g.add(unit("precious.service"))
    third = explore(g, ["floor.target"], Effect.STOP)
    assert third.effects is not None
    assert third.effects.taken_down == ("precious.service",)


def test_a_reference_systemd_does_not_know_is_judged_as_given() -> None:
    g = UnitGraph()
    g.add_unknown("self")
    judged = effects(g, Effect.STOP, "self")
    assert judged.named == ("self",)


def test_a_unit_found_under_a_path_or_alias_is_named_by_all_its_names() -> None:
    g = UnitGraph()
    g.add(unit("precious.service", names=("gem.service",)), "/org/freedesktop/systemd1/unit/0123abcd")
    judged = effects(g, Effect.STOP, "/org/freedesktop/systemd1/unit/0123abcd")
    assert judged.named == ("precious.service", "gem.service")


def test_there_is_no_count_limit() -> None:
    chain = [unit(f"u{i}.service", RequiredBy=[f"u{i + 1}.service"]) for i in range(2000)]
    g = graph(*chain, unit("u2000.service", names=("precious.service",)))
    references = [f"pad{i}.service" for i in range(300)]
    for name in references:
        g.add_unknown(name)
    stopped = effects(g, Effect.STOP, *references, "u0.service")
    assert "precious.service" in stopped.taken_down


# ---- what effects make of a classification ------------------------------------------------------------------


def base(action: UnitAction, effect: Effect, *units: str) -> Classification:
    return Classification(Risk.ROUTINE, "does a job", "catalog:test", units, action, effect=effect)


def test_hazards_make_a_call_dangerous_and_say_why() -> None:
    found = Effects(("wrapper.target",), (), ("trap.service",), (Hazard("trap.service", "FailureAction=exit", False),))
    judged = apply_effects(base(UnitAction.START, Effect.START, "wrapper.target"), found)
    assert judged.risk is Risk.DANGEROUS
    assert "starting wrapper.target would start trap.service (FailureAction=exit)" in judged.reason


def test_names_and_taken_down_units_are_kept_apart() -> None:
    found = Effects(("gem.service", "precious.service"), ("dbus.service", "gem.service"), (), ())
    judged = apply_effects(base(UnitAction.STOP, Effect.STOP, "gem.service"), found)
    assert judged.units == ("gem.service", "precious.service")
    assert judged.takes_down == ("dbus.service",)
    assert judged.risk is Risk.ROUTINE


def test_a_call_whose_effects_are_unknown_is_forbidden() -> None:
    refused = unjudged(base(UnitAction.STOP, Effect.STOP, "x.service"), "the bus did not answer within 1 s")
    assert refused.forbidden is not None
    assert refused.forbidden.rule == "effects-unknown"
    assert "did not answer" in refused.forbidden.reason


# ---- properties over random graphs --------------------------------------------------------------------------

IDS = [f"u{i}.service" for i in range(12)]


@st.composite
def random_graphs(draw: st.DrawFn) -> UnitGraph:
    g = UnitGraph()
    for unit_id in IDS:
        relations: dict[str, Any] = {
            kind: draw(st.lists(st.sampled_from(IDS), max_size=3))
            for kind in ("RequiredBy", "BoundBy", "Wants", "Requires", "Conflicts", "OnSuccess")
        }
        state = draw(st.sampled_from(["active", "inactive", "failed", "activating"]))
        g.add(unit(unit_id, state, **relations))
    return g


@settings(max_examples=80, deadline=None)
@given(random_graphs(), st.lists(st.sampled_from(IDS), min_size=1, max_size=3))
def test_what_a_stop_takes_down_is_closed_under_its_relations(g: UnitGraph, roots: list[str]) -> None:
    stopped = effects(g, Effect.STOP, *roots)
    down = set(stopped.taken_down) | set(roots)
    for unit_id in down:
        for dependent in g.units[unit_id].related(TAKES_DOWN):
            assert dependent in down


@settings(max_examples=80, deadline=None)
@given(random_graphs(), st.lists(st.sampled_from(IDS), min_size=1, max_size=3), st.sampled_from(list(Effect)))
def test_the_order_and_repetition_of_references_change_nothing(g: UnitGraph, roots: list[str], effect: Effect) -> None:
    once = effects(g, effect, *roots)
    again = effects(g, effect, *reversed(roots), *roots)
    assert set(once.taken_down) == set(again.taken_down)
    assert set(once.started) == set(again.started)
    assert set(once.hazards) == set(again.hazards)
