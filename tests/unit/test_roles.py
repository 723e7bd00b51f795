"""Roles from unit names: one regular expression per role says what fnmatch says of each of its globs."""

from __future__ import annotations

import fnmatch

from hypothesis import given
from hypothesis import strategies as st

from fleetbus.tools.roles import ROLES, fingerprint

PIECES = [p.replace("*", "") for patterns in ROLES.values() for p in patterns]
stems = st.lists(
    st.builds(lambda a, b: a + b, st.sampled_from([*PIECES, ""]), st.text("abc-_.@0123456789", max_size=6)), max_size=30
)


@given(stems)
def test_a_role_is_found_exactly_where_one_of_its_globs_matches_a_unit(names: list[str]) -> None:
    units = [f"{name}.service" for name in names if name]
    found = {row["role"]: row["units"] for row in fingerprint(units)}
    for role, patterns in ROLES.items():
        shown = [n for n in names if n and not n.startswith("-")]  # "-.service" and the like are not units
        evidence = sorted({n for n in shown if any(fnmatch.fnmatchcase(n, p) for p in patterns)})
        assert found.get(role, []) == evidence[:5], role


def test_the_usual_suspects() -> None:
    roles = fingerprint(["nginx.service", "php8.2-fpm.service", "postgresql@15-main.service", "cron.service"])
    assert {row["role"] for row in roles} == {"web server", "application server", "database"}
