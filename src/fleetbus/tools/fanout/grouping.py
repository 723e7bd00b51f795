"""Merging identical answers from many hosts under a compressed host range (`web[01-40]`, as ClusterShell's
`clush -b` and `dshbak -c` print them), ignoring the fields that always differ, failures merged by kind+message."""

from __future__ import annotations

import fnmatch
import functools
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from fleetbus.tools.fanout.engine import Outcome

_DIGITS = re.compile(r"(\d+)")

# ---- host ranges ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Number:
    value: int
    text: str

    @property
    def padding(self) -> int:
        """The width a run starting here pads to: `007` pads to 3, `7` and `10` to nothing."""
        return len(self.text) if len(self.text) > 1 and self.text.startswith("0") else 0


def _runs(numbers: Iterable[_Number]) -> str:
    """`1,2,3,5` → `1-3,5`; zero padding is kept, and a run never mixes `07` with `7`."""
    ordered = sorted(set(numbers), key=lambda n: (n.value, n.text))
    remaining = {n.text for n in ordered}
    pieces: list[str] = []
    for first in ordered:
        if first.text not in remaining:
            continue  # already inside an earlier run
        remaining.discard(first.text)
        width, last = first.padding, first.value
        # `09` runs on into `10` (zfill keeps it), never into `010` or from `7`.
        while (following := str(last + 1).zfill(width)) in remaining:
            remaining.discard(following)
            last += 1
        end = str(last).zfill(width)
        pieces.append(first.text if end == first.text else f"{first.text}-{end}")
    return ",".join(pieces)


def compress_hosts(names: Iterable[str]) -> str:
    """The shortest common form of many host names: `host01,host02,host03,host05` → `host[01-03,05]`.

    Names are split into text and numbers; names equal but for one number are folded on it, the last number
    first (so `rack1-n01…rack2-n04` becomes `rack[1-2]-n[01-04]`, as ClusterShell folds). Names without numbers
    stay as they are. Ranges use ClusterShell's `[a-b,c]`, not Ansible's `[a:b]`: they are for reading.
    """
    # An item: its literal parts and, between them, sets of numbers (len(parts) == len(numbers) + 1).
    items: list[tuple[tuple[str, ...], tuple[frozenset[_Number], ...]]] = []
    for name in dict.fromkeys(names):
        split = _DIGITS.split(name)
        parts = tuple(split[0::2])
        numbers = tuple(frozenset({_Number(int(text), text)}) for text in split[1::2])
        items.append((parts, numbers))
    dimensions = max((len(numbers) for _, numbers in items), default=0)
    for axis in range(dimensions - 1, -1, -1):
        # Gathered in mutable sets, frozen after the pass: a union per name would copy the set every time.
        merged: dict[tuple[Any, ...], tuple[tuple[str, ...], tuple[frozenset[_Number], ...], set[_Number]]] = {}
        for parts, numbers in items:
            if len(numbers) <= axis:
                merged.setdefault((parts, numbers, None), (parts, numbers, set()))
                continue
            key = (parts, numbers[:axis], numbers[axis + 1 :])
            entry = merged.setdefault(key, (parts, numbers, set()))
            entry[2].update(numbers[axis])
        items = [
            (parts, (*numbers[:axis], frozenset(axis_numbers), *numbers[axis + 1 :]) if axis_numbers else numbers)
            for parts, numbers, axis_numbers in merged.values()
        ]
    rendered = [(_sort_key(parts, numbers), _render(parts, numbers)) for parts, numbers in items]
    return ",".join(text for _, text in sorted(rendered))


def _render(parts: tuple[str, ...], numbers: tuple[frozenset[_Number], ...]) -> str:
    pieces = [parts[0]]
    for number_set, part in zip(numbers, parts[1:], strict=True):
        runs = _runs(number_set)
        pieces.append(runs if len(number_set) == 1 else f"[{runs}]")
        pieces.append(part)
    return "".join(pieces)


def _sort_key(parts: tuple[str, ...], numbers: tuple[frozenset[_Number], ...]) -> tuple[Any, ...]:
    key: list[Any] = [parts[0]]
    for number_set, part in zip(numbers, parts[1:], strict=True):
        key.append(min(n.value for n in number_set))
        key.append(part)
    return tuple(key)


def expand_folded(text: str) -> list[str]:
    """The names a `compress_hosts` answer stands for (the reverse, for tests and for a person's patterns)."""
    names: list[str] = []
    for item in _split_top(text):
        expansions = [""]
        for literal, inside in re.findall(r"([^\[]*)(?:\[([^\]]*)\])?", item):
            choices = [literal]
            if inside:
                choices = [literal + value for value in _expand_runs(inside)]
            expansions = [prefix + choice for prefix in expansions for choice in choices]
        names.extend(expansions)
    return names


def _split_top(text: str) -> list[str]:
    items, depth, current = [], 0, ""
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if char == "," and depth == 0:
            items.append(current)
            current = ""
        else:
            current += char
    if current:
        items.append(current)
    return items


def _expand_runs(inside: str) -> list[str]:
    values: list[str] = []
    for run in inside.split(","):
        first, _, last = run.partition("-")
        if not last:
            values.append(first)
            continue
        width = len(first) if first.startswith("0") and len(first) > 1 else 0
        values.extend(str(n).zfill(width) for n in range(int(first), int(last) + 1))
    return values


# ---- fields that always differ ---------------------------------------------------------------------------


