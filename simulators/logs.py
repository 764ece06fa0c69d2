"""Demo log lines for opsbot's log sources: generated from YAML, written as files.

Why: "errors from payments in the last hour" needs logs that look real, that tell the
same story as the Jenkins demo, and that are the same on every run. :func:`generate`
turns ``data/logs.yml`` and a ``now`` into records (regular traffic at a rate per
service, environment and level, plus scripted incidents at relative times); the same
``now`` and ``seed`` always give the same records. :func:`write_files` writes them
the way services do, one file per service: some as plain text lines, some as JSON
lines. The Loki simulator (``simulators/loki/``) serves the very same records, so a
test can ask both log sources the same question and expect the same answer.

Timestamps are whole milliseconds (what both file formats carry) and unique across
all records, so "newest first" is one well-defined order.

    records = generate(datetime.now(UTC))
    write_files(records, Path("/tmp/opsbot-logs"))

    python -m simulators.logs /tmp/opsbot-logs     # writes the demo files, prints a summary
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from simulators._seed import SeedError, check_keys, mapping, parse_span, read_seed

__all__ = [
    "DEFAULT_SEED",
    "FORMATS",
    "LEVELS",
    "LogRecord",
    "SeedError",
    "format_json_line",
    "format_text_line",
    "generate",
    "main",
    "service_formats",
    "written_level",
    "write_files",
]

DEFAULT_SEED = Path(__file__).resolve().parent / "data" / "logs.yml"
LEVELS = ("debug", "info", "warning", "error", "fatal")
"""Canonical levels, least severe first (records always carry one of these)."""
FORMATS = ("text", "json")
"""How a service writes its file: ``text`` -> ``<service>.log``, ``json`` -> ``<service>.jsonl``."""

_PLACEHOLDER = re.compile(r"\$\{(\w+)\}")
_INT_SPEC = re.compile(r"int\s+(-?\d+)\s*\.\.\s*(-?\d+)")
_DECIMAL_SPEC = re.compile(r"decimal\s+(\d+(?:\.\d+)?)\s*\.\.\s*(\d+(?:\.\d+)?)")
_HEX_SPEC = re.compile(r"hex\s+(\d+)")
_WRITTEN = {"warning": "warn"}  # what services print; the readers normalise it back
_SEED_KEYS = ("span", "environments", "values", "services", "incidents")
_SERVICE_KEYS = {"format", "loggers", "rates", "messages"}
_INCIDENT_KEYS = {"service", "environment", "ago", "duration", "lines"}
_LINE_KEYS = {"level", "count", "messages", "logger", "ago", "duration"}


@dataclass(frozen=True)
class LogRecord:
    """One generated log line, before it is written in a service's format."""

    at: datetime  # aware UTC, whole milliseconds
    service: str
    environment: str
    level: str  # one of LEVELS
    message: str
    logger: str
    trace_id: str  # 32 hex digits
    pod: str


def written_level(level: str) -> str:
    """The level as the demo services print it (lower case; ``warning`` is ``warn``)."""
    return _WRITTEN.get(level, level)


