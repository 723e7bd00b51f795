"""The inotify budget of a simulated fleet: how many hosts of each profile the limit leaves room for, and what the
refusal tells an operator to do."""

from __future__ import annotations

from fleetbus.sandbox.files import SYSTEM_SERVICES
from fleetbus.sandbox.fleet.layout import FULL, LIGHT
from fleetbus.sandbox.fleet.light import direct_activation_file
from fleetbus.sandbox.fleet.limits import HEADROOM, PER_HOST, shortfall


def test_hosts_that_fit_under_the_limit_pass() -> None:
    assert shortfall(20, FULL, limit=128, in_use=10) is None
    assert shortfall(100, LIGHT, limit=128, in_use=10) is None
    # Exactly at the limit still fits; one more host does not.
    fits = (128 - 10 - HEADROOM) // PER_HOST[FULL]
    assert shortfall(fits, FULL, limit=128, in_use=10) is None
    assert shortfall(fits + 1, FULL, limit=128, in_use=10) is not None


def test_the_refusal_names_the_limit_the_room_and_the_ways_out() -> None:
    message = shortfall(50, FULL, limit=128, in_use=43)
    assert message is not None
    assert "fs.inotify.max_user_instances is 128" in message
    assert "root holds 43" in message
    assert "room for about 15 hosts" in message
    assert "sysctl -w fs.inotify.max_user_instances=1024" in message
    assert "--profile light" in message
    light = shortfall(200, LIGHT, limit=128, in_use=43)
    assert light is not None
    assert "--profile light" not in light  # already light: only the sysctl helps


def test_a_light_host_s_bus_runs_its_service_itself() -> None:
    hostnamed = next(s for s in SYSTEM_SERVICES if s.bus_name == "org.freedesktop.hostname1")
    text = direct_activation_file(hostnamed)
    assert "Exec=/lib/systemd/systemd-hostnamed\n" in text
    assert "SystemdService" not in text  # no service manager to hand it to
