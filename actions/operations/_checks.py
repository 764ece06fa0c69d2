"""The problems of one operation file, and the checks its sections share.

Every problem is an ``OperationFileError`` naming the file, the line and the fix; ``_File``
collects them while a file is read, so one run reports them all. The checks here are the
ones every section needs: templates and their ``{placeholders}``, ``${VAR}`` references
to the environment, and durations. ``_spec`` (the file) and ``_runs`` (its run section)
use them.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from actions.errors import ConfigError
from actions.guard.policy import parse_duration
from actions.operations._yaml import line_of

# Values every template may use besides the parameters.
BUILTIN_PLACEHOLDERS = ("requester", "operation_id")
# {name}, with {{ and }} for literal braces
_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")
# ${VAR} or ${VAR:-default}
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class OperationFileError(ConfigError):
    """One problem in one operation file: where it is, what is wrong, how to fix it."""

    def __init__(self, path: Path | str, line: int, problem: str, fix: str = "") -> None:
        self.path, self.line, self.problem, self.fix = Path(path), line, problem, fix
        super().__init__(f"{_shown(self.path)}:{line}: {problem}" + (f" Fix: {fix}" if fix else ""))


class OperationsError(ConfigError):
    """Operation files with problems; the message lists every one."""

    def __init__(self, errors: Sequence[OperationFileError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def placeholders(template: str) -> list[str]:
    """The ``{names}`` a template uses; ValueError for a stray brace or an empty name."""
    names: list[str] = []
    template = ENV_REFERENCE.sub("", template)  # ${VAR} is a variable, not a placeholder
    for match in _PLACEHOLDER.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        if match.group(1) is None:
            raise ValueError(f"a stray '{token}' (write {token * 2} for a literal brace)")
        name = match.group(1).strip()
        if not name:
            raise ValueError("an empty placeholder {}")
        names.append(name)
    return names


def placeholders_safe(text: str) -> bool:
    """Whether ``text`` uses a placeholder (False for a stray brace: reported elsewhere)."""
    try:
        return bool(placeholders(text))
    except ValueError:
        return False


def env_references(text: str) -> list[tuple[str, str | None]]:
    """``[(VAR, default or None)]`` for each ``${VAR}`` / ``${VAR:-default}`` in ``text``."""
    return [(m.group(1), m.group(2)) for m in ENV_REFERENCE.finditer(text)]


class _File:
    """Collects the problems of one file."""

    def __init__(self, path: Path, check_env: bool = True) -> None:
        self.path = path
        self.check_env = check_env
        self.errors: list[OperationFileError] = []
        self.optional: set[str] = set()  # parameters that may be absent (no default)
        self.types: dict[str, str] = {}

    def whole(self, template: str, line: int, where: str) -> None:
        """Refuse optional placeholders where leaving one out would leave a hole."""
        try:
            used = placeholders(template)
        except ValueError:
            return  # reported by _check_template
        for name in used:
            if name in self.optional:
                self.error(line, f"{where} uses {{{name}}}, which is optional: when it is not "
                           f"given there is nothing to put there.",
                           f"make {name} required, or give it a default.")

    def error(self, line: int, problem: str, fix: str = "") -> None:
        self.errors.append(OperationFileError(self.path, line, problem, fix))

    def keys(self, data: Mapping[Any, Any], allowed: Sequence[str] | frozenset[str],
             where: str) -> None:
        for key in data:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), [str(a) for a in allowed], n=1)
                hint = f"did you mean {close[0]}?" if close else \
                    f"the keys are {', '.join(sorted(str(a) for a in allowed))}."
                self.error(line_of(data, key), f"unknown key {key!r} in {where}.", hint)


def _check_template(f: _File, template: str, known: set[str], line: int, where: str) -> list[str]:
    if "\0" in template:
        f.error(line, f"{where} holds a NUL character, which no program or request can take.")
        return []
    try:
        used = placeholders(template)
    except ValueError as exc:
        f.error(line, f"{where} has {exc}.")
        return []
    for name in used:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            f.error(line, f"unknown placeholder {{{name}}} in {where}.",
                    (f"did you mean {{{close[0]}}}? " if close else "") +
                    "Placeholders are the parameters "
                    f"({', '.join(sorted(known - set(BUILTIN_PLACEHOLDERS))) or 'none'})"
                    f" and {', '.join(BUILTIN_PLACEHOLDERS)}.")
    return used


def _check_env(f: _File, text: str, env: Mapping[str, str], line: int, where: str) -> None:
    for name, default in env_references(text):
        if f.check_env and default is None and not env.get(name):
            f.error(line, f"{where} refers to ${{{name}}}, which is not set in opsbot's "
                    "environment.", f"set {name} where opsbot runs (secrets stay out of the "
                    "file), give a default as ${" + name + ":-value}, or remove the operation.")
    if "${" in ENV_REFERENCE.sub("", text):
        f.error(line, f"{where} has a '${{' that is not ${{VARIABLE}}.")


MAX_DURATION = 24 * 3600.0


def _duration(f: _File, data: Mapping[str, Any], key: str, default: float,
              most: float = MAX_DURATION) -> float:
    if key not in data:
        return default
    try:
        value = parse_duration(data[key])
    except (TypeError, ValueError) as exc:
        f.error(line_of(data, key), f"{key}: {exc}.")
        return default
    if not 0 < value <= most:
        f.error(line_of(data, key), f"{key} must be more than 0s and at most "
                f"{_seconds_text(most)}, not {data[key]}.")
        return default
    return value


def _seconds_text(seconds: float) -> str:
    return f"{seconds / 3600:g}h" if seconds >= 3600 else f"{seconds / 60:g}m"
