"""What the user asked for, read from the tracker, and how to say it back."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rasa_sdk import Tracker

ENTITY_NAMES = (
    "service", "version", "environment", "job", "branch", "build_number",
    "log_level", "time_range", "priority", "project", "issue_key",
)

# Which backend serves which intent. A new backend claims its intents here.
BACKEND_OF_INTENT = {
    "deploy": "Jenkins", "rollback": "Jenkins", "deploy_history": "Jenkins",
    "run_build": "Jenkins", "stop_build": "Jenkins", "build_status": "Jenkins",
    "list_jobs": "Jenkins", "build_failure": "Jenkins",
    "create_issue": "Jira", "issue_status": "Jira", "list_issues": "Jira",
    "comment_issue": "Jira", "update_issue": "Jira",
    "query_logs": "log source",
}


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
            if name in names and name not in entities and entity.get("value"):
                entities[name] = str(entity["value"])
        return cls(
            intent=intent,
            text=message.get("text") or "",
            confidence=float((message.get("intent") or {}).get("confidence") or 0.0),
            entities=entities,
        )

    def get(self, name: str) -> str | None:
        return self.entities.get(name)

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
        }
        words = parts.get(self.intent, [self.intent.replace("_", " ")])
        return " ".join(w for w in words if w)

    def as_dict(self) -> dict[str, Any]:
        return {"intent": self.intent, "text": self.text, "confidence": self.confidence,
                "entities": dict(self.entities)}
