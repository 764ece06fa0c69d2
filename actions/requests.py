"""What the user asked for, read from the tracker, and how to say it back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rasa_sdk import Tracker

ENTITY_NAMES = (
    "service", "version", "environment", "job", "branch", "build_number",
    "log_level", "time_range", "priority", "project", "issue_key",
    "event_source", "severity", "event_kind", "subscription_id",
)
# Entities a message may hold several of ("post builds and checks here"): their distinct
# values are kept in order, joined by commas (``OpsRequest.values`` splits them).
MULTI_VALUED = frozenset({"event_source", "event_kind", "subscription_id"})

# Which backend serves which intent. A new backend claims its intents here.
BACKEND_OF_INTENT = {
    "deploy": "Jenkins", "rollback": "Jenkins", "deploy_history": "Jenkins",
    "run_build": "Jenkins", "stop_build": "Jenkins", "build_status": "Jenkins",
    "list_jobs": "Jenkins", "build_failure": "Jenkins",
    "create_issue": "Jira", "issue_status": "Jira", "list_issues": "Jira",
    "comment_issue": "Jira", "update_issue": "Jira",
    "query_logs": "log source",
}


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
        """The request in a short sentence, e.g. 'deploy payments 2.4.1 to prod'."""
        e = self.entities
        target = e.get("job") or e.get("service")
        subject = " ".join(x for x in (target, e.get("version")) if x)
        build = f" #{e['build_number']}" if e.get("build_number") else ""
        env = e.get("environment")
        branch = e.get("branch")
        key = e.get("issue_key")
        prio = e.get("priority")
        project = e.get("project")
        subscription = self._events_in_words()
        ids = " and ".join(self.values("subscription_id"))
        parts: dict[str, list[str | None]] = {
            "deploy": ["deploy", subject or "(service not given)", f"to {env}" if env else None],
            "rollback": ["roll back", subject or "(service not given)",
                         f"on {env}" if env else None],
            "deploy_history": ["show what is deployed", f"for {subject}" if subject else None,
                               f"on {env}" if env else None],
            "run_build": ["run a build", f"of {target}" if target else None,
                          f"from {branch}" if branch else None],
            "stop_build": ["stop build", f"{target}{build}" if target or build else None],
            "build_status": ["show the build status",
                             f"of {target}{build}" if target or build else None,
                             f"on {branch}" if branch else None],
            "list_jobs": ["list the CI jobs"],
            "build_failure": ["explain why",
                              f"{target}{build}" if target or build else "the last build",
                              "failed"],
            "query_logs": ["search the logs", f"of {e['service']}" if e.get("service") else None,
                           f"on {env}" if env else None,
                           f"for {e['log_level']} lines" if e.get("log_level") else None,
                           f"from {e['time_range']}" if e.get("time_range") else None],
            "create_issue": ["open a", f"{prio} priority" if prio else None, "ticket",
                             f"in {project}" if project else None],
            "issue_status": ["show the status of", key or "an issue"],
            "list_issues": ["list", f"{prio} priority" if prio else None, "tickets",
                            f"in {project}" if project else None],
            "comment_issue": ["comment on", key or "an issue"],
            "update_issue": ["update", key or "an issue"],
            "subscribe": ["subscribe:", subscription or "events"],
            "unsubscribe": ["unsubscribe from", ids or subscription
                            or "this conversation's subscriptions"],
            "list_subscriptions": ["list this conversation's subscriptions"],
        }
        words = parts.get(self.intent, [self.intent.replace("_", " ")])
        return " ".join(w for w in words if w)

    def _events_in_words(self) -> str:
        """"critical alerts of nightly-integration for payments on prod, failures": the
        subscription a request names (empty when it names nothing)."""
        e = self.entities
        sources = " and ".join(self.values("event_source"))
        what = " ".join(x for x in (e.get("severity"), sources) if x)
        words = [what or None,
                 f"of {e['job']}" if e.get("job") else None,
                 f"for {e['service']}" if e.get("service") else None,
                 f"on {e['environment']}" if e.get("environment") else None]
        text = " ".join(w for w in words if w)
        kinds = [_KIND_WORDS.get(k, k) for k in self.values("event_kind")]
        if kinds:
            text = f"{text or 'events'}, {' and '.join(kinds)}"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "text": self.text, "confidence": self.confidence,
                "entities": dict(self.entities)}
