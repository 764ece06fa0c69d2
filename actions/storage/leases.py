"""Who does a background duty now: leases, held while their owner renews them.

A replica that dies stops renewing, and another takes the duty once the lease has run
out. Who uses them: the watcher (``operation:<id>``), the Telegram poller
(``telegram-poller:<bot id>``); how long they last and who owns them: ``actions.leases``.
Event deliveries have leases of their own in the outbox (``actions.events.store``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from actions.storage._columns import UTCDateTime, aware
from actions.storage._database import Database, Schema, database_now, write_lock

__all__ = ["SCHEMA", "Lease", "Leases", "leases"]

_metadata = sa.MetaData()

# Compare-and-set writes: one winner when several replicas try at once.
leases = sa.Table(
    "opsbot_leases", _metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("owner", sa.String(255), nullable=False),
    sa.Column("until", UTCDateTime, nullable=False),
    sa.Column("since", UTCDateTime, nullable=False),
)

SCHEMA = Schema("leases", (leases,))


@dataclass(frozen=True)
class Lease:
    """A lease held: until when, since when (this owner's), and whose it was before."""

    name: str
    owner: str
    until: datetime
    since: datetime
    previous: str | None  # the owner it was taken from (None: new, or renewed)


class Leases:
    """The leases in ``database``."""

    def __init__(self, database: Database) -> None:
        self.database = database
        database.require(SCHEMA)

    def take(self, name: str, owner: str, seconds: float,
             now: datetime | None = None) -> Lease | None:
        """Hold (or keep holding) the lease ``name`` for ``seconds``; None if another
        owner holds it and it has not run out. The returned lease says whose it was.

        One winner when several try at once: an expired lease is taken with an UPDATE
        that names the old owner and its ``until``, a new one with an INSERT. Times are
        the database's clock (unless ``now`` is given), so replicas whose clocks differ
        still agree on when a lease runs out.
        """
        with self.database.transaction() as conn:
            write_lock(conn)  # SQLite: read and write as one, or two threads both renew
            now = aware(now) if now is not None else database_now(conn)
            until = now + timedelta(seconds=seconds)
            row = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        conn.execute(leases.insert().values(name=name, owner=owner,
                                                            until=until, since=now))
                except IntegrityError:  # another took it first
                    return None
                return Lease(name, owner, until, now, previous=None)
            if row.owner != owner and row.until > now:
                return None
            taken = conn.execute(
                leases.update()
                .where(leases.c.name == name, leases.c.owner == row.owner,
                       leases.c.until == row.until)
                .values(owner=owner, until=until,
                        since=row.since if row.owner == owner else now))
            if taken.rowcount != 1:
                # Changed since it was read: still ours if this owner renewed it meanwhile
                # (another thread of this process), else another owner took it.
                now_held = conn.execute(sa.select(leases).where(leases.c.name == name)).first()
                if now_held is None or now_held.owner != owner:
                    return None
                return Lease(name, owner, now_held.until, now_held.since, previous=None)
        return Lease(name, owner, until, row.since if row.owner == owner else now,
                     previous=None if row.owner == owner else str(row.owner))

    def release(self, name: str, owner: str) -> bool:
        """Give the lease up (only its owner can); True if it was held by ``owner``."""
        with self.database.transaction() as conn:
            gone = conn.execute(leases.delete().where(leases.c.name == name,
                                                      leases.c.owner == owner))
        return bool(gone.rowcount)

    def holder(self, name: str, now: datetime | None = None) -> str | None:
        """Who holds ``name`` now (None: nobody, or it ran out), by the database's clock."""
        with self.database.connection() as conn:
            now = aware(now) if now is not None else database_now(conn)
            row = conn.execute(sa.select(leases.c.owner, leases.c.until)
                               .where(leases.c.name == name)).first()
        return str(row.owner) if row is not None and row.until > now else None
