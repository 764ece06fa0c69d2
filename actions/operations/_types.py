"""The parameter types of team-defined operations: what each accepts and how it is asked for.

Every value is checked before the preview, and kept as the exact string that was shown
and confirmed. ``service`` and ``job`` are resolved against Jenkins' catalogue by the
flow (``actions.operations.flow``); the rest is checked here, without any backend.
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from actions.catalog import ENVIRONMENTS
from actions.guard.policy import parse_duration
from actions.values import normalise_value

__all__ = ["TYPES", "TYPE_KEYS", "Parameter", "format_duration"]

# type -> the keys a parameter of that type may have besides the common ones
TYPE_KEYS: dict[str, frozenset[str]] = {
    "service": frozenset(),
    "environment": frozenset(),
    "version": frozenset(),
    "job": frozenset(),
    "issue_key": frozenset(),
    "integer": frozenset({"min", "max"}),
    "choice": frozenset({"choices"}),
    "text": frozenset({"max_length", "pattern"}),
    "duration": frozenset({"min", "max"}),
}
TYPES = tuple(TYPE_KEYS)
COMMON_KEYS = frozenset({"type", "required", "default", "description", "prompt"})

_VERSION = re.compile(r"^v?\d+(?:\.\d+){0,3}(?:[-+][0-9A-Za-z.-]+)?$")
_ISSUE_KEY = re.compile(r"^[A-Z][A-Z0-9_]+-\d+$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
_INTEGER = re.compile(r"^[+-]?\d{1,15}$")
DEFAULT_MAX_LENGTH = 200


def format_duration(seconds: float) -> str:
    """``90`` -> ``90s``, ``300`` -> ``5m``, ``7200`` -> ``2h``."""
    whole = int(seconds)
    if whole != seconds:
        return f"{seconds:g}s"
    if whole % 3600 == 0:
        return f"{whole // 3600}h"
    if whole % 60 == 0:
        return f"{whole // 60}m"
    return f"{whole}s"


@dataclass(frozen=True)
class Parameter:
    """One declared parameter (``parameters.<name>`` of an operation file)."""

    name: str
    type: str
    required: bool = True
    default: str | None = None
    description: str = ""
    prompt: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    max_length: int = DEFAULT_MAX_LENGTH
    pattern: re.Pattern[str] | None = field(default=None, compare=False)
    line: int = 1

    @property
    def label(self) -> str:
        """How the parameter is named to people: its description, else its name."""
        return self.description or self.name.replace("_", " ")

    def fixed_choices(self) -> tuple[str, ...]:
        """The values to offer as buttons when the type has a fixed set."""
        if self.type == "environment":
            return ENVIRONMENTS
        if self.type == "choice":
            return self.choices
        return ()

    def question(self) -> str:
        """What opsbot asks when the value is missing."""
        if self.prompt:
            return self.prompt
        if self.type in ("service", "environment", "job"):
            return f"Which {self.label}?"
        return f"What {self.label}? ({self.allowed()})"

    def allowed(self) -> str:
        """What the type accepts, in words, for questions and refusals."""
        t = self.type
        if t == "environment":
            return "one of " + ", ".join(ENVIRONMENTS)
        if t == "choice":
            return "one of " + ", ".join(self.choices)
        if t == "integer":
            return _range("a whole number", self.minimum, self.maximum, str)
        if t == "duration":
            return _range("a duration like 30s, 5m or 1h", self.minimum, self.maximum,
                          format_duration)
        if t == "version":
            return "a version like 2.4.1"
        if t == "issue_key":
            return "an issue key like OPS-123"
        if t == "text":
            words = f"text of at most {self.max_length} characters"
            return words + (f" matching {self.pattern.pattern}" if self.pattern else "")
        return f"a {t} name"

    def normalise(self, raw: Any) -> tuple[str | None, str | None]:
        """``(value, None)`` for an acceptable value, ``(None, problem)`` otherwise.

        ``service`` and ``job`` are only checked for shape here; the flow resolves them.
        """
        text = str(raw).strip() if not isinstance(raw, str) else raw.strip()
        if "\x00" in text:
            return None, "it contains a NUL character"
        if any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in text):
            # One line, shown as it runs: a line break would let a value forge a preview's
            # lines, a direction mark (U+202E) show its words in another order.
            return None, "it contains a line break or another control character"
        if not text:
            return None, "it is empty"
        t = self.type
        if t == "environment":
            value = str(normalise_value("environment", text))
            return (value, None) if value in ENVIRONMENTS else (None, self._not(text))
        if t == "choice":
            for choice in self.choices:
                if choice.lower() == text.lower():
                    return choice, None
            return None, self._not(text)
        if t == "integer":
            # "PR #77", "build #512": a leading '#' is how people write a number of a thing.
            digits = text[1:] if text.startswith("#") and text[1:].isdecimal() else text
            if not _INTEGER.match(digits):
                return None, self._not(text)
            number = int(digits)
            if (self.minimum is not None and number < self.minimum) or (
                    self.maximum is not None and number > self.maximum):
                return None, self._not(text)
            return str(number), None
        if t == "duration":
            try:
                seconds = parse_duration(text)
            except ValueError:
                return None, self._not(text)
            if (self.minimum is not None and seconds < self.minimum) or (
                    self.maximum is not None and seconds > self.maximum):
                return None, self._not(text)
            return format_duration(seconds), None
        if t == "version":
            return (text, None) if _VERSION.match(text) else (None, self._not(text))
        if t == "issue_key":
            key = text.upper()
            return (key, None) if _ISSUE_KEY.match(key) else (None, self._not(text))
        if t == "text":
            if len(text) > self.max_length:
                return None, (f"it is {len(text)} characters long; {self.name} takes at most "
                              f"{self.max_length}")
            if self.pattern is not None and not self.pattern.fullmatch(text):
                return None, self._not(text)
            return text, None
        # service, job: a plausible name; the catalogue decides
        return (text, None) if _NAME.match(text) else (None, self._not(text))

    def _not(self, text: str) -> str:
        shown = text if len(text) <= 60 else text[:57] + "..."
        return f"\"{shown}\" is not {self.allowed()}"


def _range(what: str, low: float | None, high: float | None, show: Any) -> str:
    if low is not None and high is not None:
        return f"{what} from {show(_plain(low))} to {show(_plain(high))}"
    if low is not None:
        return f"{what} of at least {show(_plain(low))}"
    if high is not None:
        return f"{what} of at most {show(_plain(high))}"
    return what


def _plain(number: float) -> Any:
    return int(number) if math.isfinite(number) and number == int(number) else number
