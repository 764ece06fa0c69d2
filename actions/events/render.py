"""How an event reads in the chat, and the buttons that lead to the next step.

A message names what is wrong, where, since when, and links back to the source. Its
buttons are signed payloads (``actions.guard.identity.sign_payload``), the same a person
could type: "Show errors" is a log query for the service and time, "Roll back <service>
on <env>" the normal rollback preview, "Open a ticket" the create-issue form with the
alert's summary, "Why did it fail?" the failure report of a red build, and any
team-defined operation a route names, with the parameters the event's labels give.
Pressing one is asking in words: the presser is the requester, under the policy.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from actions.events._model import ALERT_SOURCES, FAILURE, RECOVERY, Event
from actions.guard.identity import sign_payload

__all__ = ["buttons_for", "duration_text", "render", "render_summary"]

MAX_SUMMARY = 600  # characters of an alert's description or a failure summary
_TICKET_SUMMARY = 200


def _clock(moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    return moment.astimezone(UTC).strftime("%H:%M UTC")


def duration_text(seconds: float) -> str:
    """3m, 1h 5m, 2d 3h: how long something lasted."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, _ = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def _where(event: Event) -> str:
    target = event.job or event.service or event.repo
    parts = [p for p in (target, f"on {event.environment}" if event.environment else None) if p]
    return " ".join(parts)


def _short(text: str, limit: int) -> str:
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def render(event: Event, kind: str, *, first: Event | None = None,
           first_at: datetime | None = None, now: datetime | None = None) -> str:
    """The message for ``event`` as ``kind`` (its kind for this conversation).

    ``first`` and ``first_at``: the group's earlier event and when the conversation got it
    (a resolution says how long the problem lasted).
    """
    now = now or datetime.now(UTC)
    where = _where(event)
    lines: list[str] = []
    if event.source in ALERT_SOURCES:
        severity = f" ({event.severity})" if event.severity else ""
        count = f", {event.count} alerts" if event.count > 1 else ""
        if kind == RECOVERY:
            began = event.started_at or (first.started_at if first else None) or first_at
            ended = event.ended_at or now
            lasted = f" after {duration_text((ended - began).total_seconds())}" if began else ""
            lines.append(f"RESOLVED{lasted}: {event.title}{' - ' + where if where else ''}")
            lines.append(f"It started at {_clock(began)} and ended at {_clock(ended)}.")
        else:
            lines.append(f"ALERT{severity}: {event.title}{' - ' + where if where else ''}")
            lines.append(f"Firing since {_clock(event.started_at)}{count}.")
        if event.summary and kind != RECOVERY:
            lines.append(_short(event.summary, MAX_SUMMARY))
    else:
        if kind == RECOVERY:
            since = first.title if first else "failing"
            ended = event.ended_at or now
            lasted = (f" after {duration_text((ended - first_at).total_seconds())}"
                      if first_at else "")
            lines.append(f"Back to green{lasted}: {event.title}")
            lines.append(f"(Before: {since}.)")
        elif kind == FAILURE:
            lines.append(f"FAILED: {event.title}")
        else:
            lines.append(event.title)
        if event.summary and kind != RECOVERY:
            lines.append(_short(event.summary, MAX_SUMMARY))
    for label, url in event.links:
        lines.append(f"{label}: {url}")
    return "\n".join(lines)


def render_summary(events: Sequence[Event], window_seconds: float) -> str:
    """One message for a flood: how many, of what, about which services."""
    by_source: dict[str, int] = {}
    targets: dict[str, int] = {}
    for event in events:
        by_source[event.source] = by_source.get(event.source, 0) + 1
        target = event.job or event.service or event.repo or "unnamed"
        targets[target] = targets.get(target, 0) + 1
    sources = ", ".join(f"{n} from {source}" for source, n in sorted(by_source.items()))
    top = sorted(targets.items(), key=lambda kv: (-kv[1], kv[0]))
    listed = ", ".join(f"{name} ({n})" for name, n in top[:8])
    more = f" and {len(top) - 8} more" if len(top) > 8 else ""
    lines = [f"{len(events)} more events arrived within {duration_text(window_seconds)} "
             f"({sources}), too many to post one by one. About: {listed}{more}."]
    for event in list(events)[:5]:
        lines.append(f"- {event.title}")
    if len(events) > 5:
        lines.append(f"- … {len(events) - 5} more")
    return "\n".join(lines)


OperationParameters = Callable[[str], Sequence[str] | None]


def buttons_for(event: Event, kind: str, operations: Sequence[str] = (),
                parameters_of: OperationParameters | None = None, *, chat: str,
                expires: float) -> list[dict[str, str]]:
    """The next steps for ``event``, as buttons signed for ``chat`` (the conversation the
    message goes to) and pressable until ``expires`` (epoch seconds).

    A resolved alert keeps its buttons (the rollback or the ticket may still be wanted
    once the pages stop); a build or check back to green has none.
    """
    if kind == RECOVERY and event.source not in ALERT_SOURCES:
        return []
    if kind == RECOVERY:
        kind = FAILURE
    buttons: list[dict[str, str]] = []

    def add(title: str, intent: str, entities: Mapping[str, str]) -> None:
        buttons.append({"title": title[:64],
                        "payload": sign_payload(intent, {k: v for k, v in entities.items() if v},
                                                scope=chat, expires=expires)})

    service, env = event.service, event.environment
    if kind == FAILURE and event.source in ALERT_SOURCES and service:
        add("Show errors", "query_logs", {"service": service, "environment": env or "",
                                          "log_level": "error", "time_range": "last 1 hour"})
        if env:
            add(f"Roll back {service} on {env}", "rollback",
                {"service": service, "environment": env})
    if kind == FAILURE and event.source == "jenkins" and event.job:
        number = event.labels.get("build_number", "")
        add("Why did it fail?", "build_failure", {"job": event.job, "build_number": number})
    if kind == FAILURE:
        add("Open a ticket", "create_issue",
            {"summary": _short(f"{event.title}{' - ' + _where(event) if _where(event) else ''}",
                               _TICKET_SUMMARY)})
    for name in operations:
        names = parameters_of(name) if parameters_of is not None else None
        if names is None:
            continue  # an operation the files no longer define
        # The event's own fields win over raw labels of the same name: the button acts on
        # what the message says (a label "environment=prod" on an alert shown "on dev"
        # does not turn the button into a prod one).
        values = {**event.labels, "service": service or "", "environment": env or "",
                  "job": event.job or ""}
        add(name.replace("_", " ").capitalize(), name,
            {p: str(values[p]) for p in names if values.get(p)})
    return buttons
