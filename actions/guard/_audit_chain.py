"""The audit log's hash chain: hashing a row, verifying the chain, the JSON-lines copy.

Each audit row carries ``prev_hash`` (the previous row's hash, or ``GENESIS`` for the
first) and ``hash`` = sha256 over a canonical JSON of the row's content and
``prev_hash``. A row also carries ``changes``, exactly what its transaction wrote to
the operations table, so replaying the chain says what ``opsbot audit`` must show; an
edit of the operations table is caught too. Rows written before the chain existed are
left as they were and sealed by the first chained row (``chain_started``: their count,
last id and a digest), so the chain vouches for them from the migration on.

This module is pure: the store reads the rows and appends the lines; here they are
hashed and checked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "CHAIN_STARTED",
    "GENESIS",
    "AuditVerification",
    "append_lines",
    "chain_hash",
    "file_line",
    "legacy_digest",
    "read_anchors",
    "verify_chain",
]

logger = logging.getLogger(__name__)

GENESIS = "0" * 64
# The first chained row of a log that had rows before the chain: it seals them.
CHAIN_STARTED = "chain_started"
# How far back an out-of-place prev_hash is looked up, to tell inserted rows apart.
_RECENT = 1000
# Sorts after every row id: problems that no audit row is about.
_LAST = 2**63
# Columns of the operations table holding times: compared as instants, not as text.
_TIME_COLUMNS = frozenset({"created_at", "expires_at", "confirmed_at", "approved_at",
                           "finished_at", "notified_at"})


def _plain(value: Any) -> Any:
    """``value`` as the JSON the store keeps (datetimes in ISO 8601, tuples as lists)."""
    return json.loads(json.dumps(value, ensure_ascii=False, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def _instant(value: Any) -> str | None:
    """A time (datetime or ISO text) as UTC ISO text, so equal instants compare equal."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC).isoformat()
    return str(value)


def _content(row: Mapping[str, Any]) -> dict[str, Any]:
    """What a row's hash covers, besides ``prev_hash``."""
    return {
        "operation_id": row["operation_id"],
        "at": _instant(row["at"]),
        "kind": row["kind"],
        "actor": row["actor"],
        "channel": row["channel"],
        "detail": _plain(row["detail"] or {}),
        "changes": _plain(row.get("changes")),
    }


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default).encode("utf-8")


def chain_hash(prev_hash: str, row: Mapping[str, Any]) -> str:
    """The hash of an audit row (operation_id, at, kind, actor, channel, detail, changes)."""
    return hashlib.sha256(_canonical({"prev_hash": prev_hash, **_content(row)})).hexdigest()


def legacy_digest(rows: Iterable[Mapping[str, Any]]) -> tuple[int, int | None, str]:
    """Count, last id and digest of rows written before the chain (their ids included)."""
    digest = hashlib.sha256()
    count, last = 0, None
    for row in rows:
        digest.update(_canonical({"id": row["id"], **_content(row)}) + b"\n")
        count, last = count + 1, int(row["id"])
    return count, last, digest.hexdigest()


def file_line(row: Mapping[str, Any]) -> str:
    """One row for ``OPSBOT_AUDIT_FILE``: a JSON object on one line, with its hashes."""
    return json.dumps({"id": row["id"], **_content(row), "prev_hash": row["prev_hash"],
                       "hash": row["hash"]}, ensure_ascii=False, sort_keys=True,
                      default=_json_default) + "\n"


def append_lines(path: Path, lines: Iterable[str]) -> None:
    """Append ``lines`` to ``path`` (made 0600), one write each: writers interleave whole lines."""
    data = [line.encode("utf-8") for line in lines]
    if not data:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        for chunk in data:
            os.write(fd, chunk)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class AuditVerification:
    """What ``opsbot audit --verify`` found."""

    rows: int
    """Rows checked through the chain."""
    before_chain: int
    """Rows written before the chain existed (sealed by its first row)."""
    head: str | None
    """The last row's hash: keep it elsewhere to detect a rewrite of the whole chain."""
    copies: int = 0
    """Rows of the ``OPSBOT_AUDIT_FILE`` copy compared with the database."""
    problem: str | None = None
    """The first thing wrong, naming the row (None when the log is intact)."""
    row_id: int | None = None
    """The id of the row the problem is about, when there is one."""

    @property
    def ok(self) -> bool:
        return self.problem is None


