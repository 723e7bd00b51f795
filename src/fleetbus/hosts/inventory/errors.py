"""What goes wrong reading an inventory, said with the place it went wrong: file and line, or file and key."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Location:
    """Where something was written: `inventory.ini:12`, or `inventory.yml: all.children.web.hosts`."""

    source: str
    line: int | None = None
    key: str | None = None

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return where if self.key is None else f"{where}: {self.key}"

    def at(self, key: str) -> Location:
        """The location of `key` under this one (a YAML or JSON path grows by a dot)."""
        return Location(self.source, self.line, key if self.key is None else f"{self.key}.{key}")


class InventoryError(ValueError):
    """An inventory that cannot be used as written; the message names the file and the line or key."""

    def __init__(self, message: str, where: Location | None = None) -> None:
        super().__init__(message if where is None else f"{where}: {message}")
        self.reason = message
        self.where = where


class InventoryLimitError(InventoryError):
    """An inventory larger than fleetbus agrees to hold: a file, a host count or a range beyond the limits."""
