"""Reading the journal with `journalctl -o json`: the options a query may use, and the entries it returns.

The same argv works on a remote host over SSH; only query options are accepted, never the ones that change the
journal (`--rotate`, `--vacuum-*`, `--flush`, `--setup-keys`…), which is what makes `journal.query` a read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fleetbus.executors.command import CommandRunner, failure

VALUE_OPTIONS = (
    "--since=",
    "--until=",
    "--after-cursor=",
    "--priority=",
    "--boot=",
    "--grep=",
    "--case-sensitive=",
    "--output-fields=",
)
FLAG_OPTIONS = ("--reverse",)
MATCH = re.compile(r"^[A-Z0-9_]{1,64}=[^\n]*$")
"""A field match (`_SYSTEMD_UNIT=web.service`); `+` between matches means OR."""
MAX_BYTES = 64 << 20
COUNTED_FROM = ("--after-cursor=", "--since=")
IGNORED_FILE = re.compile(r"ignoring file", re.IGNORECASE)
"""journalctl's warning for a damaged journal file it skips (`Journal file … is truncated, ignoring file.`)."""


class JournalQueryError(ValueError):
    """An option the journal executor does not run."""


@dataclass(frozen=True)
class JournalRead:
    entries: list[dict[str, Any]]
    complete: bool
    """journalctl had nothing more to give; False when reading stopped at the entry limit."""


def check_options(options: Sequence[str]) -> None:
    """Refuse anything but query options and field matches, naming the first offender."""
    for option in options:
        if "\0" in option:
            raise JournalQueryError(f"journal query option {option!r} contains a NUL character")
        if option == "+" or option in FLAG_OPTIONS or MATCH.match(option):
            continue
        if option.startswith(VALUE_OPTIONS) and "\n" not in option:
            continue
        raise JournalQueryError(f"journal query option {option!r} is not one the journal executor runs")


def argv(options: Sequence[str], directory: Path | None, max_entries: int | None = None) -> list[str]:
    """journalctl's argv: fixed output options, the query's options, then `--` and its field matches.

    With `max_entries`, `--lines=N` makes journalctl itself stop after N entries where that keeps the order and
    the start the query asks for: from a cursor or `--since` it counts forwards from there, with `--reverse` back
    from the newest (or from `--until`). Without any of those `--lines` would mean "the last N", so the query
    is left to the output cap alone; so is one with `--grep`, with which journalctl 252 counts the N from the
    other end (and prints them newest first) — tests/integration/test_journal_lines.py holds both facts."""
    check_options(options)
    flags = [o for o in options if o.startswith("--")]
    matches = [o for o in options if not o.startswith("--")]
    command = ["journalctl", "--no-pager", "--quiet", "--all", "--output=json"]
    if directory is not None:
        command.append(f"--directory={directory}")
    counted = any(f == "--reverse" or f.startswith(COUNTED_FROM) for f in flags)
    if max_entries is not None and counted and not any(f.startswith("--grep=") for f in flags):
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 1:
            raise JournalQueryError(f"max_entries must be a positive integer, not {max_entries!r}")
        command.append(f"--lines={max_entries}")
    # `--` keeps a match from ever being read as an option.
    return [*command, *flags, "--", *matches] if matches else [*command, *flags]


def with_output_fields(options: Sequence[str], *fields: str) -> list[str]:
    """`options` with `fields` added to its --output-fields (when it has one: without it every field comes)."""
    extended = []
    for option in options:
        if option.startswith("--output-fields="):
            named = option.removeprefix("--output-fields=").split(",")
            extended.append("--output-fields=" + ",".join(dict.fromkeys([*named, *fields])))
        else:
            extended.append(option)
    return extended


def parse(stdout: bytes, max_entries: int, *, truncated: bool) -> JournalRead:
    """The first `max_entries` entries of journalctl's JSON lines. The last line of a cut output is incomplete
    and dropped; the read is complete when journalctl ended by itself with fewer entries than asked for."""
    lines = stdout.split(b"\n")
    if truncated:
        lines = lines[:-1]
    entries: list[dict[str, Any]] = []
    for line in lines:
        if len(entries) >= max_entries:
            break
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except (ValueError, RecursionError):  # a hostile host's journalctl can nest `[[[[…` past the parser's stack
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return JournalRead(entries, complete=not truncated and len(entries) < max_entries)


def matched_nothing(options: Sequence[str], status: int, stderr: str, lines: Sequence[bytes | str]) -> bool:
    """journalctl exits 1 when `--grep` matched no entry, like grep; so it does when it fails. A failure says why on
    stderr (`Bad pattern …`, `Failed to …`); no match says nothing, or only that it skipped an unreadable file."""
    if status != 1 or lines or not any(option.startswith("--grep=") for option in options):
        return False
    return all(IGNORED_FILE.search(line) for line in stderr.splitlines() if line.strip())


class JournalFailed(Exception):
    """journalctl ran and failed (a bad pattern, an unknown boot, a journal it cannot open); the message says why."""


class JournalReader:
    """One host's journal, read with `journalctl -o json` through that host's runner (this machine's or a remote
    host's): a deadline, a cap on the bytes read back, and journalctl stopping itself after the entries asked for."""

    def __init__(self, runner: CommandRunner, directory: Path | None = None) -> None:
        self.runner = runner
        self.directory = directory
        """A journal directory to read instead of the host's own (the sandbox's journald writes one)."""

    async def read(
        self, options: Sequence[str], *, timeout: float, max_entries: int, max_bytes: int = MAX_BYTES
    ) -> JournalRead:
        """At most `max_entries` entries matching `options`, in the order journalctl gives."""
        command = argv(options, self.directory, max_entries)
        result = await self.runner.run(command, timeout=timeout, max_bytes=min(max_bytes, MAX_BYTES))
        if result.truncated or result.exit_status == 0:
            return parse(result.stdout, max_entries, truncated=result.truncated)
        stderr = result.stderr.decode("utf-8", errors="replace").strip()
        if result.exit_status is not None and matched_nothing(
            options, result.exit_status, stderr, [line for line in result.stdout.splitlines() if line.strip()]
        ):
            return JournalRead([], complete=True)
        raise JournalFailed(failure(command, result))
