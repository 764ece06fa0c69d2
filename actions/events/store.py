"""The event outbox: who subscribed to what, the events received, one delivery per conversation.

Kept in opsbot's database (SQLite by default, PostgreSQL by URL) next to the operations,
so it survives restarts and is shared by every process:

* ``opsbot_subscriptions``: a conversation's filters (source, service or job,
  environment, severity, kinds of event), made in the chat or declared in
  ``subscriptions.yml``.
* ``opsbot_events``: each notification received, unique by its key (a redelivered
  webhook, the same Alertmanager notification again, changes nothing).
* ``opsbot_event_deliveries``: for each event, one row per conversation that wants it,
  written in the same transaction as the event. A delivery is claimed with a lease,
  sent, then marked sent by its claimant; a process that dies after claiming loses the
  lease and another (or the restarted one) delivers it. So every event reaches each
  subscribed conversation once; only a crash between a chat accepting a message and
  opsbot recording it can repeat one, never lose one.
* ``opsbot_event_messages``: the message each conversation got for a group (an
  Alertmanager group, a check, a job's state), so that later events of the group edit it.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from actions.events._model import (
    FAILURE,
    KINDS,
    MAX_KEY,
    RECOVERY,
    RESULT,
    SOURCE_GROUPS,
    Event,
)
from actions.storage._columns import JSONText, UTCDateTime
from actions.storage._database import Database, Schema, StoreError, missing_indexes

__all__ = [
    "DEFAULT_KINDS",
    "Delivery",
    "EventStore",
    "Filters",
    "GroupMessage",
    "SCHEMA",
    "Subscription",
]

PENDING, SENT, SUMMARISED, FAILED = "pending", "sent", "summarised", "failed"
# A subscription to failures also gets their resolution (it edits the failure's message).
DEFAULT_KINDS = frozenset({FAILURE, RECOVERY})

_metadata = sa.MetaData()

subscriptions = sa.Table(
    "opsbot_subscriptions", _metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("conversation", sa.String(255), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("address", JSONText, nullable=False),
    sa.Column("filters", JSONText, nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("buttons", JSONText, nullable=False),
    sa.Column("origin", sa.String(64), nullable=False),
    sa.Column("created_by", sa.String(255), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.UniqueConstraint("conversation", "digest", name="ux_opsbot_subscriptions_filters"),
)

events = sa.Table(
    "opsbot_events", _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("key", sa.String(MAX_KEY), nullable=False, unique=True),
    sa.Column("grp", sa.String(512), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("body", JSONText, nullable=False),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Index("ix_opsbot_events_grp", "grp"),
    sa.Index("ix_opsbot_events_received", "received_at"),
)

# The other keys of recorded events (Event.aliases), for dropping them.
event_keys = sa.Table(
    "opsbot_event_keys", _metadata,
    sa.Column("key", sa.String(MAX_KEY), primary_key=True),
    sa.Column("event_id", sa.Integer, nullable=False),
)

deliveries = sa.Table(
    "opsbot_event_deliveries", _metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.Integer, nullable=False),
    sa.Column("conversation", sa.String(255), nullable=False),
    sa.Column("channel", sa.String(32), nullable=False),
    sa.Column("address", JSONText, nullable=False),
    sa.Column("buttons", JSONText, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # for this conversation (a recovery ...)
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("held", sa.Boolean, nullable=False, default=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("next_at", UTCDateTime, nullable=False),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_until", UTCDateTime),
    sa.Column("message_ref", JSONText),
    sa.Column("error", sa.Text),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("sent_at", UTCDateTime),
    sa.UniqueConstraint("event_id", "conversation", name="ux_opsbot_event_deliveries_once"),
    sa.Index("ix_opsbot_event_deliveries_due", "state", "next_at"),
    sa.Index("ix_opsbot_event_deliveries_conversation", "conversation", "sent_at"),
)

messages = sa.Table(
    "opsbot_event_messages", _metadata,
    sa.Column("conversation", sa.String(255), primary_key=True),
    sa.Column("grp", sa.String(512), primary_key=True),
    sa.Column("message_ref", JSONText, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("event", JSONText, nullable=False),
    sa.Column("first_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

SCHEMA = Schema("events", (subscriptions, events, event_keys, deliveries, messages),
                missing_indexes(events, deliveries))


def _build_number(body: Mapping[str, Any] | None) -> int | None:
    """The build number of a build's event (Jenkins), None for other events."""
    labels = (body or {}).get("labels") if isinstance(body, Mapping) else None
    value = labels.get("build_number") if isinstance(labels, Mapping) else None
    return int(value) if isinstance(value, str) and value.isdigit() else None


