"""What the user asked for, read from the tracker, and how to say it back."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from rasa_sdk import Tracker

from actions.registry import kind_of

ENTITY_NAMES = (
    "service", "version", "environment", "job", "branch", "build_number",
    "log_level", "time_range", "priority", "project", "issue_key",
    "event_source", "severity", "event_kind", "subscription_id",
)
# Entities a message may hold several of ("post builds and checks here"): their distinct
# values are kept in order, joined by commas (``OpsRequest.values`` splits them).
MULTI_VALUED = frozenset({"event_source", "event_kind", "subscription_id"})

_KIND_WORDS = {"failure": "failures", "recovery": "recoveries", "all": "every result"}


@dataclass(frozen=True)
class OpsRequest:
    """An ops intent with its entities, as understood from one message."""

    intent: str
    text: str
    confidence: float
    entities: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_tracker(cls, tracker: Tracker, extra: Iterable[str] = ()) -> OpsRequest:
        """The latest message's request; ``extra``: entity names an intent reads besides
        the built-in ones (a team-defined operation's parameters)."""
        message = tracker.latest_message or {}
        intent = (message.get("intent") or {}).get("name") or ""
        names = set(ENTITY_NAMES) | set(extra)
        entities: dict[str, str] = {}
        for entity in message.get("entities") or []:
            name = entity.get("entity")
            if name not in names or not entity.get("value"):
                continue
            value = str(entity["value"])
            if name not in entities:
                entities[name] = value
            elif name in MULTI_VALUED and value not in entities[name].split(","):
                entities[name] += f",{value}"
        return cls(
            intent=intent,
            text=message.get("text") or "",
            confidence=float((message.get("intent") or {}).get("confidence") or 0.0),
            entities=entities,
        )

    def get(self, name: str) -> str | None:
        return self.entities.get(name)

    def values(self, name: str) -> list[str]:
        """Every value of an entity, in order: ``["builds", "checks"]`` (MULTI_VALUED)."""
        return [v for v in (self.entities.get(name) or "").split(",") if v]

    def describe(self) -> str:
        """The request in a short sentence, e.g. 'deploy payments 2.4.1 to prod': its
        kind's ``describe``, or the intent's name in words."""
        kind = kind_of(self.intent)
        if kind is not None and kind.describe is not None:
            return kind.describe(self.entities)
        return self.intent.replace("_", " ")

    def as_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "text": self.text, "confidence": self.confidence,
                "entities": dict(self.entities)}


def phrase(*words: str | None) -> str:
    """The words that are there, joined: ``phrase("deploy", "payments", None)``."""
    return " ".join(w for w in words if w)


def target(e: Mapping[str, str]) -> str | None:
    """The job or service a request names."""
    return e.get("job") or e.get("service")


def subject(e: Mapping[str, str]) -> str:
    """'payments 2.4.1': the target and its version, as far as the request names them."""
    return phrase(target(e), e.get("version"))


def build_of(e: Mapping[str, str]) -> str | None:
    """'payments-ci #412', 'payments-ci', '#412' or None."""
    number = f"#{e['build_number']}" if e.get("build_number") else None
    return "".join(x for x in (target(e), " " if target(e) and number else None, number)
                   if x) or None


def on(preposition: str, value: str | None) -> str | None:
    """'on prod' if there is a value."""
    return f"{preposition} {value}" if value else None


def events_in_words(e: Mapping[str, str]) -> str:
    """"critical alerts of nightly-integration for payments on prod, failures": the
    subscription a request names (empty when it names nothing)."""
    def values(name: str) -> list[str]:
        return [v for v in (e.get(name) or "").split(",") if v]

    sources = " and ".join(values("event_source"))
    text = phrase(phrase(e.get("severity"), sources) or None, on("of", e.get("job")),
                  on("for", e.get("service")), on("on", e.get("environment")))
    kinds = [_KIND_WORDS.get(k, k) for k in values("event_kind")]
    if kinds:
        text = f"{text or 'events'}, {' and '.join(kinds)}"
    return text
