"""The automation backlog: the wishes nothing serves yet, grouped by what they ask for.

A wish is covered, and leaves the backlog, when

(a) an operation was made from it (``opsbot operations new NAME --from-wish ID``), or
(b) a reviewer taught it as a phrasing of an existing intent (``opsbot review --wish ID
    --as INTENT``); both are recorded in the store at that moment (``covered_by``); or
(c) its text, case, spacing and brackets aside, is now an example of an operation file
    or of ``data/nlu/taught.yml``: someone wrote it in by hand. This is checked each
    time the backlog is listed, from the files, and not recorded.

Nothing here asks the NLU: a model that happens to place a wish's text with confidence
would need the Rasa server, and a text the team wrote down as an example is the
decision that counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import yaml

from actions.storage.wishes import Wish, Wishes
from actions.teaching import TAUGHT_FILE
from actions.wish_groups import Group, Likeness, group, one_line

__all__ = ["Backlog", "backlog", "covering_texts", "example_text", "text_key"]

_MARK = re.compile(r"\[([^\[\]]+)\]\([^()]*\)")  # [value](entity): the value counts


def example_text(text: str) -> str:
    """``text`` as one example line: one line, a ``[value](entity)`` mark's value only, no
    other brackets Rasa reads as marks (``[x]``, ``{...}``), not starting with ``/`` (a
    button's payload)."""
    return one_line(re.sub(r"[\[\]{}]", " ", _MARK.sub(r"\1", text))).lstrip("/ ")


def text_key(text: str) -> str:
    """What two texts share when one is the other but for case, spacing, brackets and a
    final question mark or full stop."""
    return example_text(text).casefold().rstrip("?!. ")


def covering_texts(project: Path) -> dict[str, str]:
    """The example texts of the operation files and of taught.yml (by :func:`text_key`),
    each with the operation or intent it belongs to."""
    from actions.operations import load_operations

    found: dict[str, str] = {}
    path = project / TAUGHT_FILE
    try:
        taught = yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None
    except (OSError, yaml.YAMLError):
        taught = None  # ``opsbot review`` says what is wrong with it
    blocks = taught.get("nlu") if isinstance(taught, dict) else None
    for block in blocks or []:
        if isinstance(block, dict) and block.get("intent"):
            for line in str(block.get("examples") or "").splitlines():
                if line.strip().startswith("- "):
                    found.setdefault(text_key(line.strip()[2:]), str(block["intent"]))
    for spec in load_operations(project).operations.values():
        for example in spec.examples:
            found.setdefault(text_key(example), spec.name)
    return found


@dataclass(frozen=True)
class Backlog:
    """Wishes grouped; ``covered``: what serves each covered one among them."""

    groups: list[Group]
    covered: dict[str, str] = field(default_factory=dict)
    likeness: str = ""

    def group_of(self, wish_id: str) -> Group | None:
        return next((g for g in self.groups if wish_id in g.ids), None)


def backlog(store: Wishes, project: Path, likeness: Likeness, since: datetime | None = None,
            *, include_covered: bool = False) -> Backlog:
    """The wishes asked since ``since`` that nothing covers (or all, with
    ``include_covered``), grouped with ``likeness``."""
    examples = covering_texts(project)
    wishes: list[Wish] = []
    covered: dict[str, str] = {}
    for wish in store.since(since, uncovered=not include_covered):
        by = wish.covered_by or examples.get(text_key(wish.text))
        if by is not None:
            covered[wish.id] = by
        if by is None or include_covered:
            wishes.append(wish)
    return Backlog(group(wishes, likeness), covered if include_covered else {}, likeness.name)
