"""What more than one replica needs from Rasa: a shared tracker store, a Redis lock store,
and several Sanic workers.

* ``OPSBOT_TRACKER_URL``: where Rasa keeps conversations (an SQLAlchemy URL). Default:
  the database of ``OPSBOT_DB_URL`` when that is a server (PostgreSQL: one database for
  opsbot's store and Rasa's ``events`` table), else the SQLite file ``tracker.db`` in the
  state directory, as before.
* ``OPSBOT_REDIS_URL``: ``redis://[[user]:password@]host[:port][/db]`` (``rediss://`` for
  TLS). Turns on Rasa's Redis lock store, so any replica (or worker) can take any
  conversation without two of them handling one conversation's messages at once.
* ``OPSBOT_WORKERS``: Sanic workers of the Rasa server (Rasa's ``SANIC_WORKERS``); more
  than one only with ``OPSBOT_REDIS_URL``, since Rasa's in-memory lock store cannot be
  shared between processes.

Passwords are never written into the runtime endpoints.yml: it names them as
``${OPSBOT_TRACKER_PASSWORD}`` / ``${OPSBOT_REDIS_PASSWORD}``, which Rasa resolves from
the Rasa server's environment (``environment()`` below).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

__all__ = ["ReplicaError", "environment", "lock_store", "tracker_store", "workers"]

TRACKER_PASSWORD = "OPSBOT_TRACKER_PASSWORD"
REDIS_PASSWORD = "OPSBOT_REDIS_PASSWORD"
KEY_PREFIX = "opsbot"
# Rasa's SQL tracker store with a cache the database validates (opsbot._tracker).
TRACKER_STORE = "opsbot._tracker.CachingSQLTrackerStore"  # Rasa takes alphanumeric prefixes only


class ReplicaError(ValueError):
    """A replica setting that cannot work; the message names the variable and the fix."""


def _get(env: Mapping[str, str], name: str) -> str:
    return (env.get(name) or "").strip()


def tracker_url(env: Mapping[str, str]) -> str | None:
    """The tracker store's URL, or None for the SQLite file in the state directory."""
    explicit = _get(env, "OPSBOT_TRACKER_URL")
    if explicit:
        return explicit
    store = _get(env, "OPSBOT_DB_URL")
    if store and not store.startswith("sqlite"):
        return store
    return None


def tracker_store(env: Mapping[str, str], state_dir: Path) -> dict[str, Any]:
    """The ``tracker_store`` section of the runtime endpoints.yml."""
    url = tracker_url(env)
    if url is None:
        return {"type": TRACKER_STORE, "dialect": "sqlite", "db": str(state_dir / "tracker.db")}
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ReplicaError(
            "OPSBOT_TRACKER_URL (or OPSBOT_DB_URL) is not a database URL. Use "
            "postgresql://user:password@host:5432/database.") from None
    if parsed.get_backend_name() == "sqlite":
        return {"type": TRACKER_STORE, "dialect": "sqlite", "db": parsed.database or "tracker.db"}
    if not parsed.host or not parsed.database:
        raise ReplicaError(
            "OPSBOT_TRACKER_URL needs a host and a database: "
            "postgresql://user:password@host:5432/database.")
    section: dict[str, Any] = {"type": TRACKER_STORE, "dialect": parsed.drivername,
                               "url": parsed.host, "db": parsed.database}
    if parsed.port:
        section["port"] = parsed.port
    if parsed.username:
        section["username"] = parsed.username
    if parsed.password is not None:
        section["password"] = "${" + TRACKER_PASSWORD + "}"
    if parsed.query:
        section["query"] = {k: v if isinstance(v, str) else ",".join(v)
                            for k, v in parsed.query.items()}
    return section


def _redis(env: Mapping[str, str]) -> tuple[dict[str, Any], str | None] | None:
    url = _get(env, "OPSBOT_REDIS_URL")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss") or not parts.hostname:
        raise ReplicaError(
            f"OPSBOT_REDIS_URL must look like redis://[:password@]host[:port][/db] "
            f"(rediss:// for TLS), not {parts.scheme or 'a URL without a scheme'}://...")
    try:
        port = parts.port or 6379
        db = int(parts.path.strip("/") or 0)
    except ValueError:
        raise ReplicaError(
            "OPSBOT_REDIS_URL: the port and the database (the path, /0 ... /15) must be "
            "numbers.") from None
    section: dict[str, Any] = {"type": "redis", "url": parts.hostname, "port": port, "db": db,
                               "key_prefix": KEY_PREFIX}
    if parts.username:
        section["username"] = unquote(parts.username)
    password = unquote(parts.password) if parts.password else None
    if password:
        section["password"] = "${" + REDIS_PASSWORD + "}"
    if parts.scheme == "rediss":
        section["use_ssl"] = True
    return section, password


def lock_store(env: Mapping[str, str]) -> dict[str, Any] | None:
    """The ``lock_store`` section (Redis), or None for Rasa's in-memory lock store."""
    found = _redis(env)
    return found[0] if found else None


def workers(env: Mapping[str, str]) -> int:
    """The Rasa server's Sanic workers from OPSBOT_WORKERS (1 when unset)."""
    text = _get(env, "OPSBOT_WORKERS")
    if not text:
        return 1
    try:
        count = int(text)
    except ValueError:
        raise ReplicaError(f"OPSBOT_WORKERS must be a whole number, not {text!r}.") from None
    if count < 1 or count > 64:
        raise ReplicaError(f"OPSBOT_WORKERS must be between 1 and 64, not {count}.")
    if count > 1 and not _get(env, "OPSBOT_REDIS_URL"):
        raise ReplicaError(
            f"OPSBOT_WORKERS={count} needs OPSBOT_REDIS_URL: Rasa runs more than one worker "
            "only with a Redis lock store (each worker would otherwise lock conversations "
            "on its own). Set OPSBOT_REDIS_URL=redis://host:6379/0, or OPSBOT_WORKERS=1.")
    return count


def environment(env: Mapping[str, str]) -> dict[str, str]:
    """What the Rasa server's environment needs for the sections above: the passwords the
    endpoints name, and SANIC_WORKERS."""
    extra = {"SANIC_WORKERS": str(workers(env))}
    url = tracker_url(env)
    if url is not None and not url.startswith("sqlite"):
        from sqlalchemy.engine import make_url

        password = make_url(url).password
        if password is not None:
            extra[TRACKER_PASSWORD] = str(password)
    found = _redis(env)
    if found and found[1]:
        extra[REDIS_PASSWORD] = found[1]
    return extra
