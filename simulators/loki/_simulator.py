"""``LokiSimulator``, the Loki simulator's public face, and ``python -m simulators.loki``.

Why apart: what tests and the demo call; the rest of the package is private.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

from simulators._base import SimulatorBase, add_address_arguments, run_main
from simulators.logs import DEFAULT_SEED, LogRecord, SeedError, generate, write_files, written_level
from simulators.loki._app import _App
from simulators.loki._store import (
    _DEFAULT_LABELS,
    DEFAULT_MAX_ENTRIES,
    LOKI_VERSION,
    RecordedRequest,
    _ns,
    _Store,
)


class LokiSimulator(SimulatorBase[RecordedRequest]):
    """A Loki HTTP server in a thread, holding the demo's log records as streams.

    ``records`` defaults to :func:`simulators.logs.generate` at ``now`` (default: the
    current time) from ``seed_path`` and ``seed``. ``port=0`` picks a free port; read
    ``url`` after ``start()``. ``clock`` (epoch seconds) is what "now" means for requests
    without ``end`` or ``time``.
    """

    def __init__(
        self,
        records: Iterable[LogRecord] | None = None,
        *,
        now: datetime | None = None,
        seed_path: str | Path | None = None,
        seed: int = 42,
        tenant: str | None = None,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        labels: Mapping[str, str] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if max_entries < 1:
            raise ValueError(f"max_entries must be at least 1, got {max_entries}")
        if records is None:
            records = generate(now or datetime.fromtimestamp(clock(), UTC), seed_path, seed)
        self.tenant = tenant
        self.max_entries = max_entries
        self.labels = {**_DEFAULT_LABELS, **(labels or {})}
        if set(self.labels) != set(_DEFAULT_LABELS):
            raise ValueError("labels= maps service, env and level to label names, got "
                             f"{sorted(self.labels)}")
        self._store = _Store()
        self._count = 0
        names = self.labels
        for record in records:
            self.add_line({names["service"]: record.service, names["env"]: record.environment,
                           names["level"]: written_level(record.level)}, record.at,
                          record.message)
        super().__init__(_App(self._store, tenant, max_entries, clock),
                         faults=self._store.faults, requests=self._store.log,
                         host=host, port=port, name="loki-simulator", server_name="Loki")

    def __repr__(self) -> str:
        return f"LokiSimulator({self._location()}, {self._count} lines)"

    # -- lifecycle (port, start, stop, with: SimulatorBase) ------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (no trailing slash, as Loki URLs are written)."""
        return self._server.url.rstrip("/")

    def describe(self) -> str:
        """One line for the demo banner."""
        tenant = f", tenant {self.tenant}" if self.tenant else ""
        return f"Loki {LOKI_VERSION} at {self.url} ({self._count} log lines{tenant})"

    def env(self) -> dict[str, str]:
        """LOKI_URL (and LOKI_TENANT when multi-tenant) for opsbot's action server."""
        variables = {"LOKI_URL": self.url}
        if self.tenant:
            variables["LOKI_TENANT"] = self.tenant
        for key, name in self.labels.items():
            if name != _DEFAULT_LABELS[key]:
                variables[f"LOKI_{key.upper()}_LABEL"] = name
        return variables

    # -- data and inspection (and request_log: SimulatorBase) ----------------------

    def add_line(self, labels: Mapping[str, str], at: datetime, line: str) -> None:
        """Store one more line in the stream with ``labels`` (e.g. a JSON line, for tests)."""
        with self._store.lock:
            self._store.add(labels, _ns(at), line)
            self._count += 1


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.loki",
        description="A local Loki for opsbot, serving the demo logs over Loki's HTTP API.",
    )
    add_address_arguments(parser, 3100)
    parser.add_argument("--seed-file", type=Path, default=DEFAULT_SEED,
                        help="services, rates and incidents (YAML)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--tenant", default=None,
                        help="require this X-Scope-OrgID (default: single-tenant)")
    parser.add_argument("--write-files", type=Path, default=None, metavar="DIR",
                        help="also write the same lines as log files into DIR")
    args = parser.parse_args(argv)

    def make() -> LokiSimulator:
        records = generate(datetime.now(UTC), args.seed_file, args.seed)
        if args.write_files is not None:
            write_files(records, args.write_files, args.seed_file)
        return LokiSimulator(records, tenant=args.tenant, host=args.host, port=args.port)

    def banner(simulator: LokiSimulator) -> list[str]:
        lines = [f"Loki simulator: {simulator.describe()}"]
        lines += [f"  {name}={value}" for name, value in simulator.env().items()]
        if args.write_files is not None:
            lines.append(f"  the same lines as files: OPSBOT_LOG_DIR={args.write_files}")
        return lines

    return run_main(make, banner, seed_error=SeedError,
                    cannot=f"listen on {args.host}:{args.port} or write the files")