def _timestamp(at: datetime) -> str:
    """``2026-11-22T01:02:03.123Z``: RFC 3339 in UTC with milliseconds."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def format_text_line(record: LogRecord) -> str:
    """``2026-11-22T01:02:03.123Z ERROR [prod] payments.api: message`` (no newline)."""
    return (f"{_timestamp(record.at)} {written_level(record.level).upper()} "
            f"[{record.environment}] {record.logger}: {record.message}")


def format_json_line(record: LogRecord) -> str:
    """One JSON object on one line (no newline), the keys a structured logger writes."""
    return json.dumps({
        "ts": _timestamp(record.at),
        "level": written_level(record.level),
        "env": record.environment,
        "service": record.service,
        "logger": record.logger,
        "msg": record.message,
        "trace_id": record.trace_id,
        "pod": record.pod,
    }, ensure_ascii=False)


# ---------------------------------------------------------------------------------------
# The seed


@dataclass(frozen=True)
class _Service:
    name: str
    format: str
    loggers: tuple[str, ...]
    rates: dict[str, float]
    messages: dict[str, tuple[str, ...]]


@dataclass(frozen=True)
class _IncidentLine:
    service: str
    environment: str
    level: str
    count: int
    messages: tuple[str, ...]
    logger: str | None
    ago_ms: int
    duration_ms: int


@dataclass(frozen=True)
class _Seed:
    span_ms: int
    environments: dict[str, tuple[float, bool]]  # name -> (scale, debug lines?)
    values: dict[str, Any]
    services: dict[str, _Service]
    incidents: tuple[_IncidentLine, ...]


def _span_ms(value: object, where: str) -> int:
    """``"40m"``, ``"1d6h"``, ``"3h49m"`` or a number of seconds -> milliseconds."""
    return int(round(parse_span(value, where) * 1000))


def _templates(raw: object, values: dict[str, Any], where: str) -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw or not all(isinstance(t, str) for t in raw):
        raise SeedError(f"{where}: expected a non-empty list of message templates")
    for template in raw:
        for name in _PLACEHOLDER.findall(template):
            if name not in values:
                raise SeedError(f"{where}: ${{{name}}} is not defined under values:")
    return tuple(raw)


def _value_spec(name: str, raw: object, where: str) -> Any:
    """Check one ``values:`` entry and return it in a ready-to-draw form."""
    if isinstance(raw, list) and raw:
        return ("choice", tuple(str(item) for item in raw))
    if isinstance(raw, str):
        text = raw.strip()
        if text == "ip":
            return ("ip",)
        for pattern, kind in ((_INT_SPEC, "int"), (_DECIMAL_SPEC, "decimal"), (_HEX_SPEC, "hex")):
            match = pattern.fullmatch(text)
            if match:
                return (kind, *match.groups())
    raise SeedError(f"{where}.{name}: expected a list, 'int A..B', 'decimal A..B', "
                    f"'hex N' or 'ip', got {raw!r}")


def _load_seed(path: Path) -> _Seed:
    root = read_seed(path, "log seed", _SEED_KEYS)
    where = str(path)
    check_keys(root, _SEED_KEYS, where)
    span_ms = _span_ms(root.get("span", "26h"), f"{where}: span")
    environments: dict[str, tuple[float, bool]] = {}
    for name, spec in mapping(root.get("environments"), f"{where}: environments").items():
        spec = mapping(spec, f"{where}: environments.{name}", required=True)
        check_keys(spec, {"scale", "debug"}, f"{where}: environments.{name}")
        scale = spec.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, int | float) or scale < 0:
            raise SeedError(f"{where}: environments.{name}.scale must be a number >= 0")
        environments[str(name)] = (float(scale), bool(spec.get("debug", False)))
    if not environments:
        raise SeedError(f"{where}: environments: needs at least one environment (e.g. prod)")
    values = {str(name): _value_spec(str(name), spec, f"{where}: values")
              for name, spec in mapping(root.get("values"), f"{where}: values").items()}
    services: dict[str, _Service] = {}
    for name, spec in mapping(root.get("services"), f"{where}: services").items():
        here = f"{where}: services.{name}"
        spec = mapping(spec, here, required=True)
        check_keys(spec, _SERVICE_KEYS, here)
        fmt = spec.get("format", "text")
        if fmt not in FORMATS:
            raise SeedError(f"{here}.format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        loggers = spec.get("loggers") or [f"{name}.app"]
        if not isinstance(loggers, list) or not all(isinstance(x, str) for x in loggers):
            raise SeedError(f"{here}.loggers must be a list of logger names")
        rates: dict[str, float] = {}
        for level, rate in mapping(spec.get("rates"), f"{here}.rates").items():
            if level not in LEVELS:
                raise SeedError(f"{here}.rates: unknown level {level!r}; "
                                f"known: {', '.join(LEVELS)}")
            if isinstance(rate, bool) or not isinstance(rate, int | float) or rate < 0:
                raise SeedError(f"{here}.rates.{level} must be lines per hour (a number >= 0)")
            rates[level] = float(rate)
        messages = {str(level): _templates(templates, values, f"{here}.messages.{level}")
                    for level, templates in mapping(spec.get("messages"),
                                                     f"{here}.messages").items()}
        for level, rate in rates.items():
            if rate > 0 and level not in messages:
                raise SeedError(f"{here}: rates.{level} is above 0 but messages.{level} "
                                "is missing")
        services[str(name)] = _Service(str(name), fmt, tuple(loggers), rates, messages)
    if not services:
        raise SeedError(f"{where}: services: needs at least one service")
    incidents: list[_IncidentLine] = []
    for index, spec in enumerate(root.get("incidents") or []):
        here = f"{where}: incidents[{index}]"
        spec = mapping(spec, here, required=True)
        check_keys(spec, _INCIDENT_KEYS, here)
        service, environment = spec.get("service"), spec.get("environment")
        if service not in services:
            raise SeedError(f"{here}.service must be one of {', '.join(services)}, "
                            f"got {service!r}")
        if environment not in environments:
            raise SeedError(f"{here}.environment must be one of {', '.join(environments)}, "
                            f"got {environment!r}")
        if "ago" not in spec:
            raise SeedError(f"{here}: an incident needs ago: (when it starts, e.g. 40m)")
        ago = _span_ms(spec["ago"], f"{here}.ago")
        duration = _span_ms(spec.get("duration", 0), f"{here}.duration")
        lines = spec.get("lines")
        if not isinstance(lines, list) or not lines:
            raise SeedError(f"{here}.lines: expected a list of {{level, count, messages}}")
        for number, line in enumerate(lines):
            there = f"{here}.lines[{number}]"
            line = mapping(line, there, required=True)
            check_keys(line, _LINE_KEYS, there)
            line_level, count = line.get("level"), line.get("count", 1)
            if line_level not in LEVELS:
                raise SeedError(f"{there}.level must be one of {', '.join(LEVELS)}")
            if isinstance(count, bool) or not isinstance(count, int) or count < 1:
                raise SeedError(f"{there}.count must be a whole number >= 1")
            line_ago = _span_ms(line["ago"], f"{there}.ago") if "ago" in line else ago
            line_duration = (_span_ms(line["duration"], f"{there}.duration")
                             if "duration" in line else (0 if "ago" in line else duration))
            if line_duration > line_ago:
                raise SeedError(f"{there}: duration is longer than ago, so the lines would be "
                                "in the future; shorten duration")
            if line_ago > span_ms:
                raise SeedError(f"{there}: ago is before the start of span ({root.get('span')})")
            logger = line.get("logger")
            incidents.append(_IncidentLine(
                str(service), str(environment), str(line_level), count,
                _templates(line.get("messages"), values, f"{there}.messages"),
                str(logger) if logger else None, line_ago, line_duration))
    return _Seed(span_ms, environments, values, services, tuple(incidents))


# ---------------------------------------------------------------------------------------
# Generation


class _Draw:
    """Fills ``${name}`` placeholders from one seeded random generator."""

    def __init__(self, rng: random.Random, values: dict[str, Any]) -> None:
        self.rng = rng
        self.values = values

    def value(self, name: str) -> str:
        kind, *args = self.values[name]
        rng = self.rng
        if kind == "int":
            return str(rng.randint(int(args[0]), int(args[1])))
        if kind == "decimal":
            return f"{rng.uniform(float(args[0]), float(args[1])):.2f}"
        if kind == "hex":
            return "".join(rng.choice("0123456789abcdef") for _ in range(int(args[0])))
        if kind == "ip":
            return (f"{rng.choice((10, 172, 192))}.{rng.randint(0, 255)}."
                    f"{rng.randint(0, 255)}.{rng.randint(1, 254)}")
        return str(rng.choice(args[0]))

    def fill(self, template: str) -> str:
        return _PLACEHOLDER.sub(lambda match: self.value(match.group(1)), template)


def _pod_name(rng: random.Random, service: str) -> str:
    """A Kubernetes-style pod name: ``payments-7d9c6b5f4-2xkqj``."""
    suffix = "".join(rng.choice("bcdfghjklmnpqrstvwxz2456789") for _ in range(5))
    return f"{service}-{rng.getrandbits(36):09x}-{suffix}"


def _count(rng: random.Random, expected: float) -> int:
    """``expected`` rounded up or down at random, so fractional rates still add up."""
    whole = int(expected)
    return whole + (1 if rng.random() < expected - whole else 0)


def generate(now: datetime, seed_path: str | Path | None = None, seed: int = 42) -> list[LogRecord]:
    """The demo's log records, oldest first, for a clock reading ``now`` (aware, or UTC).

    The same ``now``, seed file and ``seed`` always give the same records; every record
    is strictly before ``now`` (truncated to the millisecond) and no two share a timestamp.
    """
    if now.tzinfo is None:
        now = now.replace(tzinfo=UTC)
    base = now.astimezone(UTC)
    base = base.replace(microsecond=base.microsecond // 1000 * 1000)
    spec = _load_seed(Path(seed_path) if seed_path is not None else DEFAULT_SEED)
    rng = random.Random(seed)
    draw = _Draw(rng, spec.values)
    pods = {(service, env): tuple(_pod_name(rng, service) for _ in range(3 if env == "prod" else 1))
            for service in spec.services for env in spec.environments}
    # (milliseconds before base, service, env, level, message, logger)
    drafts: list[tuple[int, str, str, str, str, str]] = []
    hours = spec.span_ms / 3_600_000
    for service in spec.services.values():
        for env, (scale, debug) in spec.environments.items():
            for level in LEVELS:
                if level == "debug" and not debug:
                    continue
                rate = service.rates.get(level, 0.0)
                for _ in range(_count(rng, rate * scale * hours)):
                    ago = rng.randint(1, spec.span_ms)
                    message = draw.fill(rng.choice(service.messages[level]))
                    drafts.append((ago, service.name, env, level, message,
                                   rng.choice(service.loggers)))
    for line in spec.incidents:
        service = spec.services[line.service]
        for _ in range(line.count):
            ago = max(1, line.ago_ms - (rng.randint(0, line.duration_ms)
                                        if line.duration_ms else 0))
            message = draw.fill(rng.choice(line.messages))
            drafts.append((ago, line.service, line.environment, line.level, message,
                           line.logger or rng.choice(service.loggers)))
    # Unique timestamps: walk from the newest and push any clash one millisecond older.
    drafts.sort(key=lambda draft: (draft[0], draft[1], draft[2], draft[3], draft[4]))
    records: list[LogRecord] = []
    previous = 0
    for ago, service_name, env, level, message, logger in drafts:
        ago = max(ago, previous + 1)
        previous = ago
        records.append(LogRecord(
            at=base - timedelta(milliseconds=ago), service=service_name, environment=env,
            level=level, message=message, logger=logger,
            trace_id=f"{rng.getrandbits(128):032x}", pod=rng.choice(pods[service_name, env])))
    records.reverse()
    return records


def service_formats(seed_path: str | Path | None = None) -> dict[str, str]:
    """Each service's file format (``text`` or ``json``) according to the seed."""
    spec = _load_seed(Path(seed_path) if seed_path is not None else DEFAULT_SEED)
    return {name: service.format for name, service in spec.services.items()}