class _Found(Exception):
    def __init__(self, row_id: int | None, problem: str) -> None:
        super().__init__(problem)
        self.row_id, self.problem = row_id, problem


def verify_chain(
    rows: Iterable[Mapping[str, Any]],
    operations: Iterable[Mapping[str, Any]],
    anchors: Iterable[tuple[int, str]] = (),
) -> AuditVerification:
    """Walk the audit ``rows`` (by id), then compare the replayed operations with the table.

    ``operations`` are the rows of the operations table; ``anchors`` the (id, hash)
    pairs of a shipped copy (``OPSBOT_AUDIT_FILE``), each of which must still be in the log.
    """
    copies = dict(anchors)
    compared = len(copies)
    walk = _Walk(copies)
    try:
        for row in rows:
            walk.step(row)
        walk.finish()
        if walk.copies:
            row_id = min(walk.copies)
            raise _Found(row_id, f"row {row_id} is in OPSBOT_AUDIT_FILE but not in the "
                                 "database: it was deleted.")
        _compare(walk.replayed, walk.first_row, walk.legacy_ops, operations)
    except _Found as found:
        return AuditVerification(walk.count, walk.before, None, compared, found.problem,
                                 found.row_id)
    return AuditVerification(walk.count, walk.before, walk.expected if walk.count else None,
                             compared)


class _Walk:
    """The state of a walk along the chain, one row at a time."""

    def __init__(self, copies: dict[int, str]) -> None:
        self.copies = copies
        self.count = 0
        self.before = 0
        self.expected = GENESIS
        self.last_id: int | None = None
        self.legacy: list[Mapping[str, Any]] = []
        self.legacy_ops: set[str] = set()
        self.recent: OrderedDict[str, int] = OrderedDict()
        self.replayed: dict[str, dict[str, Any]] = {}
        self.first_row: dict[str, int] = {}

    def step(self, row: Mapping[str, Any]) -> None:
        row_id = int(row["id"])
        if row["hash"] is None:
            if self.count:
                raise _Found(row_id, f"row {row_id} has no hash but comes after the chain "
                                     "started: it was inserted (or its hash removed).")
            self.before += 1
            self.legacy.append(row)
            if row["operation_id"]:
                self.legacy_ops.add(str(row["operation_id"]))
            self.last_id = row_id
            return
        if self.count == 0 and self.legacy:
            self._check_seal(row)
        computed = chain_hash(str(row["prev_hash"]), row)
        if computed != row["hash"]:
            about = ", ".join(str(v) for v in (row["kind"], row["operation_id"]) if v)
            raise _Found(row_id, f"row {row_id} was changed (or forged): its content ({about}) "
                                 "does not match its hash.")
        if row["prev_hash"] != self.expected:
            raise _Found(*self._broken_link(row_id, str(row["prev_hash"])))
        self.count += 1
        self.expected = str(row["hash"])
        self.last_id = row_id
        copied = self.copies.pop(row_id, None)
        if copied is not None and copied != self.expected:
            raise _Found(row_id, f"row {row_id} differs from its copy in OPSBOT_AUDIT_FILE: it "
                                 "was changed and the chain after it re-hashed.")
        self.recent[self.expected] = row_id
        if len(self.recent) > _RECENT:
            self.recent.popitem(last=False)
        self._replay(row_id, row)

    def finish(self) -> None:
        if self.legacy and not self.count:
            first = int(self.legacy[0]["id"])
            raise _Found(first, f"rows {first}-{self.last_id} have no hash and no "
                                f"'{CHAIN_STARTED}' row seals them: the chain's hashes were "
                                "removed.")

    def _check_seal(self, row: Mapping[str, Any]) -> None:
        row_id = int(row["id"])
        detail = row["detail"] or {}
        if row["kind"] != CHAIN_STARTED:
            raise _Found(row_id, f"row {row_id} is the chain's first row but not a "
                                 f"'{CHAIN_STARTED}' seal of the {self.before} rows before it: "
                                 "rows were deleted or had their hashes removed.")
        count, last, digest = legacy_digest(self.legacy)
        if (count, last) != (detail.get("rows_before"), detail.get("last_id_before")):
            raise _Found(row_id, f"the rows before the chain were {detail.get('rows_before')} up "
                                 f"to id {detail.get('last_id_before')} when it started (row "
                                 f"{row_id}); now they are {count} up to id {last}: rows were "
                                 "deleted or inserted.")
        if digest != detail.get("digest"):
            raise _Found(row_id, f"the {count} rows before the chain no longer match the seal in "
                                 f"row {row_id}: one of them was changed.")

    def _broken_link(self, row_id: int, prev: str) -> tuple[int, str]:
        if prev in self.recent:
            skipped = self.recent[prev]
            inserted = next(i for h, i in self.recent.items() if i > skipped)
            return inserted, (f"row {inserted} was inserted: row {row_id} chains from row "
                              f"{skipped}, not from the rows after it.")
        if self.count == 0:
            return row_id, (f"row {row_id} is the chain's first row but does not start from the "
                            "genesis: the rows before it were deleted.")
        gap = (f"rows {self.last_id + 1}-{row_id - 1} are missing"
               if self.last_id is not None and row_id - self.last_id > 1
               else f"row {self.last_id} was changed and re-hashed")
        return row_id, (f"row {row_id} does not chain from row {self.last_id}, the row before "
                        f"it: a row between them was deleted ({gap}) or replaced.")

    def _replay(self, row_id: int, row: Mapping[str, Any]) -> None:
        changes = row.get("changes")
        operation_id = row["operation_id"]
        if not operation_id or not isinstance(changes, Mapping):
            return
        state = self.replayed.setdefault(operation_id, {})
        self.first_row.setdefault(operation_id, row_id)
        state.update(_plain(dict(changes)))


