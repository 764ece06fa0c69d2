"""What an event is once it has been read from its source's wire format, and who wants it.

An :class:`Event` is source-neutral: the sources (``actions.events.sources``) turn an
Alertmanager notification, a Grafana alert, a GitHub check or a Jenkins build into one,
and everything after that (matching subscriptions, the outbox, rendering, buttons) reads
only these fields.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

__all__ = [
    "ALERT_SOURCES",
    "FAILURE",
    "KINDS",
    "MAX_KEY",
    "RECOVERY",
    "RESULT",
    "SOURCES",
    "SOURCE_GROUPS",
    "Event",
    "EventFormatError",
    "fit_key",
]

SOURCES = ("alertmanager", "grafana", "github", "jenkins")
ALERT_SOURCES = frozenset({"alertmanager", "grafana"})
# What people call them in a subscription ("alerts", "builds", "checks") -> sources.
SOURCE_GROUPS: Mapping[str, frozenset[str]] = {
    "alerts": ALERT_SOURCES,
    "builds": frozenset({"jenkins"}),
    "checks": frozenset({"github"}),
    **{name: frozenset({name}) for name in SOURCES},
}

# What an event says about the thing it concerns.
FAILURE = "failure"    # an alert firing, a check or build that failed
RECOVERY = "recovery"  # an alert resolved, the first green after red
RESULT = "result"      # any other finished result (a green build, a passed check)
KINDS = (FAILURE, RECOVERY, RESULT)

# The longest event key the store keeps (its key columns are VARCHAR(255)).
MAX_KEY = 255


def fit_key(key: str) -> str:
    """``key`` itself, or, when longer than ``MAX_KEY``, its start and a digest of it.

    Why: PostgreSQL refuses a longer value, and the refusal would come back on every
    redelivery and poll; the start keeps the key's namespace readable, the digest unique.
    """
    if len(key) <= MAX_KEY:
        return key
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:40]
    return f"{key[: MAX_KEY - len(digest) - 1]}~{digest}"


class EventFormatError(ValueError):
    """A webhook body that is not the source's format; the message says what is wrong."""


@dataclass(frozen=True)
class Event:
    """One notification from a source, normalised.

    ``key`` identifies the notification itself: the same payload delivered again has the
    same key (or one of the same ``aliases``) and is dropped. ``group`` identifies what it
    is about (an Alertmanager group, a check run, a job's build state): later events of
    the same group update the message of the first instead of posting again.
    """

    source: str
    key: str
    group: str
    kind: str
    status: str  # the source's own word: firing, resolved, failure, success, ...
    title: str  # one line: what is wrong, or what finished
    summary: str = ""  # more detail (an alert's description, a failure summary)
    service: str | None = None
    environment: str | None = None  # dev, staging or prod when recognised
    job: str | None = None
    repo: str | None = None  # owner/name (GitHub)
    severity: str | None = None  # critical, warning, info ... as the source labels it
    started_at: datetime | None = None
    ended_at: datetime | None = None
    # (label, url): where to look (Grafana panel, Alertmanager generator, console, run).
    links: tuple[tuple[str, str], ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    # How many things the notification covers (alerts in a group); 1 for a build or check.
    count: int = 1
    # Other keys of the same notification (a GitHub body's digest besides its delivery id):
    # an event any of whose keys was seen is dropped. Not kept with the event.
    aliases: tuple[str, ...] = ()

    def scoped(self, scope: str) -> Event:
        """The same notification with its key and aliases in ``scope``'s namespace.

        Why: a key taken from a webhook's body is the sender's word; under the scope of
        the credential that let it in, it can only ever drop a repeat of what came in
        under that credential, never what came in under another one or what opsbot
        observed itself (``connectors.events.Credential``).
        """
        return dataclasses.replace(self, key=fit_key(f"{scope}/{self.key}"),
                                   aliases=tuple(fit_key(f"{scope}/{alias}")
                                                 for alias in self.aliases))

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready, for the outbox (``from_dict`` reads it back)."""
        return {
            "source": self.source, "key": self.key, "group": self.group, "kind": self.kind,
            "status": self.status, "title": self.title, "summary": self.summary,
            "service": self.service, "environment": self.environment, "job": self.job,
            "repo": self.repo, "severity": self.severity,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "links": [list(link) for link in self.links], "labels": dict(self.labels),
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Event:
        def when(name: str) -> datetime | None:
            value = data.get(name)
            return datetime.fromisoformat(value) if isinstance(value, str) and value else None

        return cls(
            source=str(data["source"]), key=str(data["key"]), group=str(data["group"]),
            kind=str(data["kind"]), status=str(data.get("status") or ""),
            title=str(data.get("title") or ""), summary=str(data.get("summary") or ""),
            service=data.get("service"), environment=data.get("environment"),
            job=data.get("job"), repo=data.get("repo"), severity=data.get("severity"),
            started_at=when("started_at"), ended_at=when("ended_at"),
            links=tuple((str(a), str(b)) for a, b in data.get("links") or ()),
            labels={str(k): str(v) for k, v in (data.get("labels") or {}).items()},
            count=int(data.get("count") or 1),
        )
