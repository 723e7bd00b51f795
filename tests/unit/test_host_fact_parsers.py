"""The parsers every host shares, on text captured from real hosts (tests/goldens/host_facts/: this machine's
/proc read with the argv a remote host gets, `ip -j addr`, `ss -Htuanp` in a namespace with known sockets, `df`),
and the argvs they come from: fixed words, and nothing a tool passes."""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetbus.executors import identity, network, processes, procfs
from fleetbus.executors.figures import DiskUsage
from fleetbus.executors.metrics import IDENTITY_FILES, SYSTEM_FILES, checked_pids
from fleetbus.executors.proc_files import by_process, check_path, df_usage, process_files_argv, split_tagged

GOLDENS = Path(__file__).resolve().parents[1] / "goldens" / "host_facts"


def golden(name: str) -> str:
    return (GOLDENS / name).read_text()


def tagged() -> dict[str, str]:
    return split_tagged((GOLDENS / "grep-system-identity.txt").read_bytes())


def test_grep_output_splits_back_into_every_file_it_read() -> None:
    files = tagged()
    assert set(files) == set(SYSTEM_FILES) | set(IDENTITY_FILES)
    assert files["/proc/loadavg"] == "4.24 3.65 1.87 7/119 17568\n"
    assert files["/proc/sys/kernel/hostname"] == "vm\n"
    # A file's empty lines survive (grep '' matches them), and its lines stay in order.
    assert files["/etc/os-release"] == golden("os-release.txt")


def test_the_system_files_parse() -> None:
    files = tagged()
    assert procfs.load_average(files["/proc/loadavg"]) == procfs.LoadAverage(4.24, 3.65, 1.87)
    stat = procfs.proc_stat(files["/proc/stat"])
    assert (stat.cpus, stat.boot_time) == (2, 1796179097)
    assert procfs.uptime(files["/proc/uptime"]) == 706.57
    memory = procfs.memory(files["/proc/meminfo"])
    assert 0 < memory.available <= memory.total
    assert procfs.pressure(files["/proc/pressure/cpu"])["some_avg10"] == 35.17
    mounts = procfs.disk_mounts(files["/proc/self/mounts"], files["/proc/filesystems"])
    assert [m.mountpoint for m in mounts] == ["/"]
    assert mounts[0].fstype == "ext4"


def test_identity_files_parse() -> None:
    files = tagged()
    assert files["/proc/sys/kernel/random/boot_id"].strip() == "cde91465-8923-4aad-b65c-66c5e601e6f5"
    release = identity.os_release(files["/etc/os-release"])
    assert release["PRETTY_NAME"] == "Debian GNU/Linux 12 (bookworm)"
    assert (release["ID"], release["VERSION_ID"]) == ("debian", "12")


def test_os_release_quoting_and_junk() -> None:
    text = '# comment\nNAME=\'Fancy OS\'\nID=fancy\nBROKEN\nVERSION="1 \\"LTS\\""\nbad key=x\n'
    assert identity.os_release(text) == {"NAME": "Fancy OS", "ID": "fancy", "VERSION": '1 "LTS"'}


def test_process_files_from_find_and_grep() -> None:
    found = by_process(split_tagged((GOLDENS / "find-proc-files.txt").read_bytes()), ["stat", "status", "cmdline"])
    assert sorted(found) == [1, 2, 3, 4]
    init = processes.status(found[1]["status"])
    assert init == processes.ProcessStatus("process_api", "sleeping", 0, 17720 * 1024)
    assert processes.cpu_ticks(found[1]["stat"]) == 98 + 489
    assert processes.command_line(found[1]["cmdline"]).startswith("/process_api --firecracker-init --addr 0.0.0.0:2024")
    kthreadd = processes.status(found[2]["status"])
    assert (kthreadd.rss, kthreadd.state) == (0, "sleeping")  # a kernel thread has no resident memory
    assert processes.status(found[4]["status"]).state == "idle"
    assert processes.arguments(found[2].get("cmdline", "")) == []


def test_a_name_with_spaces_and_parentheses_does_not_shift_the_stat_fields() -> None:
    text = "42 (evil ) S 1 2 (name) S 1 42 42 0 -1 4194560 10 0 0 0 7 5 0 0 20 0 1 0 100 0 0\n"
    assert processes.cpu_ticks(text) == 12
    with pytest.raises(procfs.ProcFormatError):
        processes.cpu_ticks("42 (short) S 1\n")


def test_process_names_are_completed_as_psutil_does() -> None:
    cmdline = "/lib/systemd/systemd-journald\0"
    assert processes.process_name("systemd-journal", cmdline) == "systemd-journald"
    assert processes.process_name("systemd-journal", "python3\0x.py\0") == "systemd-journal"
    assert processes.process_name("sshd", "sshd: root [priv]\0") == "sshd"
    assert processes.status("Name:\tod\\\\d\\nname\nState:\tZ (zombie)\n").name == "od\\d\nname"


def test_passwd_names() -> None:
    names = processes.passwd_names(golden("passwd.txt"))
    assert names[0] == "root"
    assert processes.user_name(0, names) == "root"
    assert processes.user_name(4242, names) == "4242"
    assert processes.user_name(None, names) == ""


def test_interfaces_from_ip_json() -> None:
    found = {i.name: i for i in network.interfaces(golden("ip-j-addr.json"))}
    assert found["lo"] == network.Interface("lo", True, 65536, ["127.0.0.1/8", "::1/128"])
    assert found["eth0"].up
    assert found["eth0"].addresses[0] == "192.0.2.2/24"
    assert not found["ifb0"].up
    with pytest.raises(procfs.ProcFormatError):
        network.interfaces("not json")


