"""Unit names and the object paths systemd serves them at."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetbus.dbus.unit_names import could_be_unit_name, unit_object_path
from fleetbus.guard.catalog import unit_name_from_path
from tests.unit_references import escaped_path

names = st.text(st.characters(codec="utf-8", exclude_characters="\x00/"), min_size=1, max_size=40)


@given(names)
def test_a_name_escapes_as_systemd_escapes_it_and_back(name: str) -> None:
    path = unit_object_path(name)
    assert set(path.removeprefix("/org/freedesktop/systemd1/unit/")) <= set(
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
    )
    if name.isascii():
        assert path == escaped_path(name)
        assert unit_name_from_path(path) == name


def test_names_that_systemd_reads_as_other_units_are_not_unit_names() -> None:
    # `self` is the caller's unit and 32 hex digits an invocation id, to systemd's object lookup.
    assert not could_be_unit_name("self")
    assert not could_be_unit_name("6b1c0f8e3d2a4e7fb0c5d9a1e2f3a4b5")
    assert not could_be_unit_name("web-*.service")
    assert not could_be_unit_name("/etc/systemd/system/x.service")
    assert not could_be_unit_name("")
    assert could_be_unit_name("sshd@3-10.0.0.1:22.service")
    assert unit_object_path("1x.service").startswith("/org/freedesktop/systemd1/unit/_31x")
