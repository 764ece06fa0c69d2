"""Reading the simulators' YAML seed files: one error type and the checks every seed makes.

Why: the Jenkins, Jira and log seeds are written by hand, so each check names the file,
the place in it and what would be right; these helpers say it the same way for all three.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["SeedError", "check_keys", "mapping", "parse_span", "read_seed", "sequence"]

_SPAN = re.compile(r"(\d+(?:\.\d+)?)(ms|d|h|m|s)")
_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


class SeedError(ValueError):
    """The seed file is malformed; the message names the file, the place and the fix."""


def read_seed(path: Path, what: str, keys: Sequence[str]) -> dict[str, Any]:
    """The YAML mapping in ``path``; ``what`` names the file in errors ("Jira seed") and
    ``keys`` are the top-level keys it may hold (said when the file is not a mapping)."""
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise SeedError(f"cannot read the {what} {path}: {exc.strerror or exc}") from exc
    except yaml.YAMLError as exc:
        raise SeedError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SeedError(f"{path}: expected a mapping with {', '.join(keys[:-1])} and {keys[-1]}")
    return raw


def parse_span(value: object, where: str) -> float:
    """``"3h"``, ``"4m12s"``, ``"1d6h"``, ``"250ms"`` or a number of seconds -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    text = str(value).replace(" ", "")  # True and False are refused here: they are no span
    if not text or _SPAN.sub("", text):
        raise SeedError(f"{where}: expected a time span like 3h, 45m, 4m12s or 2d, got {value!r}")
    return sum(float(number) * _SECONDS[unit] for number, unit in _SPAN.findall(text))


def check_keys(raw: dict[str, Any], allowed: Collection[str], where: str) -> None:
    """Refuse a key that is not ``allowed``: most often a typo, which would be ignored."""
    unknown = sorted(str(key) for key in set(raw) - set(allowed))
    if unknown:
        raise SeedError(f"{where}: unknown key(s) {', '.join(unknown)}; "
                        f"allowed: {', '.join(sorted(allowed))}")


def mapping(value: object, where: str, *, required: bool = False) -> dict[str, Any]:
    """A YAML mapping; {} when absent (None), unless it is ``required``."""
    if value is None and not required:
        return {}
    if not isinstance(value, dict):
        raise SeedError(f"{where}: expected a mapping (key: value), got {type(value).__name__}")
    return value


def sequence(value: object, where: str) -> list[Any]:
    """A YAML list, or [] when absent."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise SeedError(f"{where}: expected a list (- item), got {type(value).__name__}")
    return value
