"""Rasa's SQL tracker store, without reading the whole conversation on every turn.

``SQLTrackerStore.retrieve`` loads, decodes and replays every event of the conversation's
session on each message, and ``save`` counts them all again to find the new ones; as a
conversation grows, so does every turn (a third of the Rasa server's CPU under load, in
``python -m bench.profile``). This store keeps, per conversation, the stored JSON of
its latest session's events, with how many events the conversation has and the id of
the last. A retrieve asks the database only for those two (``SELECT count(*), max(id)
... WHERE sender_id = ?``, on Rasa's index): unchanged, the cached events are used;
changed (another replica, or another worker, wrote to the conversation), the
conversation is read again as Rasa reads it. A save writes the new events as Rasa does
and extends the cache, after checking that nobody else wrote in between. So the
database stays the truth and any replica can take any conversation.

Configured by ``opsbot._replicas`` as the ``tracker_store`` type; same settings as
Rasa's ``SQL`` type.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from typing import Any

import sqlalchemy as sa
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.constants import ACTION_SESSION_START_NAME
from rasa.shared.core.events import SessionStarted
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.nlu.constants import INTENT_NAME_KEY
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import QueuePool

__all__ = ["CachingSQLTrackerStore"]

logger = logging.getLogger(__name__)

_MAX_CONVERSATIONS = 2000  # cached conversations per process (least recently used go)


def _sqlite_wal(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class CachingSQLTrackerStore(SQLTrackerStore):
    """``SQLTrackerStore`` with a per-process cache of each conversation's session."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        engine: sa.engine.Engine = self.engine  # type: ignore[has-type]  # Rasa: unannotated
        if engine.dialect.name == "sqlite" and engine.url.database not in (
                None, "", ":memory:"):
            # Rasa's engine opens and closes the file for every read and write (SQLAlchemy
            # 1.4 pools no SQLite file connections): keep a few open instead, in the
            # write-ahead log mode, where readers do not wait for the writer and a commit
            # is one append (synchronous=NORMAL stays safe when the process crashes).
            url = engine.url
            engine.dispose()
            self.engine = sa.create_engine(url, poolclass=QueuePool, pool_size=4,
                                           connect_args={"check_same_thread": False})
            sa.event.listen(self.engine, "connect", _sqlite_wal)
            self.sessionmaker = sessionmaker(bind=self.engine)
        # sender id -> ((events, id of the last), the latest session's events as JSON)
        self._cache: OrderedDict[str, tuple[tuple[int, int], list[str]]] = OrderedDict()
        self._cache_lock = threading.Lock()

    def _mark(self, session: Any, sender_id: str) -> tuple[int, int] | None:
        """(how many events, the id of the last) of the conversation; None: none yet.

        Both, because PostgreSQL commits sequence ids out of order: an event that
        commits after a later id was seen changes the count, not the last id.
        """
        table = self.SQLEvent.__table__
        count, newest = session.execute(
            sa.select(sa.func.count(), sa.func.max(table.c.id))
            .where(table.c.sender_id == sender_id)).one()
        return None if not count or newest is None else (int(count), int(newest))

    def _cached(self, sender_id: str, mark: tuple[int, int] | None) -> list[str] | None:
        with self._cache_lock:
            entry = self._cache.get(sender_id)
            if entry is None or mark is None or entry[0] != mark:
                return None
            self._cache.move_to_end(sender_id)
            return entry[1]

    def _remember(self, sender_id: str, mark: tuple[int, int], events: list[str]) -> None:
        with self._cache_lock:
            self._cache[sender_id] = (mark, events)
            self._cache.move_to_end(sender_id)
            while len(self._cache) > _MAX_CONVERSATIONS:
                self._cache.popitem(last=False)

    def _forget(self, sender_id: str) -> None:
        with self._cache_lock:
            self._cache.pop(sender_id, None)

    async def retrieve(self, sender_id: str) -> DialogueStateTracker | None:
        """The conversation's latest session, from the cache when nothing changed."""
        with self.session_scope() as session:
            mark = self._mark(session, sender_id)
            events = self._cached(sender_id, mark)
            if events is None and mark is not None:
                rows = self._event_query(session, sender_id,
                                         fetch_events_from_all_sessions=False).all()
                events = [str(row.data) for row in rows]
                # Rows written after the mark make the next mark differ: read again then.
                self._remember(sender_id, mark, events)
        if not (self.domain and events):
            return None
        # Decoded anew each time (the cache holds the stored JSON): nothing a tracker
        # does to its events can reach the cache.
        return DialogueStateTracker.from_dict(sender_id, [json.loads(e) for e in events],
                                              self.domain.slots)

    async def save(self, tracker: DialogueStateTracker) -> None:
        """Write the tracker's new events (as Rasa does) and extend the cache."""
        await self.stream_events(tracker)
        sender_id = tracker.sender_id
        with self.session_scope() as session:
            mark = self._mark(session, sender_id)
            cached = self._cached(sender_id, mark)
            if cached is not None:
                stored = len(cached)
            else:
                stored = self._event_query(session, sender_id,
                                           fetch_events_from_all_sessions=False).count()
            new = list(tracker.events)[stored:]
            if not new:
                return
            rows, texts = [], []
            for event in new:
                data = event.as_dict()
                text = json.dumps(data)
                rows.append({
                    "sender_id": sender_id, "type_name": event.type_name,
                    "timestamp": data.get("timestamp"),
                    "intent_name": (data.get("parse_data", {}).get("intent", {})
                                    .get(INTENT_NAME_KEY)),
                    "action_name": data.get("name"), "data": text})
                texts.append(text)
            # One executemany instead of the ORM's unit of work (same rows, same order).
            session.execute(self.SQLEvent.__table__.insert(), rows)
            written = None
            if cached is not None and mark is not None:
                after = self._mark(session, sender_id)
                # Only our rows were added since the mark: else the cache is stale.
                if after is not None and after[0] == mark[0] + len(rows):
                    written = after
            session.commit()
            starts_session = any(isinstance(e, SessionStarted) or getattr(
                e, "action_name", None) == ACTION_SESSION_START_NAME for e in new)
            if cached is None or starts_session or written is None:
                # A new session (what the latest session is changes) or a conversation
                # not cached: read it again next time, as Rasa would.
                self._forget(sender_id)
                return
            self._remember(sender_id, written, [*cached, *texts])
