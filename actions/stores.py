"""opsbot's stores, one per concern, on one database: what a process opens at start.

``Stores.from_env()`` opens the database (``OPSBOT_DB_URL``, else the state dir) and
every concern on it; ``Stores.around(store)`` gives the other concerns of an
``OperationStore``'s database. Each concern's schema is created or upgraded once per
engine, at the first statement (``actions.storage.Database``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from actions.events.store import EventStore
from actions.guard.store import OperationStore
from actions.storage import ChannelState, Database, Leases, TaughtPhrasings, Wishes

__all__ = ["Stores"]


@dataclass(frozen=True)
class Stores:
    """Every concern store of one database."""

    operations: OperationStore
    """Operations, their execution key and the audit log."""
    taught: TaughtPhrasings
    """Phrasings people taught, waiting for review."""
    channel_state: ChannelState
    """What the chat connectors remember."""
    leases: Leases
    """Who does a background duty now."""
    events: EventStore
    """The event outbox."""
    wishes: Wishes
    """Requests opsbot could not serve: the automation backlog."""

    @property
    def database(self) -> Database:
        return self.operations.database

    @classmethod
    def around(cls, operations: OperationStore) -> Stores:
        """The concerns of ``operations``' database (cheap: they keep no state of their own)."""
        database = operations.database
        return cls(operations=operations,
                   taught=TaughtPhrasings(database, check_text=_check_text,
                                          check_example=_check_example),
                   channel_state=ChannelState(database), leases=Leases(database),
                   events=EventStore(database), wishes=Wishes(database))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Stores:
        """The stores at ``OPSBOT_DB_URL`` (see ``OperationStore.from_env``)."""
        return cls.around(OperationStore.from_env(env))

    def close(self) -> None:
        """Closes the database's pooled connections (it reconnects if used again)."""
        self.database.close()


def _check_text(text: str) -> None:
    from actions.teaching import check_phrase  # lazily: it loads rasa_sdk

    check_phrase(text)


def _check_example(example: str) -> None:
    from actions.teaching import parse_example

    parse_example(example)
