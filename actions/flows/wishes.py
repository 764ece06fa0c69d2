"""list_wishes: what people asked for that opsbot could not do, most asked first.

"What have people asked you that you couldn't do?": the five biggest groups of the
automation backlog (``actions.wish_backlog``), each with how often and by whom it was
asked and one way it was put. Grouped by shared words (``actions.wish_groups.NGRAMS``):
the action server does not load the sentence model for this; ``opsbot wishes`` groups by
meaning and lists everything, with the ids to act on.
"""

from __future__ import annotations

import asyncio

from actions.catalog import ago
from actions.confirmations import record_read
from actions.registry import IntentKind
from actions.turn import Turn
from actions.wish_backlog import backlog
from actions.wish_groups import NGRAMS, Group

__all__ = ["INTENTS", "list_wishes"]

SHOWN = 5


async def list_wishes(turn: Turn) -> None:
    record_read(turn, {})
    rt = turn.runtime
    found = await asyncio.to_thread(backlog, rt.stores.wishes, rt.project, NGRAMS)
    if not found.groups:
        turn.say("Nobody has asked me for anything I couldn't do yet.")
        return
    lines = [f"{n}. {_line(g)}" for n, g in enumerate(found.groups[:SHOWN], start=1)]
    more = len(found.groups) - SHOWN
    tail = (f"\n{more} more in 'opsbot wishes'." if more > 0 else
            "\n'opsbot wishes' has them all, with the ids to make operations of them.")
    turn.say("What people asked me for that I can't do yet, most asked first:\n"
             + "\n".join(lines) + tail)


def _line(group: Group) -> str:
    times = "once" if group.count == 1 else f"{group.count} times"
    return (f"\"{_short(group.representative)}\": {times}, by {_people(group.people)} "
            f"(last asked {ago(group.last_asked)})")


def _people(names: list[str]) -> str:
    if len(names) > 3:
        return f"{', '.join(names[:2])} and {len(names) - 2} others"
    return " and ".join([", ".join(names[:-1]), names[-1]]) if len(names) > 1 else names[0]


def _short(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


INTENTS = (
    IntentKind("list_wishes", list_wishes, "what people asked that opsbot can't do",
               "Listing what people asked for that opsbot can't do",
               describe=lambda e: "list what people asked for that opsbot can't do",
               backend="opsbot's store", risk="read", read=True,
               aliases=("wishes", "automation backlog", "backlog")),
)