def _compare(replayed: Mapping[str, dict[str, Any]], first_row: Mapping[str, int],
             legacy_ops: Collection[str], operations: Iterable[Mapping[str, Any]]) -> None:
    """The first operation whose row differs from what the chain says it should be."""
    problems: list[tuple[int, str]] = []
    seen: set[str] = set()
    for op in operations:
        operation_id = str(op["id"])
        seen.add(operation_id)
        wanted = replayed.get(operation_id)
        if wanted is None:
            if operation_id in legacy_ops:
                continue  # from before the chain: nothing to compare with
            problem = (f"operation {operation_id} is in the operations table but not in the "
                       "audit chain: it was inserted by hand.")
            problems.append((_LAST, problem))
            continue
        for column, value in wanted.items():
            have = op.get(column)
            if column in _TIME_COLUMNS:
                same = _instant(have) == _instant(value)
            else:
                same = _plain(have) == value
            if not same:
                problem = (f"operation {operation_id} was changed in the operations table: its "
                           f"{column} is {_plain(have)!r}, the audit chain says {value!r}.")
                problems.append((first_row[operation_id], problem))
                break
    for operation_id, row_id in first_row.items():
        if operation_id not in seen:
            problem = (f"operation {operation_id} (audit row {row_id}) is missing from the "
                       "operations table: it was deleted.")
            problems.append((row_id, problem))
    if problems:
        first, problem = min(problems, key=lambda p: p[0])
        raise _Found(first if first != _LAST else None, problem)


def read_anchors(path: Path) -> Iterator[tuple[int, str]]:
    """The (id, hash) pairs in an ``OPSBOT_AUDIT_FILE``; unreadable lines are skipped, logged."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            try:
                entry = json.loads(line)
                yield int(entry["id"]), str(entry["hash"])
            except (ValueError, KeyError, TypeError):
                logger.warning("%s line %d is not an audit row; skipped", path, number)
