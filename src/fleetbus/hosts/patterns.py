"""Host patterns in Ansible's grammar, evaluated as ansible-core 2.14 evaluates them, for tools (`host=`),
policy rules (`hosts = ["web:!web03"]`) and tokens (`--hosts`).

    all  *              every inventory host (not `local`)
    web01  web          a host, or a group's hosts and its children's
    web*  *.example.com a glob over group and host names
    ~web\\d+             a regular expression (matched from the start of the name)
    web:db  web,db      union            web:&prod   intersection          web:!web03   exclusion
    web[0]  web[-1]     one host of the term's list     web[0:4]  web[2:]   an inclusive slice

Terms are applied unions first, then intersections, then exclusions, whatever order they are written in; a
pattern of only `&`/`!` terms starts from `all`. Hosts come in inventory order (a group's own hosts, then its
children's), unions in the order written. With a comma anywhere the pattern splits on commas only — the way to
write IPv6 addresses (`2001:db8::1,2001:db8::2`) and terms containing `:`. A term that names no host or group
matches nothing and is reported in `Selection.unmatched`, as Ansible warns about it.
"""

from __future__ import annotations

import fnmatch
import functools
import re
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from fleetbus.hosts.addresses import parse_address
from fleetbus.hosts.inventory.model import ALL, LOCAL, LOCAL_HOST, Host, Inventory

TermKind = Literal["union", "intersection", "exclusion"]
MAX_PATTERN_LENGTH = 4096
# Ansible: an inclusive subscript after any term but a regex: [2], [-1], [0:4], [2:].
_SUBSCRIPTED = re.compile(r"(.+)\[(-?[0-9]+|[0-9]+:[0-9]*)\]")
_DASHED_SUBSCRIPT = re.compile(r".+\[[0-9]+-[0-9]*\]")
# Without commas, terms split on ':' and whitespace, except inside a complete [...].
_COLON_TERM = re.compile(r"(?:[^\s:\[\]]|\[[^\]]*\])+")
# Ansible also looks among hosts when a term with one of these matched groups: `web.example.com` or `web*`.
_HOST_MARKERS = (".", "?", "*", "[")
_CACHED_PER_INVENTORY = 512


class PatternError(ValueError):
    """A host pattern that cannot be evaluated: empty, too long, a bad regex or subscript."""


@dataclass(frozen=True, slots=True)
class Term:
    text: str  # as written, e.g. "!web[0]"
    kind: TermKind
    expression: str  # the name, glob or ~regex, without operator and subscript
    subscript: tuple[int, int | None] | None  # (index, None) or (start, end) with end -1 for an open end
    matcher: re.Pattern[str] | None  # None: a plain name, compared as is

    @property
    def is_regex(self) -> bool:
        return self.expression.startswith("~")


@dataclass(frozen=True, slots=True)
class UnmatchedTerm:
    """A term that selected nothing because it names nothing, or whose subscript is out of range."""

    term: str
    expression: str
    reason: str


