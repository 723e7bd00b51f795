"""The policy file: TOML `[[rule]]`, `[[classify]]` and `protected_units`, validated and layered over a preset."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fleetbus.guard.catalog import LocalKnowledge, Risk
from fleetbus.guard.policy.engine import Policy, PolicyError
from fleetbus.guard.policy.rules import ArgMatch, Rule, Verdict
from fleetbus.operation import DBUS_CALL, LOCAL_HOST


def _strings(value: str | list[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    return (value,) if isinstance(value, str) else tuple(value)


class RuleEntry(BaseModel):
    """One [[rule]] table of a policy file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100)
    verdict: Literal["allow", "deny", "confirm"]
    reason: str = Field(min_length=1, max_length=500)
    kind: str | list[str] = DBUS_CALL
    hosts: str | list[str] | None = None
    bus: Literal["system", "session"] | None = None
    destination: str | list[str] | None = None
    path: str | list[str] | None = None
    interface: str | list[str] | None = None
    member: str | list[str] | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    risk: list[Literal["read", "routine", "unknown", "dangerous", "secret"]] | None = None

    @field_validator("args")
    @classmethod
    def _argument_indexes(cls, value: dict[str, Any]) -> dict[str, Any]:
        for key in value:
            # str.isdigit() is also true for "²" or "٣"; argument positions are plain ASCII numbers.
            if not (key.isascii() and key.isdigit()) or int(key) > 63:
                raise ValueError(f"argument matcher keys are argument positions 0..63, not {key!r}")
        return value

    @field_validator("kind", "hosts", "destination", "path", "interface", "member", "risk")
    @classmethod
    def _not_empty(cls, value: Any) -> Any:
        # An empty list matches nothing, which is never what a rule's author meant.
        if isinstance(value, list) and not value:
            raise ValueError("an empty list matches nothing; leave the field out to match anything")
        if isinstance(value, str) and not value:
            raise ValueError("an empty string matches nothing; leave the field out to match anything")
        return value

    def to_rule(self, origin: str) -> Rule:
        matchers = tuple(
            ArgMatch(int(index), pattern=wanted) if isinstance(wanted, str) else ArgMatch(int(index), value=wanted)
            for index, wanted in sorted(self.args.items(), key=lambda item: int(item[0]))
        )
        return Rule(
            name=self.name,
            verdict=Verdict(self.verdict),
            reason=self.reason,
            origin=origin,
            kinds=_strings(self.kind),
            hosts=_strings(self.hosts),
            bus=self.bus,
            destination=_strings(self.destination),
            path=_strings(self.path),
            interface=_strings(self.interface),
            member=_strings(self.member),
            args=matchers,
            risk=frozenset(Risk[r.upper()] for r in self.risk) if self.risk is not None else None,
        )


class ClassifyEntry(BaseModel):
    """One [[classify]] table: what members of a service the catalog does not know actually do."""

    model_config = ConfigDict(extra="forbid")

    interface: str | list[str]
    member: str | list[str]
    destination: str | list[str] | None = None
    risk: Literal["read", "routine", "dangerous", "secret"]
    reason: str = Field(min_length=1, max_length=500)

    def to_knowledge(self, origin: str) -> LocalKnowledge:
        interface, member = _strings(self.interface), _strings(self.member)
        if not interface or not member:
            raise PolicyError("a [[classify]] entry needs a non-empty interface and member")
        return LocalKnowledge(
            interface, member, Risk[self.risk.upper()], self.reason, origin, _strings(self.destination)
        )


class PolicyFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    protected_units: list[str] = Field(default_factory=list)
    classify: list[ClassifyEntry] = Field(default_factory=list)
    rule: list[RuleEntry] = Field(default_factory=list)


HostSelector = Callable[[Sequence[str]], Iterable[str]]
"""Ansible host patterns (a list, combined as Ansible combines one) → the names they select in the inventory
(raises ValueError for a bad pattern)."""


def load_policy(
    preset: str,
    policy_file: Path | None = None,
    protected_units: Iterable[str] = (),
    *,
    select_hosts: HostSelector | None = None,
) -> Policy:
    """The preset, with the rules and protected units of `policy_file` layered over it. With `select_hosts`,
    a rule's `hosts` are Ansible patterns (`fleet:!host03`) evaluated once, now, on the inventory."""
    rules: list[Rule] = []
    knowledge: list[LocalKnowledge] = []
    extra_protected = list(protected_units)
    sources = [f"preset:{preset}"]
    if policy_file is not None:
        try:
            data = tomllib.loads(policy_file.read_text())
            parsed = PolicyFile.model_validate(data)
        except OSError as exc:
            raise PolicyError(f"cannot read policy file {policy_file}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise PolicyError(f"policy file {policy_file} is not valid TOML: {exc}") from exc
        except ValidationError as exc:
            problems = "; ".join(_describe_problem(data, error["loc"], error["msg"]) for error in exc.errors())
            raise PolicyError(f"policy file {policy_file}: {problems}") from exc
        names = [entry.name for entry in parsed.rule]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise PolicyError(
                f"policy file {policy_file}: rule names must be unique; repeated: {', '.join(duplicates)}"
            )
        rules = [entry.to_rule(f"file:{policy_file}") for entry in parsed.rule]
        if select_hosts is not None:
            rules = [_with_host_names(rule, select_hosts, policy_file) for rule in rules]
        knowledge = [entry.to_knowledge(str(policy_file)) for entry in parsed.classify]
        extra_protected += parsed.protected_units
        sources.append(f"file:{policy_file}")
    return Policy.build(preset, rules, extra_protected, sources, knowledge)


def _with_host_names(rule: Rule, select_hosts: HostSelector, policy_file: Path) -> Rule:
    if rule.hosts is None or rule.hosts == ("*",):
        return rule  # `*` keeps meaning any host, `local` included (Ansible's `*` would leave local out)
    # The list is one pattern, as Ansible reads a list: `["fleet", "!host03"]` leaves host03 out. Selecting
    # item by item and uniting the results would let the exclusion (or intersection) select hosts of its own.
    try:
        names = set(select_hosts(list(rule.hosts)))
    except ValueError as exc:
        raise PolicyError(f"policy file {policy_file}: rule {rule.name!r} field hosts: {exc}") from exc
    words = {pattern.strip() for pattern in rule.hosts}
    if "*" in words and f"!{LOCAL_HOST}" not in words:
        names.add(LOCAL_HOST)  # `*` means local too, here as everywhere in fleetbus
    return dataclasses.replace(rule, host_names=frozenset(names))


def _describe_problem(data: Mapping[str, Any], location: Sequence[int | str], message: str) -> str:
    """`rule 2 ('restart-workers') field verdict: …` rather than pydantic's `rule.1.verdict: …`."""
    if len(location) >= 2 and location[0] == "rule" and isinstance(location[1], int):
        index = location[1]
        rules = data.get("rule")
        entry = rules[index] if isinstance(rules, list) and index < len(rules) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        label = f"rule {index + 1}" + (f" ({name!r})" if isinstance(name, str) else "")
        field_path = ".".join(str(part) for part in location[2:])
        return f"{label} field {field_path}: {message}" if field_path else f"{label}: {message}"
    return f"{'.'.join(str(part) for part in location) or 'top level'}: {message}"
