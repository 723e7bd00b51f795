"""What the gateway reads a host's facts through: its figures and its journal, both over that host's runner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetbus.executors.command import CommandRunner, LocalRunner
from fleetbus.executors.cpu_use import TICK
from fleetbus.executors.journal import JournalReader
from fleetbus.executors.metrics import HostFigures


@dataclass
class HostFacts:
    figures: HostFigures
    journal: JournalReader

    @classmethod
    def local(cls, journal_directory: Path | None = None, *, cpu_tick: float | None = TICK) -> HostFacts:
        """This machine: /proc read in-process, commands as local subprocesses, a background CPU sampler."""
        figures = HostFigures.local(cpu_tick=cpu_tick)
        return cls(figures, JournalReader(figures.runner, journal_directory))

    @classmethod
    def remote(cls, runner: CommandRunner) -> HostFacts:
        """A host reached through `runner` (a `fleetbus.hosts` runner). The runner should outlive reconnects —
        the CPU history kept here is measured against it — or a new HostFacts be made per connection."""
        return cls(HostFigures.remote(runner), JournalReader(runner))

    def close(self) -> None:
        self.figures.close()


__all__ = ["HostFacts", "LocalRunner"]
