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

from fleetbus.executors.command import CommandFailed, CommandOutput, read_lines

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
MAX_LINE_BYTES = 1 << 20
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
        if option == "+" or option in FLAG_OPTIONS or MATCH.match(option):
            continue
        if option.startswith(VALUE_OPTIONS) and "\n" not in option:
            continue
        raise JournalQueryError(f"journal query option {option!r} is not one the journal executor runs")


def argv(options: Sequence[str], directory: Path | None) -> list[str]:
    """journalctl's argv: fixed output options, the query's options, then `--` and its field matches."""
    check_options(options)
    flags = [o for o in options if o.startswith("--")]
    matches = [o for o in options if not o.startswith("--")]
    command = ["journalctl", "--no-pager", "--quiet", "--all", "--output=json"]
    if directory is not None:
        command.append(f"--directory={directory}")
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


def parse(output: CommandOutput) -> JournalRead:
    entries = []
    for line in output.lines:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return JournalRead(entries, output.complete)


def matched_nothing(options: Sequence[str], status: int, stderr: str, lines: Sequence[str]) -> bool:
    """journalctl exits 1 when `--grep` matched no entry, like grep; so it does when it fails. A failure says why on
    stderr (`Bad pattern …`, `Failed to …`); no match says nothing, or only that it skipped an unreadable file."""
    if status != 1 or lines or not any(option.startswith("--grep=") for option in options):
        return False
    return all(IGNORED_FILE.search(line) for line in stderr.splitlines() if line.strip())


async def read(
    options: Sequence[str], *, directory: Path | None, timeout: float, max_entries: int, max_bytes: int
) -> JournalRead:
    """At most `max_entries` entries of the local journal matching `options`, in the order journalctl gives."""
    try:
        output = await read_lines(
            argv(options, directory), timeout=timeout, max_lines=max_entries, max_bytes=min(max_bytes, 64 << 20)
        )
    except CommandFailed as exc:
        if matched_nothing(options, exc.status, exc.stderr, exc.lines):
            return JournalRead([], complete=True)
        raise
    return parse(output)
