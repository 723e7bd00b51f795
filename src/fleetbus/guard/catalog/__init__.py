"""Built-in knowledge of well-known D-Bus services (`entries`) and the classification of an Operation with it
(`classification`). The policy decides; the catalog informs."""

from fleetbus.guard.catalog.classification import (
    READ_KINDS,
    Classification,
    Hints,
    LocalKnowledge,
    classify,
    protected_hits,
)
from fleetbus.guard.catalog.entries import (
    CALLER_UNIT,
    CATALOG,
    DANGEROUS_TARGETS,
    DEFAULT_PROTECTED_UNITS,
    JOB_ACTIONS,
    UNIT_PATH_PREFIX,
    Entry,
    Risk,
    UnitAction,
    lookup,
    unit_name_from_path,
)

__all__ = [
    "CALLER_UNIT",
    "CATALOG",
    "DANGEROUS_TARGETS",
    "DEFAULT_PROTECTED_UNITS",
    "JOB_ACTIONS",
    "READ_KINDS",
    "UNIT_PATH_PREFIX",
    "Classification",
    "Entry",
    "Hints",
    "LocalKnowledge",
    "Risk",
    "UnitAction",
    "classify",
    "lookup",
    "protected_hits",
    "unit_name_from_path",
]
