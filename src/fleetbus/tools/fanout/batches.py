"""Batches as Ansible's `serial` makes them — a number, a percentage, or a list whose last item repeats — and
the failure limit per batch as `max_fail_percentage` judges it: the batch stops the run when it is *exceeded*."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

_PERCENT = re.compile(r"^\s*(\d+)\s*%\s*$")


class BatchError(ValueError):
    """A `batches` or `max_failures` value that cannot be used; the message names the argument."""


BatchItem = int | str


def parse_serial(value: Any, *, argument: str = "batches") -> tuple[BatchItem, ...]:
    """`5`, `"20%"`, `[1, 5, "20%"]` → a tuple of items (whole numbers ≥ 1, or whole percentages ≥ 0).

    Ansible reads a serial of 0 or less as "all hosts in one batch"; for a change to a fleet that reading turns a
    typo into the whole fleet at once, so fleetbus refuses it and asks for `"100%"`.
    """
    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        raise BatchError(f'invalid argument {argument!r}: give at least one batch size, e.g. [1, 5, "20%"]')
    parsed: list[BatchItem] = []
    for item in items:
        if isinstance(item, bool):
            raise BatchError(f"invalid argument {argument!r}: {item!r} is not a batch size")
        if isinstance(item, int):
            if item < 1:
                raise BatchError(
                    f'invalid argument {argument!r}: batch size {item} must be at least 1 ("100%" means all hosts)'
                )
            parsed.append(item)
        elif isinstance(item, str) and (match := _PERCENT.match(item)):
            parsed.append(f"{int(match.group(1))}%")
        elif isinstance(item, str) and item.strip().isdigit():
            parsed.append(_at_least_one(int(item), argument))
        else:
            raise BatchError(
                f"invalid argument {argument!r}: {item!r} is neither a number of hosts nor a whole percentage "
                'such as "20%"'
            )
    return tuple(parsed)


def _at_least_one(number: int, argument: str) -> int:
    if number < 1:
        raise BatchError(f"invalid argument {argument!r}: batch size {number} must be at least 1")
    return number


def batch_size(item: BatchItem, total: int) -> int:
    """Ansible's `pct_to_int`: a percentage of *all* hosts, rounded down, at least 1; a number as it is."""
    if isinstance(item, str):
        return int(int(item.rstrip("%")) / 100.0 * total) or 1
    return item


def plan_batches(hosts: Sequence[str], serial: Sequence[BatchItem]) -> list[list[str]]:
    """Ansible's `_get_serialized_batches`: the hosts in order, cut by the items in turn, the last one repeating
    until no host is left; percentages always of the whole host list (not of what remains)."""
    if not serial:
        raise BatchError("invalid argument 'batches': give at least one batch size")
    remaining = list(hosts)
    total = len(remaining)
    batches: list[list[str]] = []
    index = 0
    while remaining:
        size = batch_size(serial[index], total)
        batches.append(remaining[:size])
        remaining = remaining[size:]
        index = min(index + 1, len(serial) - 1)
    return batches


@dataclass(frozen=True)
class FailureLimit:
    """How many failed hosts a batch may have before the run stops: a count, or a percentage of the batch."""

    count: int | None = None
    percent: float | None = None

    def exceeded(self, failed: int, batch: int) -> bool:
        """Ansible: `failed / batch_size > max_fail_percentage / 100` — exceeded, not reached. A batch in
        which every host failed stops the run whatever the limit (Ansible ends the play then too)."""
        if batch and failed >= batch:
            return True
        if self.percent is not None:
            return batch > 0 and failed / batch > self.percent / 100.0
        return failed > (self.count or 0)

    def describe(self) -> str:
        if self.percent is not None:
            return f"more than {self.percent:g}% of a batch"
        return f"more than {self.count or 0} host{'s' if self.count != 1 else ''} of a batch"


STOP_ON_FIRST_FAILURE = FailureLimit(count=0)


def parse_max_failures(value: Any, *, argument: str = "max_failures") -> FailureLimit:
    """`0` (the default: stop at the first failure), `2`, `"25%"`."""
    if value is None:
        return STOP_ON_FIRST_FAILURE
    if isinstance(value, bool):
        raise BatchError(f"invalid argument {argument!r}: {value!r} is not a count or a percentage")
    if isinstance(value, int):
        if value < 0:
            raise BatchError(f"invalid argument {argument!r}: {value} must be 0 or more")
        return FailureLimit(count=value)
    if isinstance(value, str):
        match = re.match(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$", value)
        if match and float(match.group(1)) <= 100:
            return FailureLimit(percent=float(match.group(1)))
        if value.strip().isdigit():
            return FailureLimit(count=int(value))
    raise BatchError(
        f"invalid argument {argument!r}: {value!r} is neither a count of hosts nor a percentage from 0% to 100%"
    )
