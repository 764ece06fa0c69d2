"""What the chat connectors remember across restarts and replicas, keyed by kind and key.

Conversation references for proactive messages (Teams), long button payloads behind
short callback data and the updates already handled (Telegram), who a keyboard answers,
the builds the Jenkins watch last saw: small JSON values under ``kind``/``key``.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from actions.storage._columns import JSONText, UTCDateTime, aware
from actions.storage._database import Database, Schema

__all__ = ["SCHEMA", "ChannelState", "channel_state"]

_metadata = sa.MetaData()

channel_state = sa.Table(
    "opsbot_channel_state", _metadata,
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("key", sa.String(255), primary_key=True),
    sa.Column("value", JSONText, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

SCHEMA = Schema("channel_state", (channel_state,))


class ChannelState:
    """Connectors' values in ``database``, each under a kind and a key."""

    def __init__(self, database: Database) -> None:
        self.database = database
        database.require(SCHEMA)

    def remember(self, kind: str, key: str, value: Mapping[str, Any],
                 now: datetime | None = None) -> None:
        """Store (or replace) a connector's ``value`` under ``kind``/``key``."""
        row = {"value": dict(value), "updated_at": aware(now)}
        where = (channel_state.c.kind == kind, channel_state.c.key == key)
        with self.database.transaction() as conn:
            if conn.execute(channel_state.update().where(*where).values(**row)).rowcount:
                return
            try:
                with conn.begin_nested():
                    conn.execute(channel_state.insert().values(kind=kind, key=key, **row))
            except IntegrityError:  # another replica inserted it first: replace theirs
                conn.execute(channel_state.update().where(*where).values(**row))

    def recall(self, kind: str, key: str) -> dict[str, Any] | None:
        """What ``remember`` stored under ``kind``/``key``, or None."""
        with self.database.connection() as conn:
            row = conn.execute(
                sa.select(channel_state.c.value)
                .where(channel_state.c.kind == kind, channel_state.c.key == key)
            ).first()
        return dict(row.value) if row is not None else None

    def first_time(self, kind: str, key: str, now: datetime | None = None) -> bool:
        """True for the one caller that sees ``kind``/``key`` first (e.g. an update id)."""
        now = aware(now)
        with self.database.translated():
            try:
                with self.database.begin() as conn:
                    conn.execute(channel_state.insert().values(kind=kind, key=key, value={},
                                                               updated_at=now))
            except IntegrityError:
                return False
        return True

    def forget(self, kind: str, key: str) -> bool:
        """Delete ``kind``/``key`` (a request taken by :meth:`first_time` that was not
        handled, so that its retry runs); whether there was one."""
        with self.database.transaction() as conn:
            result = conn.execute(channel_state.delete().where(
                channel_state.c.kind == kind, channel_state.c.key == key))
        return bool(result.rowcount)

    def forget_older(self, kind: str, before: datetime) -> int:
        """Delete the ``kind`` entries last updated before ``before``; how many."""
        with self.database.transaction() as conn:
            result = conn.execute(
                channel_state.delete()
                .where(channel_state.c.kind == kind,
                       channel_state.c.updated_at < aware(before, "before"))
            )
        return int(result.rowcount or 0)
