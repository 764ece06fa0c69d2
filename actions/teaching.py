"""Teaching opsbot phrasings: parse and write Rasa's example syntax, and the taught file.

People teach in three ways: choosing a meaning when opsbot is unsure (the original
text becomes a candidate for the chosen intent), saying "when I say 'ship it' I mean
deploy" in the chat, and ``opsbot teach "ship [payments](service)" --intent deploy``.
Candidates wait in opsbot's store for review (``opsbot review``, or a reviewer in the
chat); accepted ones are appended to ``data/nlu/taught.yml`` in Rasa's YAML format, a
file of their own, so hand-written data files are never rewritten and the examples are
versioned with the project.

Taught text is data, never markup: ``check_phrase`` refuses anything but one short line
of printable text whose only brackets are ``[value](entity)`` marks of known entities,
wherever a phrasing enters (chat, CLI, the store, review), and the file is written by a
YAML serializer from those lines.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from actions.registry import kind_of, offerable
from actions.requests import ENTITY_NAMES

__all__ = [
    "MAX_PHRASE",
    "TAUGHT_FILE",
    "TeachingError",
    "annotate",
    "check_phrase",
    "meaning_of",
    "parse_example",
    "quoted_phrase",
    "write_accepted",
]

TAUGHT_FILE = Path("data") / "nlu" / "taught.yml"
# The longest phrasing opsbot takes, in characters (with its [value](entity) marks).
MAX_PHRASE = 200

_MARK = re.compile(r"\[([^\[\]]+)\]\(([a-z_]+)\)")
_QUOTED = re.compile(r"[\"'“”‘’«](.+?)[\"'“”‘’»]")


class TeachingError(ValueError):
    """A phrasing or intent cannot be taught; the message says how to fix it."""


# Everything str.splitlines() breaks at: any of them would start a new line of examples.
_LINE_BREAKS = frozenset("\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029")
# Format characters that reorder how text is shown (a reviewer would read another phrase).
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def check_phrase(phrase: object) -> str:
    """``phrase`` if it can be one example line of taught.yml; TeachingError saying why not.

    One line, at most MAX_PHRASE characters, no control or bidirectional-override
    characters, and no brackets other than ``[value](entity)`` marks of known entities
    (Rasa would read ``[x](entity:value)``, ``[x]{...}`` or ``[x][...]`` as annotations).
    """
    if not isinstance(phrase, str):
        raise TeachingError("A phrasing must be text.")
    if any(ch in _LINE_BREAKS for ch in phrase):
        raise TeachingError("A phrasing must be one line: this one has a line break. Teach "
                            "each phrasing on its own.")
    for ch in phrase:
        if unicodedata.category(ch) in ("Cc", "Cs") or ch in _BIDI:
            raise TeachingError(f"A phrasing cannot hold control characters: this one has "
                                f"U+{ord(ch):04X}. Type it as plain text.")
    if len(phrase) > MAX_PHRASE:
        raise TeachingError(f"That phrasing is {len(phrase)} characters long; the limit is "
                            f"{MAX_PHRASE}. Teach a shorter one.")
    outside = _MARK.sub("", phrase)
    if any(ch in outside for ch in "[]{}"):
        raise TeachingError("Brackets in a phrasing are only for marking values, like "
                            "'ship [payments](service)'; entity names are lower-case letters "
                            f"and _ ({', '.join(ENTITY_NAMES)}). Remove the other brackets.")
    return phrase


def parse_example(example: str) -> tuple[str, list[dict[str, Any]]]:
    """The plain text of a ``[value](entity)``-marked example and its entities.

    TeachingError for an unknown entity, an empty example, or one ``check_phrase`` refuses.
    """
    check_phrase(example)
    entities: list[dict[str, Any]] = []
    plain: list[str] = []
    position = 0
    cursor = 0
    for match in _MARK.finditer(example):
        before = example[cursor:match.start()]
        plain.append(before)
        position += len(before)
        value, entity = match.group(1), match.group(2)
        if entity not in ENTITY_NAMES:
            raise TeachingError(f"'{entity}' is not an entity opsbot knows; use one of "
                                f"{', '.join(ENTITY_NAMES)}.")
        entities.append({"entity": entity, "value": value, "start": position,
                         "end": position + len(value)})
        plain.append(value)
        position += len(value)
        cursor = match.end()
    plain.append(example[cursor:])
    text = " ".join("".join(plain).split())
    if not text:
        raise TeachingError("The phrasing is empty.")
    if text.startswith("/"):
        raise TeachingError("A phrasing cannot start with '/' "
                            "(Rasa reads that as a button payload).")
    return text, entities


def annotate(text: str, entities: Iterable[Mapping[str, Any]]) -> str:
    """``text`` with Rasa's ``[value](entity)`` marks for the entities NLU found in it."""
    spans = sorted(
        ((int(e["start"]), int(e["end"]), str(e["entity"])) for e in entities
         if e.get("entity") in ENTITY_NAMES and isinstance(e.get("start"), int)
         and isinstance(e.get("end"), int)),
        reverse=True)
    taken: list[tuple[int, int]] = []
    for start, end, entity in spans:
        if not 0 <= start < end <= len(text) or any(s < end and start < e for s, e in taken):
            continue
        taken.append((start, end))
        text = f"{text[:start]}[{text[start:end]}]({entity}){text[end:]}"
    return text


