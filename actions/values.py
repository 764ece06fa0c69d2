"""Canonical entity values (docs/chat.md, "What opsbot understands"), shared by NLU and actions.

Free of Rasa imports: the action server (and typed answers to opsbot's questions) use
the same table as ``nlu.entities.EntityNormalizer``.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["ENVIRONMENTS", "EVENT_KINDS", "EVENT_SOURCES", "FROM_TEXT", "LOG_LEVELS",
           "PRIORITIES", "SEVERITIES", "normalise_value"]

# Canonical values (docs/chat.md, "What opsbot understands"). Training-data synonyms cover
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
# Subscriptions (actions/events): the sources people name (actions.events SOURCE_GROUPS),
# an alert's severity, and which results they want (failure brings its recovery along).
EVENT_SOURCES = {
    "alerts": "alerts", "alert": "alerts", "alarms": "alerts", "alarm": "alerts",
    "pages": "alerts", "page": "alerts",
    "builds": "builds", "build": "builds", "pipelines": "builds", "pipeline": "builds",
    "jenkins builds": "builds", "ci builds": "builds",
    "checks": "checks", "check": "checks", "pr checks": "checks", "pull request checks": "checks",
    "ci checks": "checks", "github checks": "checks", "pr check": "checks",
    "alertmanager": "alertmanager", "alertmanager alerts": "alertmanager",
    "prometheus": "alertmanager", "prometheus alerts": "alertmanager",
    "grafana": "grafana", "grafana alerts": "grafana",
    "jenkins": "jenkins", "github": "github",
}
SEVERITIES = {
    "critical": "critical", "crit": "critical", "sev1": "critical", "sev 1": "critical",
    "sev-1": "critical", "p1": "critical", "p0": "critical",
    "warning": "warning", "warnings": "warning", "warn": "warning", "warns": "warning",
    "sev2": "warning", "sev 2": "warning", "sev-2": "warning",
    "info": "info", "infos": "info", "informational": "info",
    "sev3": "info", "sev 3": "info", "sev-3": "info",
}
EVENT_KINDS = {
    "failure": "failure", "failures": "failure", "fails": "failure", "fail": "failure",
    "failed": "failure", "breaks": "failure", "broken": "failure", "goes red": "failure",
    "turns red": "failure", "red": "failure", "fires": "failure", "firing": "failure",
    "recovery": "recovery", "recoveries": "recovery", "recovers": "recovery",
    "recovered": "recovery", "is green again": "recovery", "green again": "recovery",
    "back to green": "recovery", "fixed": "recovery", "is fixed": "recovery",
    "resolved": "recovery", "passes again": "recovery",
    "all": "all", "every result": "all", "all results": "all", "every build": "all",
    "each run": "all", "every run": "all", "each build": "all", "everything": "all",
}
# What the words of an unlisted phrase say ("is passing again", "each check"): checked in order.
_KIND_WORDS = (
    (re.compile(r"\b(every|each|all|any)\b"), "all"),
    (re.compile(r"\b(again|recover\w*|fix\w*|resolv\w*|green|back)\b"), "recovery"),
    (re.compile(r"\b(fail\w*|break\w*|broke\w*|red|fir\w*|down)\b"), "failure"),
)
_SOURCE_WORDS = (
    (re.compile(r"\b(prometheus|alertmanager)\b"), "alertmanager"),
    (re.compile(r"\bgrafana\b"), "grafana"),
    (re.compile(r"\b(alert|alarm|page)s?\b"), "alerts"),
    (re.compile(r"\bchecks?\b"), "checks"),
    (re.compile(r"\b(build|pipeline|job|run)s?\b"), "builds"),
)
_CANONICAL = {"environment": ENVIRONMENTS, "log_level": LOG_LEVELS, "priority": PRIORITIES,
              "event_source": EVENT_SOURCES, "severity": SEVERITIES, "event_kind": EVENT_KINDS}
# Entities whose value is read from the words themselves, not from Rasa's synonym mapper:
# the mapper ignores the entity type, and "critical" (a priority), "p1" (a priority) or
# "failures" (a log level) would come out as another entity's value.
FROM_TEXT = frozenset({"event_source", "severity", "event_kind"})
_WORDS = {"event_source": _SOURCE_WORDS, "event_kind": _KIND_WORDS}


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
    if entity == "subscription_id":
        return text.lower()
    table = _CANONICAL.get(entity)
    if table is not None:
        key = " ".join(re.sub(r"\s+(env|environment)$", "", text.lower()).strip(" .,!?").split())
        if key in table:
            return table[key]
        # Words the tables do not list ("the PR checks", "is passing again"): what they say.
        for pattern, canonical in _WORDS.get(entity, ()):
            if pattern.search(key):
                return canonical
        return key
    return text