def _now(now: datetime | None) -> datetime:
    return now if now is not None else datetime.now(UTC)


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").strip().lower() == (b or "").strip().lower()


@dataclass(frozen=True)
class Filters:
    """What a subscription wants; an unset field matches anything."""

    sources: frozenset[str] = frozenset()  # alertmanager, grafana, github, jenkins; empty: all
    service: str | None = None
    job: str | None = None
    environment: str | None = None
    severity: str | None = None
    kinds: frozenset[str] = DEFAULT_KINDS

    @classmethod
    def build(cls, *, sources: Iterable[str] = (), service: str | None = None,
              job: str | None = None, environment: str | None = None,
              severity: str | None = None, kinds: Iterable[str] = ()) -> Filters:
        """Filters from what people say: "alerts" or "checks" as sources, "failure" (which
        brings recoveries with it), "recovery" or "all" as kinds. ValueError names a bad one."""
        resolved: set[str] = set()
        for name in sources:
            group = SOURCE_GROUPS.get(name.strip().lower())
            if group is None:
                raise ValueError(f"opsbot knows no event source called {name!r}; it reads "
                                 f"{', '.join(sorted(SOURCE_GROUPS))}")
            resolved |= group
        wanted: set[str] = set()
        for kind in kinds:
            kind = kind.strip().lower()
            if kind == "all":
                wanted |= set(KINDS)
            elif kind == FAILURE:
                wanted |= DEFAULT_KINDS
            elif kind in KINDS:
                wanted.add(kind)
            else:
                raise ValueError(f"{kind!r} is not a kind of event: say failure, recovery or all")

        def clean(value: str | None) -> str | None:
            return value.strip().lower() or None if value else None

        return cls(frozenset(resolved), clean(service), clean(job), clean(environment),
                   clean(severity), frozenset(wanted) or DEFAULT_KINDS)

    def matches(self, event: Event) -> bool:
        """Whether ``event`` is about what these filters name (its kind is checked apart)."""
        if self.sources and event.source not in self.sources:
            return False
        if self.service and not any(_same(self.service, v) for v in _names_of(event)):
            return False
        if self.job and not _same(self.job, event.job):
            return False
        if self.environment and not _same(self.environment, event.environment):
            return False
        return not (self.severity and not _same(self.severity, event.severity))

    def as_dict(self) -> dict[str, Any]:
        return {"sources": sorted(self.sources), "service": self.service, "job": self.job,
                "environment": self.environment, "severity": self.severity,
                "kinds": sorted(self.kinds)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Filters:
        return cls(frozenset(data.get("sources") or ()), data.get("service"), data.get("job"),
                   data.get("environment"), data.get("severity"),
                   frozenset(data.get("kinds") or DEFAULT_KINDS))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()

    def describe(self) -> str:
        """In words: "alerts (Alertmanager, Grafana) for payments on prod, critical only:
        failures and recoveries"."""
        what = _sources_in_words(self.sources)
        parts = [what]
        if self.job:
            parts.append(f"of {self.job}")
        if self.service:
            parts.append(f"for {self.service}")
        if self.environment:
            parts.append(f"on {self.environment}")
        if self.severity:
            parts.append(f"({self.severity} only)")
        kinds = ("every result" if self.kinds >= set(KINDS)
                 else "failures and recoveries" if self.kinds == DEFAULT_KINDS
                 else " and ".join(f"{k.replace('y', 'ie')}s" if k.endswith("y") else f"{k}s"
                                   for k in sorted(self.kinds)))
        return " ".join(parts) + f": {kinds}"


def _names_of(event: Event) -> list[str | None]:
    """What a service filter may match: the service, the repository's name, the job's prefix."""
    names: list[str | None] = [event.service]
    if event.repo:
        names.append(event.repo.rsplit("/", 1)[-1])
    if event.job:
        names += [event.job, event.job.split("-", 1)[0]]
    return names


def _sources_in_words(sources: frozenset[str]) -> str:
    if not sources:
        return "all events"
    for word, group in (("alerts", SOURCE_GROUPS["alerts"]),):
        if sources == group:
            return word
    names = {"alertmanager": "Alertmanager alerts", "grafana": "Grafana alerts",
             "jenkins": "Jenkins builds", "github": "GitHub checks and pull requests"}
    return " and ".join(names.get(s, s) for s in sorted(sources))


@dataclass(frozen=True)
class Subscription:
    """A conversation's standing request for events (``origin``: chat or file)."""

    id: str
    conversation: str
    channel: str
    address: Mapping[str, Any]
    filters: Filters
    buttons: tuple[str, ...] = ()
    origin: str = "chat"
    created_by: str = ""
    created_at: datetime | None = None

    def wants(self, event: Event, kind: str) -> bool:
        return self.filters.matches(event) and kind in self.filters.kinds


@dataclass(frozen=True)
class Delivery:
    """One event on its way to one conversation."""

    id: int
    event: Event
    conversation: str
    channel: str
    address: Mapping[str, Any]
    kind: str
    buttons: tuple[str, ...] = ()
    held: bool = False
    attempts: int = 0
    created_at: datetime | None = None


@dataclass(frozen=True)
class GroupMessage:
    """The message a conversation got for a group, which later events of it edit."""

    conversation: str
    group: str
    ref: Mapping[str, Any]
    kind: str
    event: Event
    first_at: datetime
    updated_at: datetime


class EventStore:
    """The outbox, in opsbot's ``database``."""

    def __init__(self, database: Database) -> None:
        self.database = database
        database.require(SCHEMA)

    # -- subscriptions --------------------------------------------------------------------

    def subscribe(self, *, conversation: str, channel: str, address: Mapping[str, Any],
                  filters: Filters, created_by: str, origin: str = "chat",
                  buttons: Sequence[str] = (), now: datetime | None = None
                  ) -> tuple[Subscription, bool]:
        """Add a subscription; (it, True), or (the same one already there, False)."""
        row = {"id": secrets.token_hex(8), "conversation": conversation, "channel": channel,
               "address": dict(address), "filters": filters.as_dict(),
               "digest": filters.digest(), "buttons": list(buttons), "origin": origin,
               "created_by": created_by, "created_at": _now(now)}
        existing = self._find(conversation, filters.digest())
        if existing is not None:
            return existing, False
        try:
            with self.database.transaction() as conn:
                conn.execute(subscriptions.insert().values(**row))
            return _subscription(row), True
        except StoreError:
            existing = self._find(conversation, filters.digest())
            if existing is None:
                raise
            return existing, False

    def _find(self, conversation: str, digest: str) -> Subscription | None:
        with self.database.connection() as conn:
            row = conn.execute(sa.select(subscriptions).where(
                subscriptions.c.conversation == conversation,
                subscriptions.c.digest == digest)).mappings().first()
        return _subscription(row) if row is not None else None

    def subscriptions(self, conversation: str | None = None) -> list[Subscription]:
        """A conversation's subscriptions (every one without ``conversation``), oldest first."""
        query = sa.select(subscriptions).order_by(subscriptions.c.created_at, subscriptions.c.id)
        if conversation is not None:
            query = query.where(subscriptions.c.conversation == conversation)
        with self.database.connection() as conn:
            return [_subscription(row) for row in conn.execute(query).mappings()]

    def unsubscribe(self, conversation: str, ids: Iterable[str]) -> list[Subscription]:
        """Remove these chat-made subscriptions of the conversation; the ones removed."""
        wanted = set(ids)
        removed = [s for s in self.subscriptions(conversation)
                   if s.id in wanted and s.origin == "chat"]
        if removed:
            with self.database.transaction() as conn:
                conn.execute(subscriptions.delete().where(
                    subscriptions.c.conversation == conversation,
                    subscriptions.c.id.in_([s.id for s in removed])))
        return removed

    def replace_routes(self, routes: Sequence[Subscription]) -> int:
        """Make the file-declared subscriptions exactly ``routes`` (subscriptions.yml)."""
        with self.database.transaction() as conn:
            conn.execute(subscriptions.delete().where(subscriptions.c.origin != "chat"))
            for route in routes:
                conn.execute(subscriptions.insert().values(
                    id=route.id, conversation=route.conversation, channel=route.channel,
                    address=dict(route.address), filters=route.filters.as_dict(),
                    digest=hashlib.sha256(f"{route.filters.digest()}:{route.origin}:{route.id}"
                                          .encode()).hexdigest(),
                    buttons=list(route.buttons), origin=route.origin,
                    created_by=route.created_by or route.origin,
                    created_at=route.created_at or datetime.now(UTC)))
        return len(routes)

    # -- events ---------------------------------------------------------------------------

    def record(self, event: Event, now: datetime | None = None) -> int | None:
        """Keep ``event`` and queue it for every conversation that wants it, in one
        transaction; how many deliveries were queued, or None for an event seen before."""
        now = _now(now)
        subs = self.subscriptions()
        keys = [event.key, *event.aliases]
        if self._seen(keys):
            return None
        try:
            with self.database.transaction() as conn:
                inserted = conn.execute(events.insert().values(
                    source=event.source, key=event.key, grp=event.group, kind=event.kind,
                    body=event.as_dict(), received_at=now))
                event_id = int(inserted.inserted_primary_key[0])
                for alias in event.aliases:
                    conn.execute(event_keys.insert().values(key=alias, event_id=event_id))
                queued = self._queue(conn, event_id, event, subs, now)
        except StoreError as exc:
            if self._seen(keys):
                return None
            raise exc
        return queued

    def seen(self, key: str) -> bool:
        """Whether an event with ``key`` (or that alias) was recorded and is still kept."""
        return self._seen([key])

    def _seen(self, keys: Sequence[str]) -> bool:
        with self.database.connection() as conn:
            if conn.execute(sa.select(events.c.id).where(events.c.key.in_(keys))).first():
                return True
            return conn.execute(sa.select(event_keys.c.key)
                                .where(event_keys.c.key.in_(keys))).first() is not None

    def _queue(self, conn: sa.engine.Connection, event_id: int, event: Event,
               subs: Sequence[Subscription], now: datetime) -> int:
        # What each conversation was last told (or is about to be told) of this group: a
        # green right after a red is its recovery even before the red was delivered.
        latest = (sa.select(sa.func.max(deliveries.c.id))
                  .join(events, events.c.id == deliveries.c.event_id)
                  .where(events.c.grp == event.group, deliveries.c.state != FAILED)
                  .group_by(deliveries.c.conversation)
                  .scalar_subquery())
        earlier: dict[str, tuple[str, int | None]] = {
            row.conversation: (row.kind, _build_number(row.body)) for row in conn.execute(
                sa.select(deliveries.c.conversation, deliveries.c.kind, events.c.body)
                .join(events, events.c.id == deliveries.c.event_id)
                .where(deliveries.c.id.in_(latest)))}
        # Builds arrive out of order (a slow poll, a late webhook): an older one is history.
        number = _build_number(event.as_dict()) if event.source == "jenkins" else None
        chosen: dict[str, tuple[Subscription, str, set[str]]] = {}
        for sub in subs:
            if not sub.filters.matches(event):
                continue
            before, told = earlier.get(sub.conversation, (None, None))
            if number is not None and told is not None and number <= told:
                continue  # an older build than the one this conversation was told of
            kind = event.kind
            if kind == RESULT and before == FAILURE:
                kind = RECOVERY  # the first green after red
            # A resolution reaches whoever was told of the failure, whatever else they chose.
            if kind not in sub.filters.kinds and not (kind == RECOVERY and before == FAILURE):
                continue
            if sub.conversation in chosen:
                chosen[sub.conversation][2].update(sub.buttons)
            else:
                chosen[sub.conversation] = (sub, kind, set(sub.buttons))
        for conversation, (sub, kind, buttons) in chosen.items():
            conn.execute(deliveries.insert().values(
                event_id=event_id, conversation=conversation, channel=sub.channel,
                address=dict(sub.address), buttons=sorted(buttons), kind=kind, state=PENDING,
                held=False, attempts=0, next_at=now, created_at=now))
        return len(chosen)

    # -- deliveries -----------------------------------------------------------------------

    def claim(self, owner: str, *, now: datetime | None = None, lease: float = 60.0,
              limit: int = 50) -> list[Delivery]:
        """Due deliveries nobody holds, leased to ``owner`` (compare-and-set: one winner)."""
        now = _now(now)
        free = sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now)
        with self.database.connection() as conn:
            candidates = [row.id for row in conn.execute(
                sa.select(deliveries.c.id)
                .where(deliveries.c.state == PENDING, deliveries.c.next_at <= now, free)
                .order_by(deliveries.c.id).limit(limit))]
        claimed: list[int] = []
        for delivery_id in candidates:
            with self.database.transaction() as conn:
                won = conn.execute(deliveries.update().where(
                    deliveries.c.id == delivery_id, deliveries.c.state == PENDING, free,
                ).values(lease_owner=owner, lease_until=now + timedelta(seconds=lease)))
            if won.rowcount:
                claimed.append(delivery_id)
        if not claimed:
            return []
        with self.database.connection() as conn:
            rows = conn.execute(
                sa.select(deliveries, events.c.body)
                .join(events, events.c.id == deliveries.c.event_id)
                .where(deliveries.c.id.in_(claimed)).order_by(deliveries.c.id)).mappings()
            return [_delivery(row) for row in rows]

    def claim_held(self, conversation: str, owner: str, *, now: datetime | None = None,
                   lease: float = 60.0) -> list[Delivery]:
        """Every held delivery of ``conversation`` that is due, leased to ``owner`` in one
        statement: a flood's whole backlog goes into one summary, however long it is."""
        now = _now(now)
        free = sa.or_(deliveries.c.lease_until.is_(None), deliveries.c.lease_until < now)
        until = now + timedelta(seconds=lease)
        with self.database.transaction() as conn:
            conn.execute(deliveries.update().where(
                deliveries.c.conversation == conversation, deliveries.c.state == PENDING,
                deliveries.c.held.is_(True), deliveries.c.next_at <= now, free,
            ).values(lease_owner=owner, lease_until=until))
        with self.database.connection() as conn:
            rows = conn.execute(
                sa.select(deliveries, events.c.body)
                .join(events, events.c.id == deliveries.c.event_id)
                .where(deliveries.c.conversation == conversation,
                       deliveries.c.state == PENDING, deliveries.c.held.is_(True),
                       deliveries.c.lease_owner == owner, deliveries.c.lease_until == until)
                .order_by(deliveries.c.id)).mappings()
            return [_delivery(row) for row in rows]

    def prune(self, older_than: datetime) -> tuple[int, int]:
        """Forget what was settled before ``older_than``: sent, summarised and given-up
        deliveries, and the events none of whose deliveries is still pending (their keys
        stop dropping redeliveries then). Returns (deliveries, events) removed."""
        settled = deliveries.c.state.in_([SENT, SUMMARISED, FAILED])
        with self.database.transaction() as conn:
            gone = conn.execute(deliveries.delete().where(
                settled, deliveries.c.created_at < older_than)).rowcount or 0
            still = sa.select(deliveries.c.event_id).where(
                deliveries.c.event_id == events.c.id)
            dropped = conn.execute(events.delete().where(
                events.c.received_at < older_than, ~sa.exists(still))).rowcount or 0
            conn.execute(event_keys.delete().where(~sa.exists(
                sa.select(events.c.id).where(events.c.id == event_keys.c.event_id))))
        return int(gone), int(dropped)

    def _settle(self, ids: Sequence[int], owner: str, **values: Any) -> int:
        with self.database.transaction() as conn:
            done = conn.execute(deliveries.update().where(
                deliveries.c.id.in_(list(ids)), deliveries.c.lease_owner == owner,
                deliveries.c.state == PENDING).values(lease_owner=None, lease_until=None,
                                                      **values))
        return int(done.rowcount or 0)

    def sent(self, delivery: Delivery, owner: str, ref: Mapping[str, Any], *,
             edited: bool = False, now: datetime | None = None) -> bool:
        """Record that ``delivery`` reached its conversation as the message ``ref``; that
        message now stands for its group there."""
        now = _now(now)
        if not self._settle([delivery.id], owner, state=SENT, sent_at=now,
                            message_ref={**ref, "edited": edited}):
            return False
        event = delivery.event
        with self.database.transaction() as conn:
            row = {"message_ref": dict(ref), "kind": delivery.kind, "event": event.as_dict(),
                   "updated_at": now}
            updated = conn.execute(messages.update().where(
                messages.c.conversation == delivery.conversation,
                messages.c.grp == event.group).values(**row))
            if not updated.rowcount:
                try:
                    with conn.begin_nested():
                        conn.execute(messages.insert().values(
                            conversation=delivery.conversation, grp=event.group,
                            first_at=now, **row))
                except IntegrityError:
                    conn.execute(messages.update().where(
                        messages.c.conversation == delivery.conversation,
                        messages.c.grp == event.group).values(**row))
        return True

    def summarised(self, batch: Sequence[Delivery], owner: str, ref: Mapping[str, Any],
                   now: datetime | None = None) -> int:
        """Record that ``batch`` reached its conversation in one summary message ``ref``."""
        return self._settle([d.id for d in batch], owner, state=SUMMARISED, sent_at=_now(now),
                            message_ref=dict(ref))

    def hold(self, batch: Sequence[Delivery], owner: str, until: datetime) -> int:
        """Keep ``batch`` back until ``until`` (a flood), to be summarised then."""
        return self._settle([d.id for d in batch], owner, held=True, next_at=until)

    def retry(self, delivery: Delivery, owner: str, error: str, at: datetime | None,
              ) -> int:
        """A failed send: try again at ``at``, or give up (``at`` None) with ``error``."""
        values: dict[str, Any] = {"attempts": delivery.attempts + 1, "error": error[:1000]}
        if at is None:
            values["state"] = FAILED
        else:
            values["next_at"] = at
        return self._settle([delivery.id], owner, **values)

    def group_message(self, conversation: str, group: str) -> GroupMessage | None:
        with self.database.connection() as conn:
            row = conn.execute(sa.select(messages).where(
                messages.c.conversation == conversation, messages.c.grp == group)
            ).mappings().first()
        if row is None:
            return None
        return GroupMessage(row["conversation"], row["grp"], row["message_ref"], row["kind"],
                            Event.from_dict(row["event"]), row["first_at"], row["updated_at"])

    def posts_since(self, conversation: str, since: datetime) -> list[datetime]:
        """When new messages went to the conversation since then: posts (not edits), and
        each summary once (its deliveries share the summary's time)."""
        with self.database.connection() as conn:
            rows = conn.execute(sa.select(deliveries.c.state, deliveries.c.sent_at,
                                          deliveries.c.message_ref).where(
                deliveries.c.conversation == conversation,
                deliveries.c.state.in_([SENT, SUMMARISED]), deliveries.c.sent_at >= since))
            posts, summaries = [], set()
            for row in rows:
                if row.state == SUMMARISED:
                    summaries.add(row.sent_at)
                elif not (row.message_ref or {}).get("edited"):
                    posts.append(row.sent_at)
        return sorted([*posts, *summaries])

    def counts(self) -> dict[str, int]:
        """Deliveries by state (pending, sent, summarised, failed)."""
        with self.database.connection() as conn:
            rows = conn.execute(sa.select(deliveries.c.state, sa.func.count())
                                .group_by(deliveries.c.state))
            return {str(state): int(n) for state, n in rows}

    def history(self, conversation: str | None = None) -> list[dict[str, Any]]:
        """Every delivery with its event key and state, oldest first (for tests and tools)."""
        query = (sa.select(deliveries.c.id, deliveries.c.conversation, deliveries.c.state,
                           deliveries.c.kind, deliveries.c.attempts, deliveries.c.error,
                           deliveries.c.message_ref, events.c.key, events.c.grp)
                 .join(events, events.c.id == deliveries.c.event_id).order_by(deliveries.c.id))
        if conversation is not None:
            query = query.where(deliveries.c.conversation == conversation)
        with self.database.connection() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]


def _subscription(row: Mapping[str, Any]) -> Subscription:
    return Subscription(
        id=str(row["id"]), conversation=str(row["conversation"]), channel=str(row["channel"]),
        address=dict(row["address"] or {}), filters=Filters.from_dict(row["filters"] or {}),
        buttons=tuple(row["buttons"] or ()), origin=str(row["origin"]),
        created_by=str(row["created_by"]), created_at=row["created_at"])


def _delivery(row: Mapping[str, Any]) -> Delivery:
    return Delivery(
        id=int(row["id"]), event=Event.from_dict(row["body"]),
        conversation=str(row["conversation"]), channel=str(row["channel"]),
        address=dict(row["address"] or {}), kind=str(row["kind"]),
        buttons=tuple(row["buttons"] or ()), held=bool(row["held"]),
        attempts=int(row["attempts"] or 0), created_at=row["created_at"])
