"""query_logs: "errors from payments in the last hour", answered from the configured log source.

The answer is made for a chat: the time window it read, a count per level over every
match, and the newest matching lines, shortened and grouped, never a dump.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from actions.backends.logs import LOGS, LogLine, LogQuery, LogResult, parse_time_range
from actions.catalog import resolve_name
from actions.confirmations import record_read
from actions.registry import IntentKind
from actions.requests import on, phrase
from actions.turn import Turn

__all__ = ["INTENTS", "format_result", "free_text", "query_logs"]

MAX_LINES = 10
MAX_LINE_CHARS = 160
_TEXT = re.compile(
    r"\b(?:containing|contains|with the text|with text|matching|mentioning|that say|saying|"
    r"about|with)\s+(?P<q>\"[^\"]+\"|'[^']+'|\S.*?)\s*(?:\?|$)",
    re.I,
)
_LEVEL_WORDS = {"error", "errors", "exceptions", "warnings", "warning", "logs", "log lines"}


def free_text(text: str) -> str | None:
    """The phrase to search for: 'containing timeout', 'mentioning "card declined"'."""
    found = _TEXT.search(text)
    if not found:
        return None
    phrase = found.group("q").strip()
    if phrase[:1] in "\"'" and phrase[-1:] == phrase[:1]:
        phrase = phrase[1:-1]
    # "with errors", "about payments": not a search text.
    if phrase.lower() in _LEVEL_WORDS or len(phrase) > 200:
        return None
    return phrase or None


def _clock(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M")


def _window(start: datetime, end: datetime) -> str:
    local_start, local_end = start.astimezone(), end.astimezone()
    if local_start.date() == local_end.date():
        return f"{_clock(start)} and {_clock(end)}"
    return f"{local_start:%a %H:%M} and {local_end:%a %H:%M}"


def _line(line: LogLine) -> str:
    env = f" [{line.environment}]" if line.environment else ""
    message = " ".join(line.message.split())
    if len(message) > MAX_LINE_CHARS:
        message = message[: MAX_LINE_CHARS - 1] + "…"
    return f"{line.at.astimezone():%H:%M:%S} {line.level.upper():7} {line.service}{env} {message}"


def format_result(result: LogResult, query: LogQuery, what: str) -> str:
    """The chat answer for one log query."""
    window = _window(query.start, query.end)
    if result.total == 0:
        return (f"No {what} between {window}. (Searched {result.source}.) "
                "Try a longer time range or fewer filters.")
    counts = ", ".join(f"{n} {level}" for level, n in sorted(result.counts.items(),
                                                            key=lambda kv: -kv[1]))
    shown = result.lines[:MAX_LINES]
    header = (f"{result.total} {what} between {window} ({counts}). "
              f"{'Newest first' if len(shown) > 1 else 'The line'}:")
    body = "\n".join(_line(line) for line in shown)
    more = f"\n… and {result.total - len(shown)} more" if result.total > len(shown) else ""
    return f"{header}\n```\n{body}\n```{more}"


async def query_logs(turn: Turn) -> None:
    source = turn.backend(LOGS)
    request = turn.request
    if source is None:
        return
    try:
        start, end = parse_time_range(request.get("time_range"), datetime.now(UTC))
    except ValueError as exc:
        turn.say(str(exc))
        return
    service = request.get("service")
    note = ""
    if service:
        known = await source.services(until=end)
        found = resolve_name(service, known)
        if found.match is None:
            turn.say(f"I have no logs for a service called \"{service}\". "
                     f"Services with logs: {', '.join(sorted(known)) or 'none'}.")
            return
        if not found.exact:
            note = f" (I took \"{service}\" to mean {found.match}.)"
        service = found.match
    level = request.get("log_level")
    text = free_text(request.text)
    query = LogQuery(service=service, environment=request.get("environment"), level=level,
                     text=text, start=start, end=end, limit=MAX_LINES)
    result = await source.query(query)
    what = " ".join(x for x in (
        f"{level} lines" if level else "log lines",
        f"from {service}" if service else None,
        f"on {query.environment}" if query.environment else None,
        f"containing \"{text}\"" if text else None,
    ) if x)
    turn.say(format_result(result, query, what) + note)
    record_read(turn, {"service": service or "", "environment": query.environment or "",
                       "log_level": level or "", "text": text or "",
                       "start": start.isoformat(), "end": end.isoformat()})


INTENTS = (
    IntentKind(
        "query_logs", query_logs, "search the logs", "Searching the logs",
        describe=lambda e: phrase("search the logs", on("of", e.get("service")),
                                  on("on", e.get("environment")),
                                  f"for {e['log_level']} lines" if e.get("log_level") else None,
                                  on("from", e.get("time_range"))),
        backend=LOGS.product, read=True, aliases=("logs", "errors", "log"),
        acts_on=("service",)),
)
