"""Secrets never reach a log: every configured secret prints as ``**********``.

:func:`install` is called once in every opsbot process: the CLI (``opsbot.cli.main``),
the warm trainer (``opsbot._trainer``), the action server (``actions/__init__.py``) and
the Rasa server (``connectors/__init__.py``: Rasa imports opsbot's channels from
credentials.yml, inside ``rasa run``, before any of them reads a token). It imports
nothing heavy, so both sides can use it.

What is a secret: the value of every variable named in :data:`SECRET_VARIABLES` or
ending in one of :data:`SECRET_SUFFIXES`, the password of every URL in the environment
(``OPSBOT_DB_URL=postgresql://u:pw@db/x``), ``user:token`` pairs as HTTP Basic
credentials, and whatever :func:`add_secret` is given (a connector's token read from
credentials.yml). A value is masked raw, percent-encoded (``%3A`` or ``%3a``, ``+``
for spaces), JSON- and repr-escaped, wherever it appears: the message, its arguments,
``extra`` fields, the exception text and stack. Values shorter than
:data:`MIN_LENGTH` are left alone: masking ``yes`` or ``8080`` would only hide noise.
The environment is read again at most once a second, so a token set after start-up
(a generated one) is masked too.

Why a log record factory, and not only a filter: a filter on a handler sees only the
records of that handler, and Rasa, sanic (``dictConfig``), coloredlogs and
``logging.basicConfig`` add root and library handlers after opsbot started, some on
loggers that do not propagate (``sanic.access``). The record factory
(:func:`logging.setLogRecordFactory`) runs when any logger makes a record, before any
filter or handler sees it, so every handler, present or future, gets the masked
record; no handler class is patched. ``Logger.makeRecord`` adds the ``extra=`` fields
after the factory returned (sanic's access log puts the URL, ``?token=`` included, in
one), so it is wrapped to mask those. :class:`SecretFilter` (the same masking) also
sits on the handlers that exist when :func:`install` runs, root's first, for records
that do not come from the factory (``logging.makeLogRecord``, a library that replaces
the factory). Uncaught exceptions, which Python prints to stderr (the server's log
file) without logging, go through masking ``sys.excepthook`` and ``threading.excepthook``.

httpx logs every request URL at INFO (``HTTP Request: POST .../bot<TOKEN>/getUpdates``,
from python-telegram-bot) and urllib3 at DEBUG: besides the masking, both loggers are
set to WARNING.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import sys
import threading
import time
import traceback
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

__all__ = [
    "MASK",
    "MIN_LENGTH",
    "QUIET_LOGGERS",
    "SECRET_SUFFIXES",
    "SECRET_VARIABLES",
    "SecretFilter",
    "add_secret",
    "install",
    "is_secret_name",
    "mask",
    "redact",
    "scrub",
    "secrets_from_env",
]

MASK = "**********"
MIN_LENGTH = 6
# Named here because their names do not end in a secret suffix, or to document them.
SECRET_VARIABLES = frozenset({
    "TELEGRAM_TOKEN", "TELEGRAM_WEBHOOK_SECRET", "TEAMS_APP_PASSWORD", "GITHUB_WEBHOOK_SECRET",
    "JENKINS_TOKEN", "JENKINS_PASSWORD", "JIRA_TOKEN", "JIRA_PASSWORD",
    "OPSBOT_REST_TOKEN", "OPSBOT_API_TOKEN", "OPSBOT_ACTIONS_SECRET", "OPSBOT_EVENTS_TOKEN",
    "OPSBOT_RASA_TOKEN",
})
SECRET_SUFFIXES = ("_TOKEN", "_SECRET", "_PASSWORD", "_KEY")
# Loggers whose INFO/DEBUG lines are request URLs (a bot token is part of the path).
QUIET_LOGGERS = {"httpx": logging.WARNING, "urllib3": logging.WARNING}
_RESCAN_SECONDS = 1.0
_PERCENT = re.compile(r"(%[0-9A-Fa-f]{2})")
# A LogRecord's own attributes; anything else on a record came from ``extra=``.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def is_secret_name(variable: str) -> bool:
    """True if ``variable`` names a secret (its value is masked in logs)."""
    name = variable.upper()
    return name in SECRET_VARIABLES or name.endswith(SECRET_SUFFIXES)


def _url_passwords(value: str) -> set[str]:
    """The password of the URL ``value``, as written and decoded; none if it has none."""
    if "://" not in value or "@" not in value:
        return set()
    try:
        password = urllib.parse.urlsplit(value.strip()).password
    except ValueError:
        return set()
    return {password, urllib.parse.unquote(password)} if password else set()


def secrets_from_env(env: Mapping[str, str]) -> set[str]:
    """The secret values in ``env``: secret-named variables, URL passwords, Basic pairs."""
    found: set[str] = set()
    for name, value in env.items():
        if is_secret_name(name) and value.strip():
            found.add(value.strip())
        found.update(_url_passwords(value))
    for name, user in env.items():  # JENKINS_USER + JENKINS_TOKEN: an HTTP Basic header
        if not name.endswith("_USER") or not user.strip():
            continue
        prefix = name[: -len("_USER")]
        for suffix in ("_TOKEN", "_PASSWORD"):
            secret = (env.get(prefix + suffix) or "").strip()
            if secret:
                pair = f"{user.strip()}:{secret}".encode()
                found.add(base64.b64encode(pair).decode())
    return found


def _forms(secret: str) -> set[str]:
    """How ``secret`` can appear in text: raw, URL-encoded, JSON- and repr-escaped."""
    return {
        secret,
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote(secret),
        urllib.parse.quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
    }


def _regex(form: str) -> str:
    """``form`` as a regex; its percent escapes match in either case (``%3A`` or ``%3a``)."""
    return "".join(f"%(?i:{part[1:]})" if index % 2 else re.escape(part)
                   for index, part in enumerate(_PERCENT.split(form)))


class _Secrets:
    """The values to mask and one compiled pattern for them; the environment is re-read
    at most once a second (or when a variable is added or removed)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._added: set[str] = set()
        self._from_env: set[str] = set()
        self._env_size = -1
        self._next_scan = 0.0
        self._pattern: re.Pattern[str] | None = None

    def add(self, values: Iterable[str]) -> None:
        with self._lock:
            self._added.update(v for v in values if len(v) >= MIN_LENGTH)
            self._compile()

    def pattern(self) -> re.Pattern[str] | None:
        if time.monotonic() >= self._next_scan or len(os.environ) != self._env_size:
            self._scan()
        return self._pattern

    def _scan(self) -> None:
        try:
            env = dict(os.environ)
        except RuntimeError:  # changed while we copied it: keep what we have, try again
            return
        found = {v for v in secrets_from_env(env) if len(v) >= MIN_LENGTH}
        with self._lock:
            self._env_size = len(env)
            self._next_scan = time.monotonic() + _RESCAN_SECONDS
            if found != self._from_env:
                self._from_env = found
                self._compile()

    def _compile(self) -> None:
        forms = {form for secret in self._added | self._from_env for form in _forms(secret)}
        forms = {form for form in forms if len(form) >= MIN_LENGTH}
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(forms, key=lambda form: (-len(form), form))
        self._pattern = re.compile("|".join(map(_regex, ordered))) if ordered else None


