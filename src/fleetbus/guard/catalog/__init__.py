"""Built-in knowledge of well-known D-Bus services (`entries`) and the classification of an Operation with it
(`classification`). The policy decides; the catalog informs."""

from fleetbus.guard.catalog.classification import (
    READ_KINDS,
    Classification,
    Forbidden,
    Hints,
    LocalKnowledge,
    classify,
    may_become_dangerous,
    protected_hits,
)
from fleetbus.guard.catalog.entries import (
    CALLER_UNIT,
    CATALOG,
    DANGEROUS_TARGETS,
    DEFAULT_PROTECTED_UNITS,
    JOB_ACTIONS,
    PROPERTIES,
    UNIT_PATH_PREFIX,
    Effect,
    Entry,
    PropertyEntry,
    Risk,
    UnitAction,
    lookup,
    lookup_property,
    unit_name_from_path,
)
from fleetbus.guard.catalog.secrets import SecretArg, SecretKind

__all__ = [
    "CALLER_UNIT",
    "CATALOG",
    "DANGEROUS_TARGETS",
    "DEFAULT_PROTECTED_UNITS",
    "JOB_ACTIONS",
    "PROPERTIES",
    "READ_KINDS",
    "UNIT_PATH_PREFIX",
    "Classification",
    "Effect",
    "Entry",
    "Forbidden",
    "Hints",
    "LocalKnowledge",
    "PropertyEntry",
    "Risk",
    "SecretArg",
    "SecretKind",
    "UnitAction",
    "classify",
    "lookup",
    "lookup_property",
    "may_become_dangerous",
    "protected_hits",
    "unit_name_from_path",
]
