"""opsbot's log sources: one interface over local log files and Grafana Loki.

"errors from payments in the last hour" becomes a :class:`LogQuery` (service,
environment, level, free text, a time window) that any :class:`LogSource` answers
with the same :class:`LogResult`: the newest matching lines, and how many lines of
each level matched in all. Two sources exist:

* :class:`FileLogSource` reads a directory of log files, one per service
  (``payments.log``, ``checkout.jsonl``, rotated ``payments.log.1``), in two formats:
  text lines (``2026-11-22T01:02:03.123Z ERROR [prod] payments.api: message``) and
  JSON lines (``{"ts": ..., "level": ..., "env": ..., "msg": ...}``). Big files are
  not read whole: a binary search finds where the window starts.
* :class:`LokiLogSource` asks Loki's HTTP API: one metric query for the counts, then
  the newest lines page by page. Every value from a person (service, environment,
  text) goes into the LogQL as an escaped string literal, so it can never change the
  query's structure.

Semantics both sources share (tests hold them to it):

* the window is ``start <= at < end`` (Loki's own rule);
* ``level="error"`` means error and fatal, ``"warning"`` means warning, error and
  fatal (what someone asking for warnings wants to see); ``info``, ``debug`` and
  ``fatal`` are exact. Levels are normalised (``warn`` -> ``warning``, ``err`` ->
  ``error``, ``critical`` -> ``fatal``, ...);
* ``text`` matches case-insensitively, anywhere in the message;
* lines come newest first (ties broken by service, environment, level, message).

:func:`log_source_from_env` picks the source at start-up; :func:`parse_time_range`
turns the NLU's ``time_range`` text ("since 9am", "between 9 and 10 this morning")
into the window. Errors are :mod:`actions.errors`, with messages fit for the chat.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal, TypedDict

from actions.backends._common import timeout_from_env
from actions.backends._protocol import BackendKind
from actions.backends.logs._files import FileLogSource
from actions.backends.logs._loki import LokiLogSource, logql_string, loki_url_problem, re2_quote
from actions.backends.logs._model import (
    LEVELS,
    LogLine,
    LogQuery,
    LogResult,
    LogSource,
    levels_for,
    normalise_level,
)
from actions.backends.logs._time_range import parse_time_range
from actions.errors import ConfigError

__all__ = [
    "LEVELS",
    "LOGS",
    "FileLogSource",
    "LogLine",
    "LogQuery",
    "LogResult",
    "LogSource",
    "LokiLogSource",
    "levels_for",
    "log_source_from_env",
    "logql_string",
    "normalise_level",
    "parse_time_range",
    "re2_quote",
]





class _LokiLabels(TypedDict, total=False):
    """The label names LokiLogSource takes; a missing one keeps its default."""

    service_label: str
    env_label: str
    level_label: str


_LokiLabel = Literal["service_label", "env_label", "level_label"]
_LOKI_LABEL_VARIABLES: tuple[tuple[_LokiLabel, str], ...] = (
    ("service_label", "LOKI_SERVICE_LABEL"),
    ("env_label", "LOKI_ENV_LABEL"),
    ("level_label", "LOKI_LEVEL_LABEL"),
)


def log_source_from_env(env: Mapping[str, str] | None = None,
                        default_directory: Path | None = None) -> LogSource | None:
    """The log source configured in ``env`` (default: ``os.environ``).

    LOKI_URL (with LOKI_TENANT and LOGS_TIMEOUT) wins; else OPSBOT_LOG_DIR; else
    ``default_directory`` if given; else None (no log source). ConfigError, naming the
    variable, for a malformed URL or timeout, or a directory that does not exist.
    """
    env = os.environ if env is None else env
    timeout = timeout_from_env(env, "LOGS_TIMEOUT")
    url = (env.get("LOKI_URL") or "").strip()
    if url:
        problem = loki_url_problem(url)
        if problem:
            raise ConfigError(f"LOKI_URL {problem}")
        labels: _LokiLabels = {}
        for key, variable in _LOKI_LABEL_VARIABLES:
            name = (env.get(variable) or "").strip()
            if name:
                if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
                    raise ConfigError(f"{variable}={name!r} is not a Loki label name (letters, "
                                      "digits and _, not starting with a digit).")
                labels[key] = name
        return LokiLogSource(url, timeout, (env.get("LOKI_TENANT") or "").strip() or None,
                             **labels)
    directory_text = (env.get("OPSBOT_LOG_DIR") or "").strip()
    if directory_text:
        directory = Path(directory_text).expanduser()
        if not directory.is_dir():
            what = "is not a directory" if directory.exists() else "does not exist"
            raise ConfigError(f"OPSBOT_LOG_DIR points to {directory}, which {what}; point it "
                              "at the directory holding the services' log files (or set "
                              "LOKI_URL to use Loki).")
        return FileLogSource(directory, timeout)
    if default_directory is not None:
        directory = Path(default_directory).expanduser()
        if not directory.is_dir():
            raise ConfigError(f"The default log directory {directory} does not exist; set "
                              "OPSBOT_LOG_DIR to the directory holding the services' log "
                              "files, or LOKI_URL to use Loki.")
        return FileLogSource(directory, timeout)
    return None


LOGS: BackendKind[LogSource] = BackendKind(
    "logs", "log source", ("LOKI_URL", "LOKI_TENANT", "LOGS_TIMEOUT", "OPSBOT_LOG_DIR",
                           *(variable for _, variable in _LOKI_LABEL_VARIABLES)),
    log_source_from_env, setup="set LOKI_URL or OPSBOT_LOG_DIR")
"""The log source's declaration (``actions.backends._protocol``)."""

