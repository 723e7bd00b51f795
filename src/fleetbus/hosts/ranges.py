"""Host ranges as Ansible inventories write them: `web[01:20]`, `db-[a:f]`, `[01:20:2]`, several in one name.

The size of an expansion is computed before any name is made, so `web[0:99999999]` costs nothing but a refusal.
"""

from __future__ import annotations

import itertools
import string
from dataclasses import dataclass

# Ansible's alphabet for letter ranges: `[a:z]`, `[A:Z]`, and `[x:C]` running on through the capitals.
_LETTERS = string.ascii_letters
# A bound longer than this is a typo or an attack; either way the count would be absurd.
_MAX_BOUND_DIGITS = 12


class HostRangeError(ValueError):
    """A range that cannot be expanded."""


class HostRangeTooLarge(HostRangeError):
    """A range that would expand to more names than allowed."""


@dataclass(frozen=True, slots=True)
class _Segment:
    """One `[begin:end:step]` of a name: the values it stands for, made only when asked."""

    begin: int
    end: int
    step: int
    width: int  # zero-padding of numbers, 0 for none
    letters: bool

    def __len__(self) -> int:
        return len(range(self.begin, self.end + 1, self.step))

    def values(self) -> list[str]:
        if self.letters:
            return list(_LETTERS[self.begin : self.end + 1 : self.step])
        return [str(number).zfill(self.width) for number in range(self.begin, self.end + 1, self.step)]


def has_range(name: str) -> bool:
    """Whether a host name from an inventory is a range to expand (Ansible: any `[` makes it one)."""
    return "[" in name


def _parse_segment(inside: str, name: str) -> _Segment:
    bounds = inside.split(":")
    if len(bounds) not in (2, 3):
        raise HostRangeError(f"host range [{inside}] in {name!r} must be [begin:end] or [begin:end:step]")
    begin, end = bounds[0] or "0", bounds[1]  # Ansible reads a missing begin as 0
    if not end:
        raise HostRangeError(f"host range [{inside}] in {name!r} has no end")
    step = 1
    if len(bounds) == 3:
        if not bounds[2].isdigit() or int(bounds[2]) == 0:
            raise HostRangeError(f"host range [{inside}] in {name!r}: the step must be a positive whole number")
        step = int(bounds[2])
    if len(begin) == 1 and len(end) == 1 and begin in _LETTERS and end in _LETTERS:
        first, last = _LETTERS.index(begin), _LETTERS.index(end)
        if first > last:
            raise HostRangeError(f"host range [{inside}] in {name!r} runs backwards")
        return _Segment(first, last, step, 0, letters=True)
    if not (begin.isascii() and begin.isdigit() and end.isascii() and end.isdigit()):
        raise HostRangeError(f"host range [{inside}] in {name!r} must run between two numbers or two single letters")
    if len(begin) > _MAX_BOUND_DIGITS or len(end) > _MAX_BOUND_DIGITS:
        raise HostRangeError(f"host range [{inside}] in {name!r} has bounds of more than {_MAX_BOUND_DIGITS} digits")
    width = 0
    if begin.startswith("0") and len(begin) > 1:
        # A leading zero asks for zero-padded names, which only makes sense if both bounds have the width.
        if len(begin) != len(end):
            raise HostRangeError(f"host range [{inside}] in {name!r}: padded bounds must have the same width")
        width = len(begin)
    return _Segment(int(begin), int(end), step, width, letters=False)


def _split(name: str) -> tuple[list[str], list[_Segment]]:
    """The literal parts of `name` and the ranges between them: len(parts) == len(segments) + 1."""
    parts: list[str] = []
    segments: list[_Segment] = []
    rest = name
    while "[" in rest:
        opening = rest.index("[")
        closing = rest.find("]", opening)
        if closing < 0 or "]" in rest[:opening]:
            raise HostRangeError(f"unbalanced brackets in host range {name!r}")
        parts.append(rest[:opening])
        segments.append(_parse_segment(rest[opening + 1 : closing], name))
        rest = rest[closing + 1 :]
    if "]" in rest:
        raise HostRangeError(f"unbalanced brackets in host range {name!r}")
    parts.append(rest)
    return parts, segments


def count_hosts(name: str) -> int:
    """How many names `name` expands to, without making them."""
    _, segments = _split(name)
    total = 1
    for segment in segments:
        total *= len(segment)
    return total


def expand_hosts(name: str, *, limit: int) -> list[str]:
    """Every name `name` stands for, in Ansible's order (the first range varies slowest).

    A range that runs backwards over numbers (`[9:1]`) stands for no name, as in Ansible. More than `limit`
    names is refused before any is made.
    """
    parts, segments = _split(name)
    total = 1
    for segment in segments:
        total *= len(segment)
    if total > limit:
        raise HostRangeTooLarge(f"host range {name!r} expands to {total:,} names, more than the limit of {limit:,}")
    if not segments:
        return [name]
    names = []
    for values in itertools.product(*(segment.values() for segment in segments)):
        pieces = [parts[0]]
        for value, part in zip(values, parts[1:], strict=True):
            pieces.append(value)
            pieces.append(part)
        names.append("".join(pieces))
    return names
