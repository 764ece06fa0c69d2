"""Canonical entity values (DESIGN.md, "Intents and entities"), shared by NLU and actions.

Free of Rasa imports: the action server (and typed answers to opsbot's questions) use
the same table as ``nlu.entities.EntityNormalizer``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["ENVIRONMENTS", "LOG_LEVELS", "PRIORITIES", "normalise_value"]

# Canonical values (DESIGN.md, "Intents and entities"). Training-data synonyms cover
# the common words; these catch what the synonym mapper cannot (case, punctuation).
ENVIRONMENTS = {
    "prod": "prod", "production": "prod", "prd": "prod", "live": "prod",
    "staging": "staging", "stage": "staging", "stg": "staging",
    "preprod": "staging", "pre-prod": "staging",
    "dev": "dev", "development": "dev",
}
LOG_LEVELS = {
    "error": "error", "errors": "error", "exception": "error", "exceptions": "error",
    "err": "error", "errs": "error", "failures": "error",
    "warning": "warning", "warnings": "warning", "warn": "warning", "warns": "warning",
    "info": "info", "infos": "info", "informational": "info",
    "debug": "debug", "debugging": "debug",
    "fatal": "fatal", "fatals": "fatal", "crash": "fatal", "crashes": "fatal",
    "panic": "fatal", "panics": "fatal",
}
PRIORITIES = {
    "highest": "highest", "critical": "highest", "blocker": "highest", "blockers": "highest",
    "p0": "highest", "urgent": "highest",
    "high": "high", "p1": "high", "important": "high",
    "medium": "medium", "normal": "medium", "p2": "medium",
    "low": "low", "minor": "low", "p3": "low",
    "lowest": "lowest", "trivial": "lowest", "p4": "lowest",
}
_CANONICAL = {"environment": ENVIRONMENTS, "log_level": LOG_LEVELS, "priority": PRIORITIES}


def normalise_value(entity: str, value: Any) -> Any:
    """The canonical value of an entity as opsbot's actions expect it."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if entity == "issue_key":
        return text.upper()
    if entity == "build_number":
        return text.lstrip("#")
    if entity == "project":
        return text.upper()
    table = _CANONICAL.get(entity)
    if table is not None:
        key = re.sub(r"\s+(env|environment)$", "", text.lower()).strip(" .,!?")
        return table.get(key, key)
    return text
