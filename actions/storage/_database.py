"""The database every concern store shares: one engine, its schemas, their upgrades.

One SQL database shared by every process of opsbot (the action server, its replicas, the
Rasa server's connectors, the CLI): a SQLite file by default, PostgreSQL by URL
(``OPSBOT_DB_URL``). Each concern (operations and audit, taught phrasings, channel
state, leases, events) declares a :class:`Schema` (its tables, and the upgrade that
brings a database made by an older opsbot up to them) and ``require``s it; the schemas
are created or upgraded once per engine, together, before the first statement.

A failure is a ``StoreError`` whose message a chat may show (it never names the
database's address or user); the details are logged once per failure, under a reference
the message carries.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import (
    ArgumentError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from actions.errors import OpsbotError

__all__ = [
    "Database",
    "Schema",
    "StoreError",
    "database_now",
    "in_sqlite_transaction",
    "mask_url",
    "missing_indexes",
    "on_rollback",
    "setup_error",
    "write_lock",
]

logger = logging.getLogger(__name__)

# Any constant: serialises creating the schemas between processes sharing a PostgreSQL.
_PG_SCHEMA_LOCK = 0x0B5B07
# Where a transaction of Database.begin keeps what to undo if it does not commit.
_ON_ROLLBACK = "opsbot_on_rollback"

_Undo = TypeVar("_Undo", bound=Callable[[BaseException], None])


class StoreError(OpsbotError):
    """The operation store failed.

    ``str()`` is for a chat, where every member of a group reads it: what failed and what
    became of the request, with a short ``reference``; never the database's address, user,
    port or name. ``detail`` (the URL with its password masked, the driver's first line,
    the fix) is for operators: it was logged once, under the same reference.
    """

    def __init__(self, message: str, *, detail: str | None = None,
                 reference: str | None = None, summary: str | None = None) -> None:
        super().__init__(message)
        self.detail = detail
        self.reference = reference
        self.summary = summary  # one line for a log that has ``detail`` under the reference


class _References:
    """One reference per failure while it lasts: its details are logged once, not per attempt."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._current: tuple[str, str] | None = None  # (detail, reference)

    def error(self, what: str, detail: str, *, later: bool) -> StoreError:
        """A StoreError saying ``what`` failed; ``detail`` is logged if it is news.

        ``later``: the failure may pass by itself (an outage), so trying again is advice.
        """
        with self._lock:
            news = self._current is None or self._current[0] != detail
            if news:
                self._current = (detail, secrets.token_hex(4))
            assert self._current is not None
            reference = self._current[1]
        (logger.warning if news else logger.debug)("%s (reference %s)", detail, reference)
        advice = ("Try again in a few minutes; if it goes on, give an opsbot admin the "
                  "reference." if later else "An opsbot admin must fix it: give them the "
                  "reference.")
        return StoreError(f"opsbot's {what}, so your request could not be saved or checked "
                          f"(reference {reference}). {advice}", detail=detail,
                          reference=reference, summary=f"opsbot's {what} (reference {reference})")

    def clear(self) -> None:
        """The store works again: the next failure is news."""
        self._current = None


# Failures before a database is open (a bad URL, a state dir that cannot be made).
_SETUP = _References()


def setup_error(what: str, detail: str) -> StoreError:
    """A StoreError for opsbot's store being set up wrong (an admin must fix it)."""
    return _SETUP.error(what, detail, later=False)


def mask_url(url: str) -> str:
    """``url`` with any password replaced by ``***`` (also when the URL does not parse)."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
    if "password" in parsed.query:
        parsed = parsed.update_query_dict({"password": "***"})
    return parsed.render_as_string(hide_password=True)


def _passwords_of(url: str) -> tuple[str, ...]:
    """Every password in ``url``: ``?password=`` may be given more than once."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        found = re.search(r"://[^:/@]*:([^@]*)@", url)
        return (found.group(1),) if found and found.group(1) else ()
    in_query = parsed.query.get("password") or ()
    if isinstance(in_query, str):
        in_query = (in_query,)
    return tuple(p for p in (parsed.password, *in_query) if p)


@dataclass(frozen=True)
class Schema:
    """A concern's tables, and what brings a database made by an older opsbot up to them.

    ``upgrade`` runs after the tables are created (existing ones are left as they are),
    in the same transaction, every time a process first uses the database: it adds what
    an older table lacks (columns, :func:`missing_indexes`), and checks what must always
    be there (the audit log's triggers).
    """

    name: str
    tables: tuple[sa.Table, ...]
    upgrade: Callable[[Connection], None] | None = None