def test_sockets_from_ss() -> None:
    found = network.sockets(golden("ss-Htuanp.txt"))
    listening = sorted((s.proto, s.address, s.port, s.process) for s in found if s.listening)
    assert listening == [
        ("tcp", "127.0.0.1", 8080, "python3"),
        ("tcp6", "::", 2222, "python3"),  # a dual-stack socket, which ss shows as *
        ("udp", "0.0.0.0", 5353, "python3"),
        ("udp6", "::1", 123, "python3"),
    ]
    figures = network.network_figures([], found, {}, 50)
    assert figures["connections"] == {"close_wait": 1, "established": 2, "fin_wait2": 1}
    assert figures["listening_total"] == 4
    assert all(row["pid"] for row in figures["listening"])


def test_ss_names_and_scoped_addresses() -> None:
    line = 'udp UNCONN 0 0 127.0.0.53%lo:53 0.0.0.0:* users:(("systemd-resolve",pid=321,fd=13))\n'
    (sock,) = network.sockets(line)
    assert (sock.address, sock.port, sock.pid, sock.process) == ("127.0.0.53", 53, 321, "systemd-resolve")
    (six,) = network.sockets("tcp LISTEN 0 128 [fe80::1%eth0]:22 [::]:*\n")
    assert (six.proto, six.address, six.pid) == ("tcp6", "fe80::1", None)


def test_df_usage() -> None:
    usage = df_usage(golden("df-k.txt"))
    assert usage["/"] == DiskUsage("/", "ext4", 264212084 * 1024, 25225760 * 1024, 81165152 * 1024)
    assert usage["/dev/shm"].used == 0
    spaced = df_usage("Type 1K-blocks Used Avail Mounted on\nnfs 10 5 5 /mnt/with space\n")
    assert spaced["/mnt/with space"].total == 10240


def test_only_fixed_paths_reach_an_argv() -> None:
    for path in (*SYSTEM_FILES, *IDENTITY_FILES, "/proc/123/comm", "/sys/class/net/eth0/speed"):
        assert check_path(path) == path
    for bad in ("-r", "/proc/../etc/shadow", "relative", "/home/x", "/proc/1/comm;rm", "/proc/1/comm\n", "/proc/.."):
        with pytest.raises(ValueError, match="not a host file"):
            check_path(bad)


def test_process_ids_are_integers_before_they_become_paths() -> None:
    assert checked_pids([3, 1, 3]) == [3, 1]
    for bad in (["1"], [True], [-1], [0], "12", [1.5]):
        with pytest.raises(ValueError, match="process id"):
            checked_pids(bad)
    with pytest.raises(ValueError, match="at most"):
        checked_pids(list(range(1, 2000)))


def test_the_process_argv_is_fixed_words() -> None:
    argv = process_files_argv(["stat", "status"])
    assert argv[:3] == ["env", "LC_ALL=C", "find"]
    assert argv[-8:] == ["-exec", "grep", "-a", "-H", "-s", "", "{}", "+"]
    assert argv[argv.index("(") + 1 : argv.index(")")] == ["-name", "stat", "-o", "-name", "status"]
    with pytest.raises(ValueError, match="per-process files"):
        process_files_argv(["environ"])


REMOTE = "host01"
"""Captured over SSH from a simulated host (`fleetbus sandbox … --hosts 1`), with the argvs the remote reader runs."""


def remote_golden(name: str) -> bytes:
    return (GOLDENS / REMOTE / name).read_bytes()


def test_a_remote_hosts_files_through_the_same_parsers() -> None:
    files = split_tagged(remote_golden("grep-system-identity.txt"))
    assert set(files) == set(SYSTEM_FILES) | set(IDENTITY_FILES)
    assert files["/proc/sys/kernel/hostname"] == "host01\n"
    assert procfs.proc_stat(files["/proc/stat"]).cpus == 2
    mounts = procfs.disk_mounts(files["/proc/self/mounts"], files["/proc/filesystems"])
    # The host's /run is a directory of the sandbox bound there; its boot id file, bound in /proc, is no disk.
    assert [m.mountpoint for m in mounts] == ["/", "/run"]
    assert df_usage(remote_golden("df-k.txt").decode())["/"].fstype == "ext4"
    assert identity.os_release(files["/etc/os-release"])["ID"] == "debian"


def test_a_remote_hosts_processes_and_sockets() -> None:
    found = by_process(split_tagged(remote_golden("find-proc-files.txt")), ["stat", "status", "cmdline"])
    names = {
        pid: processes.process_name(processes.status(f["status"]).name, f.get("cmdline"))
        for pid, f in found.items()
        if "status" in f
    }
    # The host's own PID namespace: its keeper is PID 1; journald's name, cut at 15, is completed from its argv.
    assert "fleetbus.sandbox.fleet.host_keeper" in processes.command_line(found[1]["cmdline"])
    assert "systemd-journald" in names.values()
    assert {"sshd", "dbus-daemon", "systemd"} <= set(names.values())
    users = processes.passwd_names(remote_golden("passwd.txt").decode())
    assert processes.user_name(processes.status(found[1]["status"]).uid, users) == "root"
    (lo,) = network.interfaces(remote_golden("ip-j-addr.json").decode())
    assert lo.name == "lo"
    assert "127.0.1.1/32" in lo.addresses
    sockets = network.sockets(remote_golden("ss-Htuanp.txt").decode())
    figures = network.network_figures([lo], sockets, {}, 50)
    assert figures["listening"] == [{"proto": "tcp", "address": "127.0.1.1", "port": 22, "pid": 28, "process": "sshd"}]
    assert figures["connections"] == {"established": 2}


def test_ip_output_nested_past_the_parsers_stack_is_a_format_error() -> None:
    with pytest.raises(procfs.ProcFormatError, match="not JSON"):
        network.interfaces("[" * 200_000)
