"""Recording a wish: a request opsbot answered with "I can't do that".

The answer to a request opsbot cannot serve calls :func:`record_wish`; the wishes it
keeps (``actions.storage.wishes``) are the team's automation backlog, listed by
``opsbot wishes`` and by asking the chat "what have people asked you that you couldn't
do?" (``actions.flows.wishes``). Recording is a side matter: the answer goes out whatever
becomes of it, so a store outage costs the wish, logged once while it lasts, never the
reply.
"""

from __future__ import annotations

import logging
import threading

from actions import metrics
from actions.turn import Turn

__all__ = ["record_wish"]

logger = logging.getLogger(__name__)


class _Outage:
    """Whether the last wish failed to be kept: a failure is logged when it is news."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._failing = False

    def failed(self) -> bool:
        """Note a failure; True if the one before succeeded (log this one)."""
        with self._lock:
            news, self._failing = not self._failing, True
            return news

    def passed(self) -> None:
        with self._lock:
            self._failing = False


_OUTAGE = _Outage()


def record_wish(turn: Turn, text: str) -> None:
    """Keep ``text`` as a wish of the person ``turn`` is from (their channel and chat),
    and count it in ``opsbot_wishes_total``. Never raises: a failure is logged once while
    it lasts, and the conversation goes on."""
    metrics.wish(turn.who.channel)
    if not text.strip():
        return
    try:
        turn.runtime.stores.wishes.record(text, turn.who.person, turn.who.channel,
                                          turn.who.chat)
    except Exception as exc:  # noqa: BLE001 - the answer must go out whatever failed here
        if _OUTAGE.failed():
            logger.warning("A request opsbot could not serve was not kept as a wish: %s "
                           "(further failures are not logged until one succeeds)",
                           getattr(exc, "summary", None) or f"{type(exc).__name__}: {exc}",
                           exc_info=not hasattr(exc, "summary"))
        else:
            logger.debug("a wish was not kept: %s", type(exc).__name__)
    else:
        _OUTAGE.passed()
