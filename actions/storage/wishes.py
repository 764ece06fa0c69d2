"""Wishes: requests opsbot could not serve, kept as the team's automation backlog.

Each time opsbot answers "I can't do that", the request is recorded (``actions.wishes``):
what was asked, by whom, in which channel and chat, when. A wish is *covered* once
something now serves it: an operation made from it (``opsbot operations new NAME
--from-wish ID``) or a phrasing of an existing intent taught from it (``opsbot review
--wish ID --as INTENT``); ``covered_by`` names that operation or intent.

The text is data: stored as typed, but redacted (``actions._redact.redact``: opsbot's
own secrets and anything shaped like a pasted credential) and at most ``MAX_TEXT``
characters; whoever shows it escapes it for its medium.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime

import sqlalchemy as sa

from actions._redact import redact
from actions.storage._columns import UTCDateTime, aware
from actions.storage._database import Database, Schema, write_lock

__all__ = ["MAX_TEXT", "SCHEMA", "Wish", "Wishes", "wishes"]

MAX_TEXT = 1000
"""The most characters of a wish kept: a request, not a pasted log."""

_metadata = sa.MetaData()

wishes = sa.Table(
    "opsbot_wishes", _metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("requester", sa.String(255), nullable=False),  # the person (policy.yml's name)
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("chat", sa.String(255), nullable=False),
    sa.Column("asked_at", UTCDateTime, nullable=False),
    sa.Column("covered_by", sa.String(64)),  # the operation or intent that now serves it
    sa.Column("covered_at", UTCDateTime),
    sa.Index("ix_opsbot_wishes_asked_at", "asked_at"),
)

SCHEMA = Schema("wishes", (wishes,))


@dataclass(frozen=True)
class Wish:
    """One request opsbot could not serve, and what serves it now (if anything)."""

    id: str
    text: str
    requester: str
    channel: str
    chat: str
    asked_at: datetime
    covered_by: str | None = None
    covered_at: datetime | None = None


class Wishes:
    """The wishes in ``database``."""

    def __init__(self, database: Database) -> None:
        self.database = database
        database.require(SCHEMA)

    def record(self, text: str, requester: str, channel: str, chat: str,
               at: datetime | None = None) -> Wish:
        """Keep ``text`` (redacted, clipped to MAX_TEXT) as a wish of ``requester``."""
        kept = redact(text.strip())
        if len(kept) > MAX_TEXT:
            kept = kept[:MAX_TEXT - 1] + "…"
        wish = Wish(id=f"w-{secrets.token_hex(5)}", text=kept, requester=requester,
                    channel=channel, chat=chat, asked_at=aware(at))
        with self.database.transaction() as conn:
            conn.execute(wishes.insert().values(**asdict(wish)))
        return wish

    def since(self, moment: datetime | None = None, *, uncovered: bool = False) -> list[Wish]:
        """The wishes asked at or after ``moment`` (None: all), oldest first;
        ``uncovered``: only those nothing covers yet."""
        query = sa.select(wishes)
        if moment is not None:
            query = query.where(wishes.c.asked_at >= aware(moment, "moment"))
        if uncovered:
            query = query.where(wishes.c.covered_by.is_(None))
        with self.database.connection() as conn:
            rows = conn.execute(query.order_by(wishes.c.asked_at, wishes.c.id))
            return [Wish(**dict(r._mapping)) for r in rows]

    def get(self, wish_id: str) -> Wish | None:
        with self.database.connection() as conn:
            row = conn.execute(sa.select(wishes).where(wishes.c.id == wish_id)).first()
        return None if row is None else Wish(**dict(row._mapping))

    def mark_covered(self, ids: Iterable[str], by: str, at: datetime | None = None) -> list[str]:
        """Record that ``by`` (an operation or intent) serves these wishes now; the ids it
        marked, in order. A wish covered already keeps what covered it first."""
        wanted = sorted(set(ids))
        if not wanted:
            return []
        with self.database.transaction() as conn:
            write_lock(conn)  # what is read as open is what this transaction marks
            open_ = [str(i) for i in conn.execute(
                sa.select(wishes.c.id).where(wishes.c.id.in_(wanted),
                                             wishes.c.covered_by.is_(None))
                .order_by(wishes.c.id)).scalars()]
            if open_:
                conn.execute(wishes.update().where(wishes.c.id.in_(open_),
                                                   wishes.c.covered_by.is_(None))
                             .values(covered_by=by, covered_at=aware(at)))
        return open_

    def uncovered_count(self) -> int:
        """How many wishes nothing covers yet (``/metrics``)."""
        with self.database.connection() as conn:
            return int(conn.execute(sa.select(sa.func.count()).select_from(wishes)
                                    .where(wishes.c.covered_by.is_(None))).scalar() or 0)