class Database:
    """opsbot's database: the engine, the concerns' schemas, transactions and their errors.

    Thread-safe; several instances (processes, replicas) may share one database. Nothing
    connects until the first transaction or connection, which creates or upgrades every
    schema required so far (and later ones at the next).
    """

    def __init__(self, url: str) -> None:
        self._display = mask_url(url)
        self._failures = _References()
        self._passwords = _passwords_of(url)
        try:
            parsed = make_url(url)
            options: dict[str, Any] = {"future": True}
            if parsed.get_backend_name() == "sqlite":
                # Wait for a lock rather than fail at once: the action server and the CLI
                # write to the same file.
                options["connect_args"] = {"timeout": 30}
            else:
                options["pool_pre_ping"] = True
            self._engine: Engine = sa.create_engine(parsed, **options)
        except (ArgumentError, SQLAlchemyError, ImportError) as exc:
            raise setup_error(
                "operation store is not set up correctly",
                f"opsbot cannot use the database URL {self._display}: {self._reason(exc)}. "
                "Set OPSBOT_DB_URL to sqlite:///path/to/opsbot.db or "
                "postgresql://user:password@host:5432/database.") from None
        if self._engine.dialect.name == "sqlite":
            sa_event.listen(self._engine, "connect", _sqlite_pragmas)
        self._schemas: dict[str, Schema] = {}
        self._pending: list[Schema] = []
        self._schema_lock = threading.Lock()

    @staticmethod
    def url_from_env(env: Mapping[str, str] | None = None) -> str:
        """``OPSBOT_DB_URL``, else opsbot.db in ``OPSBOT_STATE_DIR`` (./.opsbot), made then."""
        env = os.environ if env is None else env
        url = (env.get("OPSBOT_DB_URL") or "").strip()
        if url:
            return url
        state_dir = Path(env.get("OPSBOT_STATE_DIR") or ".opsbot").expanduser()
        try:
            state_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise setup_error(
                "operation store is not set up correctly",
                f"opsbot cannot create its state directory {state_dir}: {exc.strerror}. "
                "Set OPSBOT_STATE_DIR to a writable directory, or OPSBOT_DB_URL.") from exc
        return f"sqlite:///{state_dir.resolve() / 'opsbot.db'}"

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Database:
        """The database at :meth:`url_from_env`."""
        return cls(cls.url_from_env(env))

    @property
    def url_for_display(self) -> str:
        """The database URL with its password masked."""
        return self._display

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (its connections bypass the schemas and error messages)."""
        return self._engine

    def __repr__(self) -> str:
        return f"Database({self._display!r})"

    def close(self) -> None:
        """Closes the pooled connections (the database reconnects if used again)."""
        self._engine.dispose()

    # -- schemas ------------------------------------------------------------------------

    def require(self, schema: Schema) -> None:
        """Have ``schema`` created or upgraded before the next statement (once per name)."""
        with self._schema_lock:
            if schema.name not in self._schemas:
                self._schemas[schema.name] = schema
                self._pending.append(schema)

    def ensure(self) -> None:
        """Create or upgrade the schemas required and not yet done; StoreError if it fails."""
        if not self._pending:
            return
        with self._schema_lock:
            pending = list(self._pending)
            if not pending:
                return
            with self._translate():
                for attempt in range(3):
                    try:
                        self._install(pending)
                        break
                    except OperationalError:
                        # Two processes creating a fresh SQLite file race on CREATE TABLE
                        # (PostgreSQL takes a lock instead); the loser finds the tables next time.
                        if self._engine.dialect.name != "sqlite" or attempt == 2:
                            raise
                        time.sleep(0.05 * (attempt + 1))
            done = {schema.name for schema in pending}
            self._pending = [s for s in self._pending if s.name not in done]

    def _install(self, schemas: list[Schema]) -> None:
        with self.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                             {"key": _PG_SCHEMA_LOCK})
            for schema in schemas:
                for table in schema.tables:
                    table.create(conn, checkfirst=True)
            for schema in schemas:
                if schema.upgrade is not None:
                    schema.upgrade(conn)

    # -- transactions -------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A transaction, committed at the end of the block; database errors become
        StoreError."""
        with self.translated(), self.begin() as conn:
            yield conn

    @contextmanager
    def connection(self) -> Iterator[Connection]:
        """A connection for reads; database errors become StoreError."""
        with self.translated(), self._engine.connect() as conn:
            yield conn

    @contextmanager
    def translated(self) -> Iterator[None]:
        """The schemas made, then database errors in the block become StoreError; for a
        caller that catches one error itself (IntegrityError) around :meth:`begin`."""
        self.ensure()
        with self._translate():
            yield

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A transaction, committed at the end of the block, errors as the driver raised
        them. What was registered with :func:`on_rollback` runs if it does not commit:
        before the rollback when the block fails, after it when the commit does."""
        with self._engine.connect() as conn:
            undo: dict[str, Callable[[BaseException], None]] = {}
            conn.info[_ON_ROLLBACK] = undo
            try:
                with conn.begin():
                    try:
                        yield conn
                    except BaseException as exc:
                        _undo(undo, exc)
                        raise
            except BaseException as exc:
                _undo(undo, exc)
                raise
            finally:
                conn.info.pop(_ON_ROLLBACK, None)

    def failure(self, what: str, detail: str, *, later: bool) -> StoreError:
        """A StoreError saying opsbot's ``what``, with ``detail`` logged once under its
        reference (``later``: trying again may help)."""
        return self._failures.error(what, detail, later=later)

    @contextmanager
    def _translate(self) -> Iterator[None]:
        """Database errors become a StoreError fit for a chat (details logged once)."""
        try:
            yield
        except SQLAlchemyError as exc:
            down = isinstance(exc, (OperationalError, InterfaceError, PoolTimeout)) or \
                bool(getattr(exc, "connection_invalidated", False))
            raise self._failures.error(
                "operation store is unreachable right now" if down else "operation store failed",
                f"The operation store ({self._display}) failed: {self._reason(exc)}. Check that "
                "the database is reachable and OPSBOT_DB_URL is right.", later=True,
            ) from exc
        else:
            self._failures.clear()

    def _reason(self, exc: BaseException) -> str:
        """The first line of the driver's message, without the password or the SQL."""
        original = getattr(exc, "orig", None) or exc
        lines = str(original).strip().splitlines()
        text = lines[0] if lines else type(original).__name__
        for password in self._passwords:
            text = text.replace(password, "***")
        return text.rstrip(".")