def quoted_phrase(text: str) -> str | None:
    """The phrase in quotes in "when I say 'ship it' I mean deploy"."""
    found = _QUOTED.search(text)
    return found.group(1).strip() if found and found.group(1).strip() else None


def meaning_of(words: str, intents: Sequence[str]) -> str | None:
    """The intent that ``words`` name ("deploy", "roll back", "build status"), or None."""
    text = " ".join(re.sub(r"[^\w\s]", " ", words.lower()).split())
    for intent in intents:
        if text in (intent, intent.replace("_", " ")):
            return intent
    aliases = {alias: intent for intent in intents if (kind := kind_of(intent)) is not None
               for alias in kind.aliases}
    for alias in sorted(aliases, key=len, reverse=True):
        if re.search(rf"\b{re.escape(alias)}\b", text):
            return aliases[alias]
    for intent in sorted(intents, key=len, reverse=True):
        if re.search(rf"\b({re.escape(intent)}|{re.escape(intent.replace('_', ' '))})\b", text):
            return intent
    return None


def write_accepted(project: Path, examples: Iterable[tuple[str, str]],
                   intents: Iterable[str] | None = None) -> tuple[Path, int]:
    """Append ``(intent, example)`` pairs to data/nlu/taught.yml; the file and how many were new.

    Only that file is written; examples already in it are skipped. Every example (new or
    already there) is checked with ``check_phrase`` first: on any TeachingError the file
    is left as it was.
    """
    path = project / TAUGHT_FILE
    known_intents = set(offerable() if intents is None else intents)
    blocks: dict[str, list[str]] = {}
    if path.exists():
        try:
            current = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise TeachingError(f"{path} is not valid YAML ({exc}); "
                                "fix it before accepting more.") from None
        for block in current.get("nlu") or []:
            if isinstance(block, dict) and block.get("intent"):
                lines = str(block.get("examples") or "").splitlines()
                blocks.setdefault(str(block["intent"]), []).extend(
                    line.strip()[2:].strip() for line in lines if line.strip().startswith("- "))
    for intent, known in blocks.items():
        for example in known:
            try:
                check_phrase(example)
            except TeachingError as exc:
                raise TeachingError(f"{path} has an example of {intent} opsbot would not write "
                                    f"({exc}); fix it before accepting more.") from None
    added = 0
    for intent, example in examples:
        if intent not in known_intents:
            raise TeachingError(f"'{intent}' is not an intent opsbot can be taught.")
        parse_example(example)
        known = blocks.setdefault(intent, [])
        if example not in known:
            known.append(example)
            added += 1
    document = {"version": "3.1", "nlu": [
        {"intent": intent, "examples": _Examples("".join(f"- {e}\n" for e in blocks[intent]))}
        for intent in sorted(blocks) if blocks[intent]]}
    text = _TAUGHT_HEADER + yaml.dump(document, Dumper=_TaughtDumper, sort_keys=False,
                                      allow_unicode=True, width=1 << 16)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path, added


_TAUGHT_HEADER = (
    "# Phrasings people taught opsbot, accepted with `opsbot review` (or by a reviewer\n"
    "# in the chat). Written by opsbot; hand-written examples belong in the other files.\n")


class _Examples(str):
    """Rasa's ``examples``: ``- `` lines of checked phrasings, written as a YAML block."""


class _TaughtDumper(yaml.SafeDumper):
    """yaml.safe_dump's dumper, writing ``_Examples`` as a literal block (``|``) when it can."""


_TaughtDumper.add_representer(
    _Examples, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", str(value),
                                                              style="|"))
