"""The audit log's hash chain: hashing a row, verifying the chain, the JSON-lines copy.

Each audit row carries ``prev_hash`` (the previous row's hash, or ``GENESIS`` for the
first) and ``hash`` = sha256 over a canonical JSON of the row's content and
``prev_hash``. A row also carries ``changes``, exactly what its transaction wrote to
the operations table, so replaying the chain says what ``opsbot audit`` must show; an
edit of the operations table is caught too. The replay also checks that each change is
one opsbot makes (``Lifecycle``): a row that a writer of the database forged with a
valid hash, rewriting who asked or who confirmed, is named although it chains.
Rows written before the chain existed are left as they were and sealed by the first
chained row (``chain_started``: their count, last id and a digest), so the chain
vouches for them from the migration on.

The copy (``OPSBOT_AUDIT_FILE``) gets each row as a JSON line, fsync'd, inside the row's
transaction, before its commit, while the chain is locked: so it holds every committed
row, in id order, and a row in the database but not in the file was not written by
opsbot. A transaction that fails after its lines were written appends a void line
naming them, so a rolled-back row is not taken for a deleted one.

The store reads the rows and runs the SQL; here they are hashed, copied and checked.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
from collections import OrderedDict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from actions.storage._columns import json_default

__all__ = [
    "CHAIN_STARTED",
    "GENESIS",
    "AuditCopy",
    "AuditVerification",
    "Lifecycle",
    "append_line",
    "chain_hash",
    "create_copy",
    "file_line",
    "legacy_digest",
    "open_copies",
    "read_copies",
    "verify_chain",
    "void_line",
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
    return json.loads(json.dumps(value, ensure_ascii=False, default=json_default))


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
                      default=json_default).encode("utf-8")


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


# ---------------------------------------------------------------------------------------
# The copy in OPSBOT_AUDIT_FILE


def file_line(row: Mapping[str, Any]) -> str:
    """One row for ``OPSBOT_AUDIT_FILE``: a JSON object on one line, with its hashes."""
    return json.dumps({"id": row["id"], **_content(row), "prev_hash": row["prev_hash"],
                       "hash": row["hash"]}, ensure_ascii=False, sort_keys=True,
                      default=json_default) + "\n"


def void_line(rows: Iterable[tuple[int, str]], why: str) -> str:
    """The line that takes back rows copied by a transaction that did not commit."""
    return json.dumps({"void": [[row_id, row_hash] for row_id, row_hash in rows], "why": why},
                      ensure_ascii=False, sort_keys=True) + "\n"


def create_copy(path: Path) -> bool:
    """Create ``path`` empty, mode 0600, if it does not exist; True if this call made it.

    The store does it when it opens, so that a copy missing later was removed.
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    _sync_directory(path.parent)
    return True


