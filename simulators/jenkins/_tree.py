"""Jenkins' ``tree`` query parameter (``jobs[name,url,jobs[name]]{0,10}``): parsing and applying it.

Why apart: a small language of its own, which python-jenkins uses on every listing.
"""

from __future__ import annotations

import re
from typing import Any

_TreeSpec = dict[str, tuple["_TreeSpec | None", "tuple[int, int | None] | None"]]
_TREE_NAME = re.compile(r"[A-Za-z0-9_$]+")


def _parse_tree(text: str) -> _TreeSpec:
    """Parse a tree expression; raise ValueError when it is malformed."""
    position = 0

    def parse_list() -> _TreeSpec:
        nonlocal position
        spec: _TreeSpec = {}
        while True:
            match = _TREE_NAME.match(text, position)
            if not match:
                raise ValueError(f"expected a field name at {position} in {text!r}")
            name, position = match.group(), match.end()
            sub: _TreeSpec | None = None
            window: tuple[int, int | None] | None = None
            if text.startswith("[", position):
                position += 1
                sub = parse_list()
                if not text.startswith("]", position):
                    raise ValueError(f"missing ] in {text!r}")
                position += 1
            if text.startswith("{", position):
                end = text.index("}", position)  # {M,N}, {M,} or {M}: a slice of a list
                low, comma, high = text[position + 1:end].partition(",")
                if comma:
                    window = (int(low or 0), int(high) if high else None)
                else:
                    window = (int(low), int(low) + 1)
                position = end + 1
            spec[name] = (sub, window)
            if not text.startswith(",", position):
                return spec
            position += 1

    result = parse_list()
    if position != len(text):
        raise ValueError(f"unexpected {text[position]!r} at {position} in {text!r}")
    return result


def _apply_tree(value: Any, spec: _TreeSpec) -> Any:
    """Keep only what ``spec`` asks for; like Jenkins, every object keeps its ``_class``."""
    if isinstance(value, list):
        return [_apply_tree(item, spec) for item in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {"_class": value["_class"]} if "_class" in value else {}
    for name, (sub, window) in spec.items():
        if name not in value:
            continue
        item = value[name]
        if window is not None and isinstance(item, list):
            item = item[window[0]:window[1]]
        out[name] = _tree_leaf(item) if sub is None else _apply_tree(item, sub)
    return out


def _tree_leaf(value: Any) -> Any:
    """A field named without a sub-tree: objects shrink to their ``_class``."""
    if isinstance(value, list):
        return [_tree_leaf(item) for item in value]
    if isinstance(value, dict):
        return {"_class": value["_class"]} if "_class" in value else {}
    return value
