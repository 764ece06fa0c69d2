"""Phrasings people taught opsbot, waiting for review.

A fallback choice, "when I say ... I mean ...", ``opsbot teach``: each is a candidate
until a reviewer accepts or rejects it; accepted ones are written to
``data/nlu/taught.yml`` (``actions.teaching``). What a phrasing may be is
``actions.teaching``'s to say: the store is given its checks, and runs them wherever a
phrasing enters or is accepted.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

import sqlalchemy as sa

from actions.storage._columns import UTCDateTime, aware
from actions.storage._database import Database, Schema

__all__ = ["ACCEPTED", "CANDIDATE", "REJECTED", "SCHEMA", "Taught", "TaughtPhrasings", "taught"]

CANDIDATE, ACCEPTED, REJECTED = "candidate", "accepted", "rejected"

_metadata = sa.MetaData()

taught = sa.Table(
    "opsbot_taught", _metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("example", sa.Text, nullable=False),  # the text with [value](entity) marks
    sa.Column("intent", sa.String(64), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("taught_by", sa.String(255), nullable=False),
    sa.Column("channel", sa.String(64), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("reviewed_by", sa.String(255)),
    sa.Column("reviewed_at", UTCDateTime),
    sa.Index("ix_opsbot_taught_status", "status"),
)

SCHEMA = Schema("taught", (taught,))


@dataclass(frozen=True)
class Taught:
    """A taught phrasing and what became of it."""

    id: str
    text: str
    example: str
    intent: str
    source: str
    taught_by: str
    channel: str
    created_at: datetime
    status: str
    reviewed_by: str | None
    reviewed_at: datetime | None


class TaughtPhrasings:
    """The taught phrasings in ``database``.

    ``check_text`` and ``check_example`` raise (a ValueError saying why) for a plain text
    or a ``[value](entity)``-marked example that cannot be taught.
    """

    def __init__(self, database: Database, *, check_text: Callable[[str], object],
                 check_example: Callable[[str], object]) -> None:
        self.database = database
        self._check_text = check_text
        self._check_example = check_example
        database.require(SCHEMA)

    def add(self, *, text: str, example: str, intent: str, source: str, taught_by: str,
            channel: str, now: datetime | None = None) -> Taught:
        """Record a candidate phrasing for ``intent`` (reviewed later)."""
        self._check_text(text)
        self._check_example(example)
        item = Taught(id=f"t-{secrets.token_hex(5)}", text=text, example=example,
                      intent=intent, source=source, taught_by=taught_by, channel=channel,
                      created_at=aware(now), status=CANDIDATE, reviewed_by=None,
                      reviewed_at=None)
        with self.database.transaction() as conn:
            conn.execute(taught.insert().values(**asdict(item)))
        return item

    def examples(self, status: str | None = CANDIDATE, limit: int = 200) -> list[Taught]:
        """Taught phrasings, oldest first; ``status`` None lists all."""
        query = sa.select(taught)
        if status is not None:
            query = query.where(taught.c.status == status)
        query = query.order_by(taught.c.created_at, taught.c.id).limit(max(0, int(limit)))
        with self.database.connection() as conn:
            return [Taught(**dict(r._mapping)) for r in conn.execute(query)]

    def review(self, taught_id: str, status: str, reviewer: str,
               now: datetime | None = None) -> Taught | None:
        """Accept or reject a candidate; None if it is not (or no longer) a candidate."""
        if status not in (ACCEPTED, REJECTED):
            raise ValueError(f"status must be {ACCEPTED} or {REJECTED}, got {status!r}")
        if status == ACCEPTED:
            with self.database.connection() as conn:
                example = conn.execute(
                    sa.select(taught.c.example).where(taught.c.id == taught_id)).scalar()
            if example is not None:
                self._check_example(example)  # one recorded before phrasings were checked
        with self.database.transaction() as conn:
            moved = conn.execute(
                taught.update()
                .where(taught.c.id == taught_id, taught.c.status == CANDIDATE)
                .values(status=status, reviewed_by=reviewer, reviewed_at=aware(now))
            )
            if moved.rowcount != 1:
                return None
            row = conn.execute(sa.select(taught).where(taught.c.id == taught_id)).one()
        return Taught(**dict(row._mapping))