def append_line(path: Path, line: str) -> None:
    """Append ``line`` to ``path`` (created 0600) and fsync it; OSError if any of it fails.

    One ``O_APPEND`` write, so processes sharing the file interleave whole lines. A line
    an earlier failure left unfinished (a full disk) is ended first: this one reads alone.
    """
    data = line.encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        info = os.fstat(fd)
        if stat.S_ISREG(info.st_mode) and info.st_size \
                and os.pread(fd, 1, info.st_size - 1) != b"\n":
            data = b"\n" + data
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def _sync_directory(directory: Path) -> None:
    """Make a new file's directory entry durable (best effort: not every system can)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass
class AuditCopy:
    """What the copies hold: each row's hashes by id (with what the row says, for messages),
    and the rows a failed transaction voided."""

    name: str
    """How messages call it: ``OPSBOT_AUDIT_FILE``, or ``the audit copies`` for several."""
    rows: dict[int, dict[str, str]] = field(default_factory=dict)
    voided: set[tuple[int, str]] = field(default_factory=set)

    @property
    def first(self) -> int | None:
        """The first row id the copies have (voided ones included): they start there."""
        ids = [*self.rows, *(row_id for row_id, _ in self.voided)]
        return min(ids) if ids else None


def open_copies(paths: Iterable[Path]) -> list[tuple[Path, IO[bytes], int]]:
    """Open the copies and note how long each is now: lines written later are not read.

    The store calls it while it holds the chain lock, when no row is between its copy and
    its commit. FileNotFoundError names a copy that is missing.
    """
    opened: list[tuple[Path, IO[bytes], int]] = []
    try:
        for path in paths:
            handle = path.open("rb")
            opened.append((path, handle, os.fstat(handle.fileno()).st_size))
    except BaseException:
        for _, done, _ in opened:
            done.close()
        raise
    return opened


def read_copies(opened: Iterable[tuple[Path, IO[bytes], int]], name: str) -> AuditCopy:
    """The rows of the copies ``open_copies`` opened (closed here), up to the noted length.

    Void lines count wherever they are: a failed commit may void its rows only after
    another writer appended. Lines that are not audit rows are skipped and logged.
    """
    copy = AuditCopy(name)
    for path, handle, size in opened:
        skipped = 0
        with handle:
            offset = 0
            for number, raw in enumerate(handle, 1):
                offset += len(raw)
                try:
                    entry = json.loads(raw)
                    if "void" in entry:
                        copy.voided.update((int(i), str(h)) for i, h in entry["void"])
                    elif offset <= size:
                        about = ", ".join(str(entry[k]) for k in ("kind", "operation_id")
                                          if entry.get(k))
                        copy.rows.setdefault(int(entry["id"]), {})[str(entry["hash"])] = (
                            f"{about}, at {entry.get('at')}")
                except (ValueError, KeyError, TypeError):
                    skipped += raw.strip() != b""
                    if skipped == 1:
                        logger.warning("%s line %d is not an audit row; skipped", path, number)
        if skipped > 1:
            logger.warning("%s: %d lines are not audit rows; skipped", path, skipped)
    for row_id, row_hash in copy.voided:
        copy.rows.get(row_id, {}).pop(row_hash, None)
    return copy


# ---------------------------------------------------------------------------------------
# Verifying


@dataclass(frozen=True)
class Lifecycle:
    """The changes opsbot makes to an operation's row; the store holds the one copy of it.

    ``initial``: the state a new operation is in. ``moves``: the states each state may
    move to. ``confirms`` and ``approves``: the moves that record the confirmer (its
    requester, and the row's actor) and the approver (the row's actor, another person).
    ``fixed``: the columns only the operation's first row sets; ``changeable`` the others.
    """

    initial: str
    moves: Mapping[str, Collection[str]]
    confirms: Collection[tuple[str, str]]
    approves: Collection[tuple[str, str]]
    fixed: Collection[str]
    changeable: Collection[str]


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
    """Rows of the database compared with the copy (``OPSBOT_AUDIT_FILE``)."""
    problem: str | None = None
    """The first thing wrong, naming the row (None when the log is intact)."""
    row_id: int | None = None
    """The id of the row the problem is about, when there is one."""
    copy: str | None = None
    """The copy's name in messages (``OPSBOT_AUDIT_FILE``); None when there is none."""
    copies_from: int | None = None
    """The copy's first row (None: the copy has none yet)."""
    uncopied: int = 0
    """Chained rows before the copy's first row (it was set later, or rotated): the chain
    alone vouches for them."""

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
    copy: AuditCopy | None = None,
    lifecycle: Lifecycle | None = None,
) -> AuditVerification:
    """Walk the audit ``rows`` (by id), then compare the replayed operations with the table.

    ``operations`` are the rows of the operations table. ``copy``: the rows of
    ``OPSBOT_AUDIT_FILE``; every row of the database from its first row on must be in it,
    and every row of it in the database. ``lifecycle``: what a row may change (the
    store's); without it the replay is only compared with the table.
    """
    walk = _Walk(copy, lifecycle)
    try:
        for row in rows:
            walk.step(row)
        walk.finish()
        _compare(walk.replayed, walk.first_row, walk.legacy_ops, operations)
    except _Found as found:
        return walk.result(found)
    return walk.result(None)


