"""The state names a `state=` filter may use: every one this machine's systemd knows, and nothing misspelt."""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from fleetbus.tools.unit_states import (
    ACTIVE_STATES,
    LOAD_STATES,
    UNIT_FILE_STATES,
    UNIT_STATES,
    unknown_unit_file_state,
    unknown_unit_state,
)


def systemctl_states() -> dict[str, set[str]]:
    """What the installed systemctl says it knows, by table ("unit load states", "service unit substates"…)."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        pytest.fail("systemctl is not installed (scripts/setup.sh installs systemd)")
    listing = subprocess.run([systemctl, "--state=help"], capture_output=True, text=True, check=True).stdout
    tables: dict[str, set[str]] = {}
    for block in listing.strip().split("\n\n"):
        head, *names = block.strip().splitlines()
        tables[re.sub(r"^Available |:$", "", head)] = {name.strip() for name in names if name.strip()}
    return tables


def test_every_state_the_installed_systemd_knows_is_accepted() -> None:
    tables = systemctl_states()
    assert "unit load states" in tables
    unit_tables = {name: states for name, states in tables.items() if name != "unit file states"}
    for name, states in unit_tables.items():
        assert states <= UNIT_STATES, (name, states - UNIT_STATES)
    assert tables["unit file states"] <= set(UNIT_FILE_STATES)
    for state in sorted(UNIT_STATES):
        assert unknown_unit_state(state) is None


def test_a_misspelt_state_is_refused_naming_the_valid_ones() -> None:
    message = unknown_unit_state("faild")
    assert message is not None
    assert message.startswith("unknown unit state 'faild' (argument 'state'); did you mean failed")
    for state in (*LOAD_STATES, *ACTIVE_STATES):
        assert state in message
    assert unknown_unit_state("bogus") is not None


def test_a_state_some_unit_is_in_now_is_accepted_although_not_in_the_tables() -> None:
    # A newer systemd than the tables know: the manager's own answer settles it.
    assert unknown_unit_state("hibernating") is not None
    assert unknown_unit_state("hibernating", {"hibernating", "running"}) is None


def test_unit_file_states_are_their_own_vocabulary() -> None:
    message = unknown_unit_file_state("enable")
    assert message is not None
    assert "did you mean enabled" in message
    assert all(state in message for state in UNIT_FILE_STATES)
    assert unknown_unit_file_state("running") is not None  # a unit state, not a unit file state
    assert unknown_unit_file_state("static") is None