def volatile_paths(value: Any, patterns: Sequence[str]) -> dict[str, Any]:
    """The values at paths matching `patterns` (dotted, each segment a glob over keys or list indexes, `**` any
    depth): `since`, `units.*.main_pid`, `**.timestamp`, `entries.*.__*TIMESTAMP`."""
    found: dict[str, Any] = {}
    for compiled in _compile(tuple(patterns)):
        for path, item in _walk(value, compiled, 0, []):
            found[".".join(path)] = item
    return found


def without_volatile(value: Any, patterns: Sequence[str]) -> Any:
    """A copy of `value` with every path matching `patterns` removed."""
    if not patterns:
        return value
    drop = {tuple(path.split(".")) for path in volatile_paths(value, patterns)}
    return _prune(value, (), drop) if drop else value


_ANY_DEPTH = "**"
_Segment = str | re.Pattern[str]
"""A literal key (looked up directly: most declared paths are plain names), `**`, or a compiled glob."""


@functools.lru_cache(maxsize=256)
def _compile(patterns: tuple[str, ...]) -> tuple[tuple[_Segment, ...], ...]:
    def segment(text: str) -> _Segment:
        if text == _ANY_DEPTH or not any(char in text for char in "*?["):
            return text
        return re.compile(fnmatch.translate(text))

    return tuple(tuple(segment(part) for part in pattern.split(".")) for pattern in patterns)


def _walk(node: Any, segments: tuple[_Segment, ...], at: int, path: list[str]) -> Iterable[tuple[list[str], Any]]:
    if at == len(segments):
        yield path, node
        return
    head = segments[at]
    if head == _ANY_DEPTH:
        yield from _walk(node, segments, at + 1, path)  # zero segments
        for key, child in _children(node):
            yield from _walk(child, segments, at, [*path, key])
        return
    if isinstance(head, str):
        if isinstance(node, Mapping) and head in node:
            yield from _walk(node[head], segments, at + 1, [*path, head])
        elif isinstance(node, list) and head.isdigit() and int(head) < len(node):
            yield from _walk(node[int(head)], segments, at + 1, [*path, head])
        return
    for key, child in _children(node):
        if head.fullmatch(key):
            yield from _walk(child, segments, at + 1, [*path, key])


def _children(node: Any) -> Iterable[tuple[str, Any]]:
    if isinstance(node, Mapping):
        return ((str(key), child) for key, child in node.items())
    if isinstance(node, list):
        return ((str(index), child) for index, child in enumerate(node))
    return ()


def _prune(node: Any, path: tuple[str, ...], drop: set[tuple[str, ...]]) -> Any:
    if isinstance(node, Mapping):
        return {k: _prune(v, (*path, str(k)), drop) for k, v in node.items() if (*path, str(k)) not in drop}
    if isinstance(node, list):
        return [_prune(v, (*path, str(i)), drop) for i, v in enumerate(node) if (*path, str(i)) not in drop]
    return node


# ---- groups ------------------------------------------------------------------------------------------------


@dataclass
class Group:
    hosts: list[str]
    answer: Any = None
    kind: str | None = None
    message: str = ""
    whole: Any = None
    """The first host's answer with its volatile fields: a group of one shows it whole, so an outlier (the one
    failed unit) comes with everything it said — its error lines included."""

    def row(self) -> dict[str, Any]:
        base: dict[str, Any] = {"hosts": compress_hosts(self.hosts), "count": len(self.hosts)}
        if self.kind is not None:
            return {**base, "kind": self.kind, "message": self.message}
        return {**base, "answer": self.whole if len(self.hosts) == 1 else self.answer}


@dataclass
class Grouped:
    answers: list[Group] = field(default_factory=list)
    """Identical answers, the largest group first: the groups after the first are the outliers."""
    failures: list[Group] = field(default_factory=list)
    """By kind and message, the largest first."""
    varying: list[dict[str, Any]] = field(default_factory=list)
    """Rows `{host, path, value}` of the fields ignored when grouping, when asked for."""


def group_outcomes(
    outcomes: Sequence[Outcome[Any]], *, volatile: Sequence[str] = (), show_varying: bool = False
) -> Grouped:
    """Hosts with equal answers (once the `volatile` paths are left out) in one group; failures grouped by
    kind and message. Within a group hosts keep the order they were given; groups are ordered largest first,
    then by their first host's position, so the answer is stable from call to call."""
    position = {outcome.host: index for index, outcome in enumerate(outcomes)}
    answers: dict[str, Group] = {}
    failed: dict[tuple[str, str], Group] = {}
    varying: list[dict[str, Any]] = []
    for outcome in outcomes:
        if not outcome.ok:
            key = (str(outcome.kind), outcome.message)
            failed.setdefault(key, Group([], kind=outcome.kind, message=outcome.message)).hosts.append(outcome.host)
            continue
        stable = without_volatile(outcome.value, volatile)
        canonical = json.dumps(stable, sort_keys=True, separators=(",", ":"), default=str)
        answers.setdefault(canonical, Group([], answer=stable, whole=outcome.value)).hosts.append(outcome.host)
        if show_varying and volatile:
            for path, value in volatile_paths(outcome.value, volatile).items():
                varying.append({"host": outcome.host, "path": path, "value": value})

    def order(group: Group) -> tuple[int, int]:
        return (-len(group.hosts), position[group.hosts[0]])

    return Grouped(sorted(answers.values(), key=order), sorted(failed.values(), key=order), varying)