def missing_indexes(*tables: sa.Table) -> Callable[[Connection], None]:
    """An upgrade that gives ``tables``, made before an index of theirs was declared, that
    index (creating the tables made them all)."""
    def upgrade(conn: Connection) -> None:
        for table in tables:
            for index in table.indexes:
                index.create(conn, checkfirst=True)

    return upgrade


def on_rollback(conn: Connection, key: str, make: Callable[[], _Undo]) -> _Undo:
    """The undo registered under ``key`` in this transaction of :meth:`Database.begin`,
    made with ``make`` the first time; called with the error if the transaction does not
    commit."""
    undo = conn.info.get(_ON_ROLLBACK)
    if undo is None:
        raise RuntimeError("on_rollback() is for a transaction of Database.begin()")
    if key not in undo:
        undo[key] = make()
    return undo[key]


def _undo(undo: dict[str, Callable[[BaseException], None]], exc: BaseException) -> None:
    hooks = list(undo.values())
    undo.clear()  # once: the block's failure, or else the commit's
    for hook in hooks:
        hook(exc)


def database_now(conn: Connection) -> datetime:
    """The database server's clock, as an aware UTC datetime (SQLite: this host's)."""
    if conn.dialect.name == "postgresql":
        value = conn.execute(sa.text("SELECT statement_timestamp()")).scalar()
        if value is not None:  # timestamptz: an aware datetime from the driver
            return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(UTC)


def in_sqlite_transaction(conn: Connection) -> bool:
    """Whether pysqlite has begun a transaction here (it does so only before a write)."""
    return bool(conn.connection.dbapi_connection.in_transaction)


def write_lock(conn: Connection) -> None:
    """On SQLite, takes the database's write lock now, not at the transaction's first write.

    pysqlite begins a transaction only before a write, so a read before it could see a
    state another writer is replacing. A no-op elsewhere (PostgreSQL locks rows).
    """
    if conn.dialect.name == "sqlite" and not in_sqlite_transaction(conn):
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    """WAL lets the CLI read while the action server writes; busy_timeout waits for locks."""
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