class _Walk:
    """The state of a walk along the chain, one row at a time."""

    def __init__(self, copy: AuditCopy | None, lifecycle: Lifecycle | None) -> None:
        self.copy = copy
        self.copy_ids = sorted(copy.rows) if copy is not None else []
        self.copy_next = 0  # copy_ids[:copy_next] are behind the walk
        self.copies_from = copy.first if copy is not None else None
        self.compared = 0
        self.uncopied = 0
        self.lifecycle = lifecycle
        self.count = 0
        self.before = 0
        self.expected = GENESIS
        self.last_id: int | None = None
        self.legacy: list[Mapping[str, Any]] = []
        self.legacy_ops: set[str] = set()
        self.recent: OrderedDict[str, int] = OrderedDict()
        self.replayed: dict[str, dict[str, Any]] = {}
        self.first_row: dict[str, int] = {}

    def result(self, found: _Found | None) -> AuditVerification:
        name = self.copy.name if self.copy is not None else None
        if found is not None:
            return AuditVerification(self.count, self.before, None, self.compared,
                                     found.problem, found.row_id, name, self.copies_from,
                                     self.uncopied)
        return AuditVerification(self.count, self.before, self.expected if self.count else None,
                                 self.compared, None, None, name, self.copies_from,
                                 self.uncopied)

    def step(self, row: Mapping[str, Any]) -> None:
        row_id = int(row["id"])
        self._copies_behind(row_id, row["prev_hash"])
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
        forged = self._replay(row_id, row)
        uncopied = self._check_copy(row_id, str(row["hash"]))
        if forged and uncopied:
            raise _Found(row_id, f"{forged} It is not in {uncopied} either.")
        if forged or uncopied:
            raise _Found(row_id, forged or self._not_copied(row_id, str(uncopied)))
        self.count += 1
        self.expected = str(row["hash"])
        self.last_id = row_id
        self.recent[self.expected] = row_id
        if len(self.recent) > _RECENT:
            self.recent.popitem(last=False)

    def finish(self) -> None:
        if self.legacy and not self.count:
            first = int(self.legacy[0]["id"])
            raise _Found(first, f"rows {first}-{self.last_id} have no hash and no "
                                f"'{CHAIN_STARTED}' row seals them: the chain's hashes were "
                                "removed.")
        self._copies_behind(_LAST)

    # -- the copy -----------------------------------------------------------------------

    def _check_copy(self, row_id: int, row_hash: str) -> str | None:
        """None when the row is in the copy (or before it); else the copy's name."""
        copy = self.copy
        if copy is None or self.copies_from is None or row_id < self.copies_from:
            self.uncopied += copy is not None
            return None
        copied = copy.rows.get(row_id, {})
        if copied.pop(row_hash, None) is not None or (row_id, row_hash) in copy.voided:
            # A voided row in the database: its commit failed as far as opsbot could tell,
            # yet it happened. It is the row opsbot copied, hash for hash.
            self.compared += 1
            return None
        if copied:
            raise _Found(row_id, f"row {row_id} differs from its copy in {copy.name}: it was "
                                 "changed and the chain after it re-hashed (or replaced by "
                                 "another row).")
        return copy.name

    def _not_copied(self, row_id: int, name: str) -> str:
        return (f"row {row_id} is in the database but not in {name}, which gets every row "
                "opsbot writes before the row is committed: it was inserted by something "
                "else that can write the database (or by an opsbot process without "
                "OPSBOT_AUDIT_FILE set: every process that shares this database must set it).")

    def _copies_behind(self, row_id: int, prev_hash: str | None = None) -> None:
        """Rows of the copy with an id the walk has passed, that the database lacks.

        ``prev_hash``: what the row at ``row_id`` chains from. A missing row it chains from
        was committed, so deleted; otherwise its transaction may never have committed.
        """
        if self.copy is None:
            return
        while self.copy_next < len(self.copy_ids) and self.copy_ids[self.copy_next] < row_id:
            missing_id = self.copy_ids[self.copy_next]
            self.copy_next += 1
            left = self.copy.rows.get(missing_id)
            if not left:
                continue
            missing = f"row {missing_id} ({next(iter(left.values()))}) is in {self.copy.name} " \
                      "but not in the database"
            if prev_hash in left:
                raise _Found(missing_id, f"{missing}, and row {row_id} chains from it: it was "
                                         "deleted.")
            raise _Found(missing_id, (
                f"{missing}. Either it was deleted from the database, or opsbot stopped "
                "(killed, crashed, the machine lost power) after copying it to the file and "
                "before committing it. If opsbot did not stop then, it was deleted."))

    # -- the seal and the links ---------------------------------------------------------

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

    # -- the replay ---------------------------------------------------------------------

    def _replay(self, row_id: int, row: Mapping[str, Any]) -> str | None:
        """Apply the row's changes to its operation; what is wrong with them, if anything."""
        changes = row.get("changes")
        operation_id = row["operation_id"]
        if not operation_id or not isinstance(changes, Mapping):
            return None
        changes = _plain(dict(changes))
        state = self.replayed.get(operation_id)
        problem = None
        if self.lifecycle is not None:
            if state is None and operation_id not in self.legacy_ops:
                problem = _creation_problem(self.lifecycle, row_id, row, changes)
            else:
                problem = _change_problem(self.lifecycle, row_id, row, state or {}, changes,
                                          self.first_row.get(operation_id))
        self.first_row.setdefault(operation_id, row_id)
        self.replayed.setdefault(operation_id, {}).update(changes)
        return problem


