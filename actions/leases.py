"""Lease settings shared by the duties that one replica does at a time.

The leases themselves are rows in the store (``actions.storage.leases``). Who uses
them: the watcher (``operation:<id>``, in the action server), the Telegram poller
(``telegram-poller:<bot id>``, in the Rasa server); event deliveries have leases of their
own in the outbox (``actions.events.store``).
"""

from __future__ import annotations

import os
import socket

__all__ = ["lease_seconds", "process_owner"]


def lease_seconds() -> float:
    """How long a lease lasts unless renewed: OPSBOT_LEASE_SECONDS (default 20, at least
    2). Holders renew every quarter of it, so a replica that dies loses its duties within
    this time, and a slow one (a quarter of it without the store) does not."""
    try:
        return max(2.0, float(os.environ.get("OPSBOT_LEASE_SECONDS") or 20.0))
    except ValueError:
        return 20.0


def process_owner() -> str:
    """A name for this process in leases: OPSBOT_REPLICA_ID when set, else host and pid."""
    return (os.environ.get("OPSBOT_REPLICA_ID") or "").strip() or \
        f"{socket.gethostname()}:{os.getpid()}"
