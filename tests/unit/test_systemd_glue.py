"""The systemd protocols fleetbus speaks itself — LISTEN_FDS, sd_notify, the watchdog, the journal's native
protocol — and the units `fleetbus install` writes (identical to deploy/systemd, hardened, well under the
exposure threshold)."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from fleetbus.server import install, systemd
from fleetbus.server.sockets import StartError, is_loopback, parse_listen

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy" / "systemd"


# ---- LISTEN_FDS ------------------------------------------------------------------------------------

LISTEN_PROBE = """
import json, os, socket, sys
from fleetbus.server import systemd
passed = systemd.listen_fds()
print(json.dumps({
    "sockets": [[p.name, p.listening, p.sock.family == socket.AF_UNIX] for p in passed],
    "left": [k for k in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES") if k in os.environ],
    "cloexec": [not os.get_inheritable(p.sock.fileno()) for p in passed],
}))
"""


def run_with_fds(fds: list[socket.socket], names: str, pid: str | None = None) -> dict[str, object]:
    """Run the probe with `fds` at 3, 4, … as systemd passes them, LISTEN_PID naming the probe itself (or `pid`).

    A shim moves the inherited descriptors into place in the child, then runs the probe in the same process.
    """
    shim = (
        "import fcntl, os\n"
        "high = [fcntl.fcntl(int(fd), fcntl.F_DUPFD, 100) for fd in os.environ.pop('ORIGINAL_FDS').split(',')]\n"
        "for number, fd in enumerate(high, start=3):\n"
        "    os.dup2(fd, number)\n"
        "    os.close(fd)\n"
        "os.environ['LISTEN_PID'] = os.environ.pop('FORCE_PID', None) or str(os.getpid())\n"
        f"exec(compile({LISTEN_PROBE!r}, 'probe', 'exec'))\n"
    )
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(ROOT / "src"), "LISTEN_FDS": str(len(fds))}
    env |= {"LISTEN_FDNAMES": names, "ORIGINAL_FDS": ",".join(str(s.fileno()) for s in fds)}
    if pid is not None:
        env["FORCE_PID"] = pid
    done = subprocess.run(
        [sys.executable, "-c", shim],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        pass_fds=[s.fileno() for s in fds],
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout)
    return result


def test_listen_fds_finds_listening_sockets_and_connections(tmp_path: Path) -> None:
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(tmp_path / "a.sock"))
    listening.listen()
    connection, _ = socket.socketpair()
    with listening, connection, _:
        result = run_with_fds([listening, connection], "fleetbus:conn")
    assert result["sockets"] == [["fleetbus", True, True], ["conn", False, True]]
    assert result["left"] == []  # unset, like sd_listen_fds(1), so children do not believe they are theirs
    assert result["cloexec"] == [True, True]


def test_listen_fds_ignores_sockets_meant_for_another_process(tmp_path: Path) -> None:
    listening = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listening.bind(str(tmp_path / "a.sock"))
    listening.listen()
    with listening:
        result = run_with_fds([listening], "fleetbus", pid="1")
    assert result["sockets"] == []


def test_no_listen_fds_means_none() -> None:
    assert systemd.listen_fds({}) == []


# ---- sd_notify and the watchdog ------------------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.settimeout(5)
    return sock


def test_notify_sends_one_datagram(notify_socket: socket.socket) -> None:
    env = {"NOTIFY_SOCKET": notify_socket.getsockname()}
    assert systemd.notify("READY=1\nSTATUS=serving", env)
    assert notify_socket.recv(4096) == b"READY=1\nSTATUS=serving"
    notify_socket.close()


def test_notify_reaches_an_abstract_socket() -> None:
    name = f"fleetbus-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(5)
        assert systemd.notify("STOPPING=1", {"NOTIFY_SOCKET": "@" + name})
        assert sock.recv(4096) == b"STOPPING=1"


def test_notify_without_a_manager_does_nothing(tmp_path: Path) -> None:
    assert not systemd.notify("READY=1", {})
    assert not systemd.notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody")})


def test_notify_never_blocks_on_a_full_queue(notify_socket: socket.socket) -> None:
    env = {"NOTIFY_SOCKET": notify_socket.getsockname()}
    sent = [systemd.notify("WATCHDOG=1", env) for _ in range(5000)]
    assert sent[0]
    assert not all(sent)  # once the queue is full, notifications are dropped rather than waited for
    notify_socket.close()


def test_watchdog_interval() -> None:
    assert systemd.watchdog_interval({}) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "60000000"}) == 30.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": str(os.getpid())}) == 30.0
    assert systemd.watchdog_interval({"WATCHDOG_USEC": "60000000", "WATCHDOG_PID": "1"}) is None


# ---- journald --------------------------------------------------------------------------------------


def parse_journal(datagram: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    rest = datagram
    while rest:
        line, _, after = rest.partition(b"\n")
        if b"=" in line:
            key, _, value = line.partition(b"=")
            fields[key.decode()] = value.decode()
            rest = after
        else:
            (size,) = struct.unpack("<Q", after[:8])
            fields[line.decode()] = after[8 : 8 + size].decode()
            rest = after[8 + size + 1 :]
    return fields


def test_journal_handler_sends_structured_fields(notify_socket: socket.socket) -> None:
    handler = systemd.JournalHandler(Path(notify_socket.getsockname()))
    logger = logging.getLogger("fleetbus.test.journal")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("two\nlines", extra={"journal": {"fleetbus_client": "ci-bot"}})
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        handler.close()
    first = parse_journal(notify_socket.recv(65536))
    assert first["MESSAGE"] == "two\nlines"
    assert first["PRIORITY"] == "4"
    assert first["SYSLOG_IDENTIFIER"] == "fleetbus"
    assert first["FLEETBUS_LOGGER"] == "fleetbus.test.journal"
    assert first["FLEETBUS_CLIENT"] == "ci-bot"
    assert first["CODE_FILE"].endswith("test_systemd_glue.py")
    assert first["CODE_LINE"].isdigit()
    second = parse_journal(notify_socket.recv(65536))
    assert second["PRIORITY"] == "3"
    assert "ValueError: boom" in second["MESSAGE"]
    notify_socket.close()


def test_stderr_is_journal_compares_device_and_inode() -> None:
    info = os.fstat(2)
    assert systemd.stderr_is_journal({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"})
    assert not systemd.stderr_is_journal({"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino + 1}"})
    assert not systemd.stderr_is_journal({"JOURNAL_STREAM": "garbage"})
    assert not systemd.stderr_is_journal({})


# ---- addresses -------------------------------------------------------------------------------------


def test_listen_addresses() -> None:
    assert parse_listen("127.0.0.1:8765") == ("127.0.0.1", 8765)
    assert parse_listen("[::1]:8765") == ("::1", 8765)
    for bad in ("8765", "127.0.0.1", ":80", "host:port"):
        with pytest.raises(StartError):
            parse_listen(bad)
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "::", "192.168.1.1", "example.com"))


# ---- units -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", [install.SYSTEM, install.USER])
def test_deploy_holds_exactly_what_install_writes(variant: install.Variant) -> None:
    """deploy/systemd is for packagers and readers; `fleetbus install` is what people run. They must agree."""
    for name, text in install.units(variant).items():
        assert (DEPLOY / variant.name / name).read_text() == text, f"deploy/systemd/{variant.name}/{name} is stale"
    assert sorted(p.name for p in (DEPLOY / variant.name).iterdir()) == sorted(install.units(variant))


def test_install_writes_under_a_root_and_keeps_an_existing_config(tmp_path: Path) -> None:
    target = install.plan(install.SYSTEM, root=tmp_path, command="/opt/fleetbus/bin/fleetbus", per_connection=True)
    written = install.install(target)
    unit_dir = tmp_path / "etc" / "systemd" / "system"
    assert set(written) == {
        unit_dir / "fleetbus.socket",
        unit_dir / "fleetbus.service",
        unit_dir / "fleetbus@.service",
        unit_dir / "fleetbus.socket.d" / install.PER_CONNECTION_DROP_IN,
        tmp_path / "etc" / "fleetbus" / "config.toml",
    }
    service = (unit_dir / "fleetbus.service").read_text()
    assert "ExecStart=/opt/fleetbus/bin/fleetbus serve --config /etc/fleetbus/config.toml" in service
    assert "Accept=yes" in (unit_dir / "fleetbus.socket.d" / install.PER_CONNECTION_DROP_IN).read_text()
    config = tmp_path / "etc" / "fleetbus" / "config.toml"
    config.write_text('safety = "admin"\n')
    again = install.install(target)
    assert config not in again
    assert config.read_text() == 'safety = "admin"\n'


def test_user_install_goes_to_the_config_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    target = install.plan(install.USER, home=tmp_path)
    assert target.unit_dir == tmp_path / ".config" / "systemd" / "user"
    assert target.config_file == tmp_path / ".config" / "fleetbus" / "config.toml"
    assert "ListenStream=%t/fleetbus/fleetbus.sock" in target.files[target.unit_dir / "fleetbus.socket"]


def test_client_config_is_ready_to_paste() -> None:
    here = install.stdio_command(["/usr/local/bin/fleetbus"], system_bus_answers=True, run_script=None)
    text = install.client_config(here, "http://127.0.0.1:8765/mcp", "/run/fleetbus/fleetbus.sock")
    blocks = [json.loads(block) for block in re.findall(r"^\{.*?^\}", text, re.MULTILINE | re.DOTALL)]
    stdio, http, socat = (block["mcpServers"]["fleetbus"] for block in blocks)
    assert stdio == {"command": "/usr/local/bin/fleetbus", "args": ["serve"]}
    assert http["url"] == "http://127.0.0.1:8765/mcp"
    assert http["headers"]["Authorization"].startswith("Bearer ")
    assert socat == {"command": "socat", "args": ["UNIX-CONNECT:/run/fleetbus/fleetbus.sock", "STDIO"]}
    python = install.stdio_command([sys.executable, "-m", "fleetbus"], system_bus_answers=True, run_script=None)
    assert f'"command": "{sys.executable}"' in install.client_config(python, "http://x/mcp", "/s")


def test_without_a_system_bus_client_config_offers_the_sandbox(tmp_path: Path) -> None:
    program = ["/opt/fleetbus/bin/fleetbus"]
    run_script = tmp_path / "scripts" / "run.sh"
    through_run_sh = install.stdio_command(program, system_bus_answers=False, run_script=run_script)
    assert through_run_sh.argv == [str(run_script)]
    assert "No system bus answers here" in through_run_sh.why
    installed = install.stdio_command(program, system_bus_answers=False, run_script=None)
    assert installed.argv == [*program, "sandbox", "run", "--", *program, "serve"]


def test_a_bus_address_answers_only_when_something_listens(tmp_path: Path) -> None:
    path = tmp_path / "bus"
    assert not install.bus_answers(f"unix:path={path}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listening:
        listening.bind(str(path))
        listening.listen(1)
        assert install.bus_answers(f"unix:path={path}")


EXPOSURE = re.compile(r"Overall exposure level for \S+: (\d+\.\d+)")


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is part of the systemd package")
@pytest.mark.parametrize(("variant", "limit"), [("system", 2.0), ("user", 2.5)])
def test_the_units_are_hardened(variant: str, limit: float) -> None:
    for unit in ("fleetbus.service", "fleetbus@.service"):
        analysed = subprocess.run(
            ["systemd-analyze", "security", "--offline=true", "--no-pager", str(DEPLOY / variant / unit)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        found = EXPOSURE.search(analysed.stdout + analysed.stderr)
        assert found, analysed.stdout + analysed.stderr
        assert float(found.group(1)) <= limit, f"{variant}/{unit}: exposure {found.group(1)}"
