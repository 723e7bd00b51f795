"""Pure parts of the operator tools: role fingerprints, journal matches and rows, the journal executor's option
check, pressure thresholds."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from fleetbus.executors import journal
from fleetbus.tools.journal import JournalQuery, MainProcess, entry_row, unit_options
from fleetbus.tools.registry import ToolError
from fleetbus.tools.roles import fingerprint
from fleetbus.tools.systemd import normalize_unit
from fleetbus.tools.triage import pressure_findings


def test_roles_come_from_the_units_present() -> None:
    units = [
        "nginx.service",
        "php8.2-fpm.service",
        "postgresql@15-main.service",
        "redis-server.service",
        "docker.socket",
        "containerd.service",
        "rabbitmq-server.service",
        "sshd.service",
        "nginx.conf",  # not a unit type that counts
    ]
    roles = {item["role"]: item["units"] for item in fingerprint(units)}
    assert roles["web server"] == ["nginx"]
    assert roles["application server"] == ["php8.2-fpm"]
    assert roles["database"] == ["postgresql@15-main"]
    assert roles["cache"] == ["redis-server"]
    assert roles["container host"] == ["containerd", "docker"]
    assert roles["message broker"] == ["rabbitmq-server"]
    assert "mail server" not in roles
    assert next(iter(roles)) == "container host"  # most evidence first


def test_no_known_units_means_no_roles() -> None:
    assert fingerprint(["sshd.service", "cron.service", "dbus.socket"]) == []


def test_a_unit_matches_its_own_lines_and_the_managers_lines_about_it() -> None:
    assert unit_options(["web.service"]) == [
        "_SYSTEMD_UNIT=web.service",
        "+",
        "UNIT=web.service",
        "+",
        "USER_UNIT=web.service",
        "+",
        "_SYSTEMD_USER_UNIT=web.service",
    ]
    assert unit_options(["a.service", "b.service"]).count("+") == 7


def test_unit_names_are_mangled_as_systemctl_does() -> None:
    assert normalize_unit("nginx") == "nginx.service"
    assert normalize_unit("getty@tty1") == "getty@tty1.service"
    assert normalize_unit("dbus.socket") == "dbus.socket"
    assert normalize_unit("-.slice") == "-.slice"
    for bad in ("a b", "x/y", "--rotate", "", "a\nb"):
        with pytest.raises(ToolError, match="is not a unit name"):
            normalize_unit(bad)


def test_journal_entries_become_uniform_rows() -> None:
    entry = {
        "__REALTIME_TIMESTAMP": "1795285290239788",
        "_SYSTEMD_UNIT": "oom.service",
        "PRIORITY": "3",
        "SYSLOG_IDENTIFIER": "sh",
        "_PID": "42",
        "MESSAGE": [111, 117, 116, 0xFF],  # journalctl's form of a message that is not UTF-8
        "_HOSTNAME": "h",
    }
    row = entry_row(entry, ["_HOSTNAME", "CODE_FILE"])
    assert row == {
        "time": "2026-11-21T18:21:30.239788Z",
        "unit": "oom.service",
        "priority": 3,
        "ident": "sh",
        "pid": 42,
        "message": "out\ufffd",
        "_HOSTNAME": "h",
        "CODE_FILE": None,
    }
    assert entry_row({"MESSAGE": "x" * 5000}, [])["message"].endswith("…")
    assert list(entry_row({}, []).keys()) == ["time", "unit", "priority", "ident", "pid", "message"]


@pytest.mark.parametrize(
    "option", ["--rotate", "--vacuum-size=1", "--flush", "--setup-keys", "-f", "--directory=/", "lower=case", "--since"]
)
def test_the_journal_executor_refuses_anything_but_query_options(option: str) -> None:
    with pytest.raises(journal.JournalQueryError, match="is not one the journal executor runs"):
        journal.check_options(["--priority=err", option])


def test_journal_argv_puts_matches_after_a_double_dash() -> None:
    argv = journal.argv(["--since=2026-11-21 17:00:00.000000 UTC", "UNIT=a.service", "+", "_PID=1"], Path("/j"))
    assert argv == [
        "journalctl",
        "--no-pager",
        "--quiet",
        "--all",
        "--output=json",
        "--directory=/j",
        "--since=2026-11-21 17:00:00.000000 UTC",
        "--",
        "UNIT=a.service",
        "+",
        "_PID=1",
    ]


def test_pressure_over_thresholds_is_reported() -> None:
    status = {
        "load_per_cpu": 3.5,
        "memory": {"used_percent": 95.0},
        "swap": {"total_mb": 0, "used_percent": 100.0},  # no swap: nothing to report
        "disks": [{"mount": "/", "used_percent": 50.0}, {"mount": "/var", "used_percent": 97.5}],
        "pressure": {"io": {"some_avg10": 42.0}, "cpu": {"some_avg10": 1.0}},
    }
    found = {item["what"]: item["value"] for item in pressure_findings(status)}
    assert found == {
        "load per CPU (1 min)": 3.5,
        "memory used %": 95.0,
        "disk used % on /var": 97.5,
        "io pressure (some, avg10 %)": 42.0,
    }
    assert pressure_findings({"memory": {}, "swap": {}, "disks": [], "pressure": None}) == []


def test_a_main_process_adds_its_pid_and_keeps_only_its_own_unattributed_lines() -> None:
    # journald could not tie these lines to the unit (the process was gone when it read them): found by PID.
    process = MainProcess("doomed.service", 4242, 1_000_000)
    query = JournalQuery({"unit": "doomed.service", "limit": 5}, datetime.now(UTC), [process])
    options = query.options()
    assert options[-2:] == ["+", "_PID=4242"]
    journal.check_options(options)  # the executor accepts the extra match
    own = {"_PID": "4242", "__REALTIME_TIMESTAMP": "1000001", "MESSAGE": "disk quota exceeded"}
    attributed = {"_SYSTEMD_UNIT": "doomed.service", "_PID": "1", "__REALTIME_TIMESTAMP": "5"}
    before_it_ran = {"_PID": "4242", "__REALTIME_TIMESTAMP": "999999"}  # an older process that had the PID
    someone_elses = {"_PID": "4242", "_SYSTEMD_UNIT": "other.service", "__REALTIME_TIMESTAMP": "2000000"}
    assert [query.belongs(e) for e in (own, attributed, before_it_ran, someone_elses)] == [True, True, False, False]


def test_a_main_process_comes_from_service_properties_that_say_it_ran() -> None:
    assert MainProcess.of("a.service", {"ExecMainPID": 7, "ExecMainStartTimestamp": 9}) == MainProcess(
        "a.service", 7, 9
    )
    assert MainProcess.of("a.service", {"ExecMainPID": 0, "ExecMainStartTimestamp": 0}) is None
    assert MainProcess.of("a.service", {}) is None
    # A process of another unit is ignored by a query about this one.
    other = MainProcess("b.service", 7, 9)
    assert JournalQuery({"unit": "a.service"}, datetime.now(UTC), [other]).processes == []