@dataclass(frozen=True, slots=True)
class Selection:
    pattern: str
    hosts: tuple[Host, ...]
    unmatched: tuple[UnmatchedTerm, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(host.name for host in self.hosts)

    def problems(self) -> list[str]:
        """What a caller can tell a person: `pattern 'web:nosuch': 'nosuch' names no host or group`, and
        `pattern 'x' matches no host` when nothing was selected."""
        said = [f"pattern {self.pattern!r}: {item.term!r} {item.reason}" for item in self.unmatched]
        if not self.hosts:
            said.append(f"pattern {self.pattern!r} matches no host")
        return said


def split_pattern(pattern: str) -> list[str]:
    """The terms of a pattern as Ansible splits them: on commas if there is one; else the whole pattern if
    it is one address (`2001:db8::1`, `web[01:20]`, `host:22`); else on colons and whitespace."""
    if "," in pattern:
        parts = pattern.split(",")
    elif parse_address(pattern) is not None:
        parts = [pattern]
    else:
        parts = _COLON_TERM.findall(pattern)
    return [part.strip() for part in parts if part.strip()]


def _term(text: str, *, allow_regex: bool) -> Term:
    kind: TermKind = "union"
    body = text
    if text[0] == "&":
        kind, body = "intersection", text[1:]
    elif text[0] == "!":
        kind, body = "exclusion", text[1:]
    if not body:
        raise PatternError(f"term {text!r} has an operator and nothing to apply it to")
    subscript: tuple[int, int | None] | None = None
    if body.startswith("~"):
        if not allow_regex:
            raise PatternError(f"term {text!r}: regular expressions are not accepted here")
        try:
            matcher: re.Pattern[str] | None = re.compile(body[1:])
        except re.error as error:
            raise PatternError(f"term {text!r} is not a valid regular expression: {error}") from None
        return Term(text, kind, body, None, matcher)
    found = _SUBSCRIPTED.fullmatch(body)
    if found:
        body, inside = found.group(1), found.group(2)
        if ":" in inside:
            start, end = inside.split(":")
            subscript = (int(start), int(end) if end else -1)
        else:
            subscript = (int(inside), None)
    elif _DASHED_SUBSCRIPT.fullmatch(body):
        raise PatternError(f"term {text!r}: a subscript is written [start:end] (Ansible removed [start-end])")
    plain = not any(marker in body for marker in ("*", "?", "["))
    matcher = None if plain else re.compile(fnmatch.translate(body))
    return Term(text, kind, body, subscript, matcher)


@dataclass(frozen=True, slots=True)
class HostPattern:
    """A compiled pattern: its terms in evaluation order (unions, intersections, exclusions)."""

    text: str  # for messages; a list of patterns shows joined by commas
    parts: tuple[str, ...]  # as given: one pattern, or the patterns of a list
    terms: tuple[Term, ...]

    def select(self, inventory: Inventory) -> Selection:
        """The hosts of `inventory` this pattern selects, in Ansible's order, and the terms that selected
        nothing for want of a host or group of that name."""
        selected: dict[str, Host] = {}
        unmatched: list[UnmatchedTerm] = []
        for term in self.terms:
            hosts, problem = _evaluate(term, inventory)
            if problem is not None:
                unmatched.append(problem)
            if term.kind == "union":
                for host in hosts:
                    selected.setdefault(host.name, host)
            else:
                names = {host.name for host in hosts}
                keep = term.kind == "intersection"
                selected = {name: host for name, host in selected.items() if (name in names) == keep}
        return Selection(self.text, tuple(selected.values()), tuple(unmatched))

    def names(self, inventory: Inventory) -> frozenset[str]:
        """The names this pattern selects in `inventory`, remembered per inventory (inventories never change)."""
        remembered = _remembered.get(inventory)
        if remembered is None:
            remembered = _remembered[inventory] = OrderedDict()
        names = remembered.get(self.parts)
        if names is None:
            names = remembered[self.parts] = frozenset(self.select(inventory).names)
            if len(remembered) > _CACHED_PER_INVENTORY:
                remembered.popitem(last=False)
        else:
            remembered.move_to_end(self.parts)
        return names

    def matches(self, host: str, inventory: Inventory) -> bool:
        """Whether the pattern selects `host`: the check a policy rule or a token makes before connecting."""
        return host in self.names(inventory)


_remembered: weakref.WeakKeyDictionary[Inventory, OrderedDict[tuple[str, ...], frozenset[str]]] = (
    weakref.WeakKeyDictionary()
)


def _evaluate(term: Term, inventory: Inventory) -> tuple[list[Host], UnmatchedTerm | None]:
    """Ansible's _match_one_pattern: the hosts of the groups the term names, then (if it named no group, or
    is a glob, regex or dotted name) the hosts it names; may repeat a host, before the subscript applies."""
    if term.kind == "union" and term.subscript is None and term.expression in inventory.hosts:
        return [inventory.hosts[term.expression]], None  # Ansible's shortcut: a host name is that host
    expression = term.expression
    matcher = term.matcher
    if matcher is None:
        groups = [expression] if expression in inventory.groups else []
    else:
        groups = [name for name in inventory.groups if matcher.match(name)]
    hosts: list[Host] = []
    for group in groups:
        hosts.extend(inventory.group_hosts(group))
    if not groups or term.is_regex or any(marker in expression for marker in _HOST_MARKERS):
        if matcher is None:
            found = inventory.hosts.get(expression)
            hosts.extend([found] if found is not None else [])
        else:
            hosts.extend(host for name, host in inventory.hosts.items() if matcher.match(name))
    if not hosts and expression == LOCAL:
        hosts = [LOCAL_HOST]
    if not hosts and not groups and expression != ALL:
        return [], UnmatchedTerm(term.text, expression, "names no host or group")
    if term.subscript is None or not hosts:
        return hosts, None
    start, end = term.subscript
    if end:  # Ansible's test: an end of 0 reads as a single index
        return hosts[start : (len(hosts) if end == -1 else end + 1)], None
    if not -len(hosts) <= start < len(hosts):
        return [], UnmatchedTerm(term.text, expression, f"has a subscript beyond its {len(hosts)} hosts")
    return [hosts[start]], None


@functools.lru_cache(maxsize=1024)
def _compile(parts: tuple[str, ...], allow_regex: bool) -> HostPattern:
    text = ",".join(parts)
    if not text.strip():
        raise PatternError("an empty host pattern selects nothing; write 'all' for every host")
    if len(text) > MAX_PATTERN_LENGTH:
        raise PatternError(f"a host pattern is at most {MAX_PATTERN_LENGTH} characters")
    terms = [_term(piece, allow_regex=allow_regex) for part in parts for piece in split_pattern(part)]
    if not terms:
        raise PatternError(f"host pattern {text!r} has no term")
    unions = [term for term in terms if term.kind == "union"]
    if not unions:
        unions = [Term(ALL, "union", ALL, None, None)]  # `!web` means `all:!web`, as in Ansible
    ordered = unions + [term for term in terms if term.kind == "intersection"]
    ordered += [term for term in terms if term.kind == "exclusion"]
    return HostPattern(text, parts, tuple(ordered))


def compile_pattern(pattern: str | Sequence[str], *, allow_regex: bool = True) -> HostPattern:
    """A pattern ready to evaluate; a list is the union of its patterns, as Ansible reads a list (its
    intersections and exclusions apply to the whole). Raises PatternError.

    `allow_regex=False` refuses `~regex` terms: Python's regular expressions can take exponential time, so
    patterns from untrusted callers should not carry them.
    """
    parts = (pattern,) if isinstance(pattern, str) else tuple(pattern)
    return _compile(parts, allow_regex)


def select_hosts(pattern: str | Sequence[str] | HostPattern, inventory: Inventory) -> Selection:
    compiled = pattern if isinstance(pattern, HostPattern) else compile_pattern(pattern)
    return compiled.select(inventory)


def matches(pattern: str | Sequence[str] | HostPattern, host: str, inventory: Inventory) -> bool:
    """Whether `pattern` selects `host` in `inventory`; cheap after the first call for a pattern."""
    compiled = pattern if isinstance(pattern, HostPattern) else compile_pattern(pattern)
    return compiled.matches(host, inventory)