_SECRETS = _Secrets()
_FORMATTER = logging.Formatter()


def add_secret(*values: str | None) -> None:
    """Mask these values too (e.g. a connector's token that credentials.yml holds)."""
    _SECRETS.add(str(v).strip() for v in values if v)


def mask(text: str) -> str:
    """``text`` with every secret replaced by ``**********``."""
    pattern = _SECRETS.pattern()
    return pattern.sub(MASK, text) if pattern is not None and text else text


# What a pasted credential of another system looks like: opsbot does not know its value,
# so :func:`mask` cannot find it. The credential is masked; a key's name is kept.
_TOKEN_SHAPES = re.compile(
    r"\b(?:gh[opsur]_[A-Za-z0-9]{20,}|github_pat_\w{20,}|glpat-[\w-]{20,}"
    r"|xox[abposr]-[\w-]{10,}|AKIA[0-9A-Z]{16}|sk-[\w-]{20,}"
    r"|eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,}"  # a JWT
    r"|[0-9a-fA-F]{32,}"  # a hex token (Jenkins API tokens are 34)
    r"|(?=[\w+/=-]*[a-z])(?=[\w+/=-]*[A-Z])(?=[\w+/=-]*\d)[\w+/=-]{32,})")
_KEYED = re.compile(r"(?i)\b((?:bearer|basic)\s+|(?:password|passwd|pwd|token|secret|"
                    r"api[_-]?key)\s*[:=]\s*)\S{4,}")


def redact(text: str) -> str:
    """``text`` someone typed, fit to keep: :func:`mask`, and also anything shaped like a
    credential (a GitHub, GitLab, Slack, AWS or OpenAI token, a JWT, a long hex or
    mixed-case string, the value after ``token=`` or ``Bearer``). For a chat message that
    is stored, where a pasted token of any system must not be kept."""
    text = _TOKEN_SHAPES.sub(MASK, mask(text))
    return _KEYED.sub(lambda m: m.group(1) + MASK, text)


def _masked_value(value: Any) -> Any:
    """A str masked; any other value as it is, or its masked repr if that shows a secret."""
    if isinstance(value, str):
        return mask(value)
    text = repr(value)
    masked = mask(text)
    return value if masked == text else masked