def write_files(records: Sequence[LogRecord], directory: str | Path,
                seed_path: str | Path | None = None) -> list[Path]:
    """Write ``records`` as one file per service, in time order; returns the paths.

    Services the seed marks ``format: json`` get ``<service>.jsonl`` (one JSON object
    per line), the others ``<service>.log`` (plain text lines). Existing files of those
    names are replaced.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    formats = service_formats(seed_path)
    by_service: dict[str, list[LogRecord]] = {}
    for record in sorted(records, key=lambda r: r.at):
        by_service.setdefault(record.service, []).append(record)
    paths: list[Path] = []
    for service, items in sorted(by_service.items()):
        json_lines = formats.get(service, "text") == "json"
        path = directory / f"{service}{'.jsonl' if json_lines else '.log'}"
        render = format_json_line if json_lines else format_text_line
        with path.open("w", encoding="utf-8", newline="\n") as handle:
            for record in items:
                handle.write(render(record))
                handle.write("\n")
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------
# python -m simulators.logs DIR


def main(argv: Sequence[str] | None = None) -> int:
    """Write the demo log files into a directory and print what was written."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.logs",
        description="Write opsbot's demo log files (one per service) into DIRECTORY.",
    )
    parser.add_argument("directory", type=Path, help="where to write the files")
    parser.add_argument("--seed-file", type=Path, default=DEFAULT_SEED,
                        help="services, rates and incidents (YAML)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    args = parser.parse_args(argv)
    try:
        records = generate(datetime.now(UTC), args.seed_file, args.seed)
        paths = write_files(records, args.directory, args.seed_file)
    except SeedError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write to {args.directory}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    levels = Counter(record.level for record in records)
    print(f"{len(records)} lines in {len(paths)} files under {args.directory}: "
          + ", ".join(f"{levels[level]} {level}" for level in LEVELS), flush=True)
    for path in paths:
        print(f"  {path.name}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
