"""opsbot's database, and the concern stores that need nothing but it.

- ``_database``: :class:`Database` (the engine, each concern's :class:`Schema` and its
  upgrade, once per engine; transactions whose errors become :class:`StoreError`).
- ``_columns``: the column types the concerns' tables share (UTC times, JSON text).
- ``channel_state``: what the chat connectors remember (:class:`ChannelState`).
- ``leases``: who does a background duty now (:class:`Leases`).
- ``taught``: phrasings waiting for review (:class:`TaughtPhrasings`).
- ``wishes``: requests opsbot could not serve, the automation backlog (:class:`Wishes`).

The operations and their audit log are ``actions.guard.store``, the event outbox
``actions.events.store``; ``actions.stores`` opens them all on one database.
"""

from actions.storage._database import Database, Schema, StoreError, mask_url
from actions.storage.channel_state import ChannelState
from actions.storage.leases import Lease, Leases
from actions.storage.taught import ACCEPTED, CANDIDATE, REJECTED, Taught, TaughtPhrasings
from actions.storage.wishes import Wish, Wishes

__all__ = [
    "ACCEPTED",
    "CANDIDATE",
    "REJECTED",
    "ChannelState",
    "Database",
    "Lease",
    "Leases",
    "Schema",
    "StoreError",
    "Taught",
    "TaughtPhrasings",
    "Wish",
    "Wishes",
    "mask_url",
]