def _masked_args(args: Any) -> Any:
    if isinstance(args, Mapping):
        return {key: _masked_value(value) for key, value in args.items()}
    if isinstance(args, tuple):
        return tuple(_masked_value(value) for value in args)
    return _masked_value(args)


def scrub(record: logging.LogRecord) -> None:
    """Mask the secrets in ``record``, in place; a record without any is left as it is."""
    pattern = _SECRETS.pattern()
    if pattern is None:
        return
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format: logging reports it, without the secret
        record.msg, record.args = mask(str(record.msg)), _masked_args(record.args)
    else:
        masked = pattern.sub(MASK, message)
        if masked != message:
            record.msg, record.args = masked, ()
    if record.exc_info and record.exc_info[0] is not None:
        text = record.exc_text or _FORMATTER.formatException(record.exc_info)
        masked = pattern.sub(MASK, text)
        if masked != text:  # formatters print exc_text; no handler may format the original
            record.exc_text, record.exc_info = masked, None
    elif record.exc_text:
        record.exc_text = pattern.sub(MASK, record.exc_text)
    if record.stack_info:
        record.stack_info = pattern.sub(MASK, record.stack_info)
    _scrub_fields(record, [name for name in vars(record) if name not in _RECORD_FIELDS])


def _scrub_fields(record: logging.LogRecord, names: Iterable[str]) -> None:
    """Mask the ``extra=`` fields ``names`` of ``record`` (sanic's access log: the URL)."""
    fields = vars(record)
    for name in names:
        value = fields.get(name)
        if value is not None and not isinstance(value, (int, float, bool)):
            fields[name] = _masked_value(value)


class SecretFilter(logging.Filter):
    """Masks the secrets in every record that passes (it never drops one)."""

    def filter(self, record: logging.LogRecord) -> bool:
        scrub(record)
        return True


_FILTER = SecretFilter()
_MakeRecord = Callable[..., logging.LogRecord]  # a log record factory, or Logger.makeRecord


def _masking_factory(previous: _MakeRecord) -> _MakeRecord:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        scrub(record)
        return record

    factory.opsbot_masks = True  # type: ignore[attr-defined]  # install() is idempotent
    return factory


def _masking_make_record(original: _MakeRecord) -> _MakeRecord:
    """``Logger.makeRecord`` that also masks the ``extra=`` fields, which it adds to the
    record after the factory made it."""

    def makeRecord(self: logging.Logger, name: str, level: int, fn: str, lno: int, msg: object,
                   args: Any, exc_info: Any, func: str | None = None,
                   extra: Mapping[str, object] | None = None,
                   sinfo: str | None = None) -> logging.LogRecord:
        record = original(self, name, level, fn, lno, msg, args, exc_info, func, extra, sinfo)
        if extra and _SECRETS.pattern() is not None:
            _scrub_fields(record, extra)
        return record

    makeRecord.opsbot_masks = True  # type: ignore[attr-defined]  # install() is idempotent
    return makeRecord


def _print_masked(kind: type[BaseException], value: BaseException,
                  tb: TracebackType | None, header: str = "") -> None:
    text = header + "".join(traceback.format_exception(kind, value, tb))
    stream = sys.stderr
    if stream is not None:
        stream.write(mask(text))
        stream.flush()


def _excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
    _print_masked(kind, value, tb)


def _thread_excepthook(args: threading.ExceptHookArgs) -> None:
    if args.exc_type is SystemExit or args.exc_value is None:
        return
    name = args.thread.name if args.thread is not None else threading.get_ident()
    _print_masked(args.exc_type, args.exc_value, args.exc_traceback,
                  f"Exception in thread {name}:\n")


def install() -> None:
    """Mask secrets in every log record of this process, quiet httpx and urllib3 (idempotent)."""
    if not getattr(logging.getLogRecordFactory(), "opsbot_masks", False):
        logging.setLogRecordFactory(_masking_factory(logging.getLogRecordFactory()))
    if not getattr(logging.Logger.makeRecord, "opsbot_masks", False):
        logging.Logger.makeRecord = _masking_make_record(  # type: ignore[method-assign]  # extras
            logging.Logger.makeRecord)
    loggers = [logging.getLogger()] + [
        logger for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger)]
    for logger in loggers:
        for handler in list(logger.handlers):
            if _FILTER not in handler.filters:
                handler.addFilter(_FILTER)
    if logging.lastResort is not None and _FILTER not in logging.lastResort.filters:
        logging.lastResort.addFilter(_FILTER)
    for name, level in QUIET_LOGGERS.items():
        library = logging.getLogger(name)
        if library.level < level:
            library.setLevel(level)
    if sys.excepthook is sys.__excepthook__:
        sys.excepthook = _excepthook
    if threading.excepthook is threading.__excepthook__:
        threading.excepthook = _thread_excepthook