def _creation_problem(life: Lifecycle, row_id: int, row: Mapping[str, Any],
                      changes: Mapping[str, Any]) -> str | None:
    """What is wrong with an operation's first row, which must create it."""
    operation_id, actor = row["operation_id"], row["actor"]
    lacking = sorted(c for c in life.fixed if c not in changes)
    if lacking:
        return (f"row {row_id} is the first row of operation {operation_id} but does not create "
                f"it (it sets no {', '.join(lacking)}): the rows before it were deleted, or it "
                "was forged.")
    if changes.get("id") != operation_id:
        return (f"row {row_id} creates operation {changes.get('id')} but is filed under "
                f"{operation_id}: it was forged.")
    if changes.get("state") != life.initial:
        return (f"row {row_id} creates operation {operation_id} in state {changes.get('state')}; "
                f"opsbot creates operations {life.initial}: it was forged.")
    if actor != changes.get("requester"):
        return (f"row {row_id} creates operation {operation_id} for {changes.get('requester')!r} "
                f"but its actor is {actor!r}; opsbot records the requester as the actor: it was "
                "forged.")
    decided = [c for c in ("confirmed_by", "approved_by") if changes.get(c)]
    if decided:
        return (f"row {row_id} creates operation {operation_id} with its {decided[0]} already "
                f"set ({changes[decided[0]]!r}): it was forged.")
    return None


def _change_problem(life: Lifecycle, row_id: int, row: Mapping[str, Any],
                    state: Mapping[str, Any], changes: Mapping[str, Any],
                    first: int | None) -> str | None:
    """What is wrong with a later row's changes, given the operation as replayed so far.

    An operation from before the chain has no replayed past: only what the row itself
    shows is checked.
    """
    operation_id, actor = row["operation_id"], row["actor"]
    rewritten = sorted(c for c in changes if c in life.fixed)
    if rewritten:
        where = f" (row {first})" if first is not None else ""
        return (f"row {row_id} rewrites operation {operation_id}'s {', '.join(rewritten)}, which "
                f"only its first row{where} sets: it was forged.")
    unknown = sorted(c for c in changes if c not in life.changeable)
    if unknown:
        return (f"row {row_id} changes operation {operation_id}'s {', '.join(unknown)}, which "
                "opsbot never changes: it was forged.")
    before, after = state.get("state"), changes.get("state")
    move = (str(before), str(after)) if "state" in changes and before is not None else None
    if move is not None and move[1] not in life.moves.get(move[0], ()):
        return (f"row {row_id} moves operation {operation_id} from {before} to {after}, which "
                "opsbot never does: it was forged.")
    requester = state.get("requester")
    for column, moves in (("confirmed_by", life.confirms), ("approved_by", life.approves)):
        person = changes.get(column)
        sets = person is not None or changes.get(column.replace("_by", "_at")) is not None
        if "state" not in changes or move is None:
            # No move, or one from a state the chain does not know (before the chain).
            if sets and "state" not in changes:
                return (f"row {row_id} sets operation {operation_id}'s {column} to {person!r} "
                        "without moving its state, which opsbot never does: it was forged.")
            if person is not None and person != actor:
                return (f"row {row_id} records {person!r} in operation {operation_id}'s "
                        f"{column}, but its actor is {actor!r}: it was forged.")
            continue
        if move not in moves:
            if sets:
                return (f"row {row_id} sets operation {operation_id}'s {column} to {person!r} "
                        f"in a move from {before} to {after}, which does not record it: it "
                        "was forged.")
            continue
        if person is None:
            return (f"row {row_id} moves operation {operation_id} from {before} to {after} "
                    f"without saying who did ({column} is not set): it was forged.")
        if person != actor:
            return (f"row {row_id} records {person!r} in operation {operation_id}'s {column}, "
                    f"but its actor is {actor!r}: it was forged.")
        if column == "confirmed_by" and requester is not None and person != requester:
            return (f"row {row_id} records {person!r} as the confirmer of operation "
                    f"{operation_id}, which {requester!r} asked for; only the requester "
                    "confirms: it was forged.")
        if column == "approved_by" and person in (requester, state.get("confirmed_by")):
            return (f"row {row_id} records {person!r} as the approver of operation "
                    f"{operation_id}, which {person!r} asked for or confirmed; an approver is "
                    "a second person: it was forged.")
        awaiting_approval = {a for a, _ in life.approves}
        if column == "confirmed_by" and state.get("approval_roles") and \
                move[1] not in awaiting_approval:
            return (f"row {row_id} moves operation {operation_id} to {after} on its "
                    "requester's confirmation alone, but it needs an approval "
                    f"({', '.join(map(str, state['approval_roles']))}): it was forged.")
    return None


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
