"""Models shared between replicas through the store's database.

A model that one replica took through the checked reload (``opsbot train --reload``, an
accepted review: ``connectors.reload``) is published: its archive goes into the table
``opsbot_models`` of opsbot's store, with its SHA-256, under a rising id. Every Rasa server
(each replica, each Sanic worker) looks at the newest published model every
``OPSBOT_MODEL_SYNC_SECONDS`` (default 10); when it is not the one it answers with, it
writes the archive into its own ``OPSBOT_MODELS`` (checking the digest), loads it and
checks it exactly as the reload endpoint does, and swaps it in. A model that fails the
check on a replica is refused there (logged, once) and that replica keeps its model.

A replica that starts publishes nothing (its model may be older than the team's): it
takes the newest published one if there is one. On by default when the store is a
database server (``OPSBOT_DB_URL`` not SQLite), where replicas can be; ``OPSBOT_SHARE_MODELS``
= ``1``/``0`` turns it on or off.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from actions.backoff import Backoff
from actions.errors import OpsbotError
from actions.storage import Schema

__all__ = ["Published", "enabled", "latest", "publish", "sync_seconds"]

logger = logging.getLogger(__name__)

models = sa.Table(
    "opsbot_models", sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("name", sa.String(255), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("published_at", sa.String(40), nullable=False),
    sa.Column("published_by", sa.String(255), nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
)
_MAX_BYTES = 512 * 1024 * 1024
_KEEP = 5  # published models kept (older ones are deleted on publish)


@dataclass(frozen=True)
class Published:
    id: int
    name: str
    sha256: str
    size: int


def enabled(env: dict[str, str] | os._Environ[str] | None = None) -> bool:
    env = os.environ if env is None else env
    flag = (env.get("OPSBOT_SHARE_MODELS") or "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return True
    if flag in ("0", "false", "no", "off"):
        return False
    url = (env.get("OPSBOT_DB_URL") or "").strip()
    return bool(url) and not url.startswith("sqlite")


def sync_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get("OPSBOT_MODEL_SYNC_SECONDS") or 10.0))
    except ValueError:
        return 10.0


_SCHEMA = Schema("models", (models,))


def _engine() -> sa.Engine:
    """The store's engine, with the table created once per engine (not at every look)."""
    from connectors._common import stores

    database = stores().database
    database.require(_SCHEMA)
    database.ensure()  # with the store's own tables (and their checks), the first time
    return database.engine


def publish(path: Path, by: str) -> Published:
    """Put the archive at ``path`` into the store as the newest model (blocking)."""
    data = path.read_bytes()
    if len(data) > _MAX_BYTES:
        raise ValueError(f"{path.name} is {len(data)} bytes, more than opsbot shares "
                         f"({_MAX_BYTES}).")
    digest = hashlib.sha256(data).hexdigest()
    engine = _engine()
    with engine.begin() as conn:
        newest = conn.execute(sa.select(models.c.id, models.c.name, models.c.sha256)
                              .order_by(models.c.id.desc()).limit(1)).first()
        if newest is not None and newest.name == path.name and newest.sha256 == digest:
            return Published(int(newest.id), str(newest.name), str(newest.sha256), len(data))
        row = conn.execute(models.insert().values(
            name=path.name, sha256=digest, size=len(data), data=data, published_by=by,
            published_at=datetime.now(UTC).isoformat(timespec="seconds")))
        new_id = int(row.inserted_primary_key[0])
        keep = sa.select(models.c.id).order_by(models.c.id.desc()).limit(_KEEP).subquery()
        conn.execute(models.delete().where(models.c.id.not_in(sa.select(keep.c.id))))
    logger.info("published model %s (%s) for the other replicas", path.name, digest[:12])
    return Published(new_id, path.name, digest, len(data))


def latest() -> Published | None:
    """The newest published model, without its bytes (blocking)."""
    with _engine().connect() as conn:
        row = conn.execute(sa.select(models.c.id, models.c.name, models.c.sha256, models.c.size)
                           .order_by(models.c.id.desc()).limit(1)).first()
    return None if row is None else Published(int(row.id), str(row.name), str(row.sha256),
                                               int(row.size))


def fetch(published: Published, directory: Path) -> Path:
    """Write the published model into ``directory`` (atomically, digest checked)."""
    with _engine().connect() as conn:
        data = conn.execute(sa.select(models.c.data).where(models.c.id == published.id)).scalar()
    if data is None:
        raise LookupError(f"model {published.name} is no longer published")
    data = bytes(data)
    if hashlib.sha256(data).hexdigest() != published.sha256:
        raise ValueError(f"model {published.name} does not match its SHA-256 in the store")
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / Path(published.name).name
    if target.is_file() and hashlib.sha256(target.read_bytes()).hexdigest() == published.sha256:
        return target
    partial = target.with_name(target.name + f".{os.getpid()}.part")
    with open(partial, "wb") as handle:
        handle.write(data)
    os.replace(partial, target)
    return target


async def follow(app: Any, lock: asyncio.Lock, models_dir: Path) -> None:
    """Take the newest published model whenever it is not the one answering (forever)."""
    from connectors._model_check import ModelRefused, load_checked

    refused: set[int] = set()
    outages = (OpsbotError, sa.exc.SQLAlchemyError, OSError)
    looking = Backoff("model sharing: looking for a newer shared model", logger,
                      interval=sync_seconds(), expected=outages)
    fetching = Backoff("model sharing: fetching the shared model", logger,
                       interval=sync_seconds(), expected=outages)
    wait = looking.interval
    while True:
        await asyncio.sleep(wait)
        try:
            published = await asyncio.to_thread(latest)
        except Exception as exc:  # noqa: BLE001 - the store may come back
            wait = looking.failed(exc)
            continue
        wait = looking.succeeded()
        running = getattr(app.ctx, "agent", None)
        if published is None or published.id in refused or running is None \
                or running.processor is None:
            continue
        if Path(str(running.processor.model_filename or "")).name == published.name:
            continue
        async with lock:  # the reload endpoint's: one model change at a time
            try:
                # Again, under the lock: a reload here may have just published another.
                published = await asyncio.to_thread(latest)
            except Exception as exc:  # noqa: BLE001 - next round
                wait = looking.failed(exc)
                continue
            running = app.ctx.agent
            if published is None or published.id in refused or Path(str(
                    running.processor.model_filename or "")).name == published.name:
                continue
            try:
                path = await asyncio.to_thread(fetch, published, models_dir)
            except ValueError as exc:  # its bytes are not what was published: never again
                refused.add(published.id)
                logger.error("the shared model %s is refused here; this replica keeps its "
                             "model: %s", published.name, exc)
                continue
            except Exception as exc:  # noqa: BLE001 - the store or the disk may come back
                wait = fetching.failed(exc)
                continue
            fetching.succeeded()
            try:
                agent = await load_checked(path, running)
            except ModelRefused as exc:
                refused.add(published.id)
                logger.error("the shared model %s is refused here; this replica keeps its "
                             "model: %s", published.name, exc)
                continue
            app.ctx.agent = agent
        logger.info("now answering with the shared model %s", published.name)
