"""YAML that remembers where each value was written, so errors can name the line."""

from __future__ import annotations

from typing import Any

import yaml

__all__ = ["Located", "LocatedDict", "LocatedList", "line_of", "load"]


class LocatedDict(dict[Any, Any]):  # a plain dict, plus the lines of its keys
    """A mapping from the file; ``lines[key]`` is the 1-based line of that key."""

    line: int
    lines: dict[Any, int]


class LocatedList(list[Any]):  # a plain list, plus the lines of its items
    """A sequence from the file; ``lines[i]`` is the 1-based line of item ``i``."""

    line: int
    lines: list[int]


Located = LocatedDict | LocatedList


class _Loader(yaml.SafeLoader):
    """SafeLoader whose mappings and sequences carry line numbers."""


def _mapping(loader: _Loader, node: yaml.MappingNode) -> LocatedDict:
    result = LocatedDict()
    result.line = node.start_mark.line + 1
    result.lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            hash(key)
        except TypeError:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark) from None
        if key in result:
            raise yaml.constructor.ConstructorError(
                None, None, f"the key {key!r} is written twice", key_node.start_mark)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = key_node.start_mark.line + 1
    return result


def _sequence(loader: _Loader, node: yaml.SequenceNode) -> LocatedList:
    result = LocatedList(loader.construct_object(item, deep=True) for item in node.value)
    result.line = node.start_mark.line + 1
    result.lines = [item.start_mark.line + 1 for item in node.value]
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _sequence)


def load(text: str) -> Any:
    """Parse one YAML document; ``yaml.YAMLError`` (with its mark) when it is not YAML."""
    return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass


def line_of(container: Any, key: Any = None, default: int = 1) -> int:
    """The line of ``container[key]`` (or of the container), ``default`` when unknown."""
    if key is not None:
        lines = getattr(container, "lines", None)
        if isinstance(lines, dict) and key in lines:
            return int(lines[key])
        if isinstance(lines, list) and isinstance(key, int) and 0 <= key < len(lines):
            return int(lines[key])
    return int(getattr(container, "line", default))
