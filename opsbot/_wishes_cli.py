"""``opsbot wishes``: the automation backlog, and making operations and phrasings of it.

    opsbot wishes [--since 7d] [--json] [--all]   what people asked for that opsbot
                                                  could not do, grouped, most asked first
    opsbot operations new NAME --from-wish ID     an operation whose examples are that
                                                  wish's group (``opsbot._operations_cli``)
    opsbot review --wish ID --as INTENT           the wish taught as a phrasing of an
                                                  intent opsbot has (``opsbot._teach``)

Groups are made by meaning with the NLU's sentence model (``actions.wish_groups``); if
it cannot load here, by shared words, and the listing says so. What the libraries print
while the model loads goes to the state dir's ``logs/wishes.log``.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from opsbot._teach import open_stores, shown
from opsbot._training import CommandError
from opsbot.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from actions.wish_backlog import Backlog
    from actions.wish_groups import Likeness

__all__ = ["add_command", "cover", "sentence_model", "since_arg", "wish_examples"]


def since_arg(text: str) -> datetime:
    """``--since``: 30m, 12h, 7d, 2w (ago) or an ISO date; argparse says what is wrong."""
    from actions.guard._audit_view import parse_since

    try:
        return parse_since(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def sentence_model(project: Path) -> Likeness:
    """Grouping by meaning with the NLU's sentence encoder, as config.yml configures it,
    loaded at the first texts (``actions.wish_groups`` says why, and what it costs).

    ImportError or ``nlu._encoder.ModelNotAvailable`` (a RuntimeError) when it cannot load.
    """
    import numpy as np
    import yaml

    from actions.wish_groups import Likeness

    config = yaml.safe_load((project / "config.yml").read_text(encoding="utf-8")) or {}
    step: dict[str, Any] = next((s for s in config.get("pipeline") or []
                                 if str(s.get("name", "")).endswith("EmbeddingFeaturizer")), {})

    def vectors(texts: Sequence[str]) -> np.ndarray:
        from nlu._encoder import Encoder

        encoder = Encoder(step.get("model"), None, show_progress=False, dtype="float32")
        return encoder.embed_many(list(texts))[0]

    return Likeness("meaning", vectors, cut=0.7)


def _likeness(settings: Settings) -> Likeness:
    return sentence_model(settings.project)


def _backlog(store: Any, settings: Settings, since: datetime | None = None,
             include_covered: bool = False) -> Backlog:
    """The backlog grouped by meaning, or by shared words when the model cannot load."""
    from actions.wish_backlog import backlog
    from actions.wish_groups import NGRAMS
    from opsbot._quiet import output_to_log

    try:
        with output_to_log(settings.state_dir / "logs" / "wishes.log"):
            return backlog(store.wishes, settings.project, _likeness(settings), since,
                           include_covered=include_covered)
    except (ImportError, OSError, RuntimeError) as exc:
        print(f"(The sentence model could not be used here ({type(exc).__name__}: {exc}); the "
              "wishes are grouped by shared words instead.)", file=sys.stderr)
        return backlog(store.wishes, settings.project, NGRAMS, since,
                       include_covered=include_covered)


def _when(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M")


def _as_json(found: Backlog, since: datetime | None, include_covered: bool) -> dict[str, Any]:
    return {
        "since": since.isoformat() if since else None,
        "covered_included": include_covered,
        "grouped_by": found.likeness,
        "groups": [{
            "representative": g.representative, "examples": g.examples, "count": g.count,
            "people": g.people, "first_asked": g.first_asked.isoformat(),
            "last_asked": g.last_asked.isoformat(), "ids": g.ids,
            "covered_by": {i: found.covered[i] for i in g.ids if i in found.covered},
        } for g in found.groups],
    }


def _human(found: Backlog, since: datetime | None) -> str:
    asked = sum(g.count for g in found.groups)
    people = len({p for g in found.groups for p in g.people})
    when = f" since {_when(since)}" if since else ""
    lines = [f"{asked} request{'s' if asked != 1 else ''} from {people} "
             f"{'person' if people == 1 else 'people'}{when}, in {len(found.groups)} "
             f"group{'s' if len(found.groups) != 1 else ''} by {found.likeness}, most asked "
             "first:", ""]
    for number, g in enumerate(found.groups, start=1):
        times = "once" if g.count == 1 else f"{g.count} times"
        lines.append(f"{number}. \"{shown(g.representative)}\"")
        lines.append(f"   asked {times} by {', '.join(shown(p) for p in g.people)}; "
                     + (f"first {_when(g.first_asked)}, last {_when(g.last_asked)}"
                        if g.count > 1 else _when(g.first_asked)))
        if len(g.examples) > 1:
            lines.append("   also: " + " | ".join(f"\"{shown(t)}\"" for t in g.examples[1:]))
        covered = [f"{i} by {found.covered[i]}" for i in g.ids if i in found.covered]
        if covered:
            lines.append(f"   covered: {', '.join(covered)}")
        lines.append(f"   ids: {' '.join(g.ids)}")
    lines += ["", "Make an operation of a group: opsbot operations new NAME --from-wish ID",
              "Teach one as a phrasing of an intent: opsbot review --wish ID --as INTENT"]
    return "\n".join(lines)


def cmd_wishes(args: argparse.Namespace, settings: Settings) -> int:
    from actions.errors import OpsbotError

    try:
        store = open_stores(settings)
        try:
            found = _backlog(store, settings, args.since, args.all)
        finally:
            store.close()
    except OpsbotError as exc:
        raise CommandError(str(exc)) from None
    if args.json:
        print(json.dumps(_as_json(found, args.since, args.all), indent=2, ensure_ascii=False))
    elif not found.groups:
        print("Nobody has asked opsbot for anything it could not do"
              + (f" since {_when(args.since)}." if args.since else " yet.")
              + ("" if args.all else " (--all lists the covered ones too.)"))
    else:
        print(_human(found, args.since))
    return 0


def wish_examples(settings: Settings, ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """The examples an operation made from the wishes ``ids`` starts with (the texts of
    their groups, each once) and the wishes it covers; CommandError for a wish that is
    unknown or covered already."""
    from actions.errors import OpsbotError
    from actions.wish_backlog import example_text

    try:
        store = open_stores(settings)
        try:
            found = _backlog(store, settings)
            groups = []
            for wish_id in dict.fromkeys(ids):
                group = found.group_of(wish_id)
                if group is None:
                    raise CommandError(_not_open(store, settings, wish_id))
                groups.append(group)
        finally:
            store.close()
    except OpsbotError as exc:
        raise CommandError(str(exc)) from None
    examples: dict[str, str] = {}
    for group in groups:
        for text in group.texts:
            line = example_text(text)
            if line:
                examples.setdefault(line.casefold(), line)
    covered = list(dict.fromkeys(i for g in groups for i in g.ids))
    return list(examples.values()), covered


def _not_open(store: Any, settings: Settings, wish_id: str) -> str:
    """Why ``wish_id`` is not in the backlog: unknown, or what covers it."""
    from actions.wish_backlog import covering_texts, text_key

    wish = store.wishes.get(wish_id)
    if wish is None:
        return (f"There is no wish {wish_id}; 'opsbot wishes' lists them with their ids. "
                "Nothing was written.")
    by = wish.covered_by or covering_texts(settings.project).get(text_key(wish.text))
    return (f"Wish {wish_id} is covered by {by} already ('opsbot wishes --all' shows it). "
            "Nothing was written.")


def cover(settings: Settings, ids: Sequence[str], by: str) -> list[str]:
    """Record that ``by`` covers the wishes ``ids`` now; those it marked."""
    from actions.errors import OpsbotError

    try:
        store = open_stores(settings)
        try:
            return list(store.wishes.mark_covered(ids, by))
        finally:
            store.close()
    except OpsbotError as exc:
        raise CommandError(f"{exc} The wishes {', '.join(ids)} are not marked covered by "
                           f"{by}.") from None


def add_command(commands: Any) -> None:
    """``opsbot wishes``, for ``opsbot.cli.build_parser``."""
    sub = commands.add_parser(
        "wishes", help="what people asked for that opsbot could not do, grouped",
        description="The automation backlog: requests opsbot answered with \"I can't do "
                    "that\", grouped by meaning, most asked first (then by how many people "
                    "asked), with their ids. A wish is covered, and no longer listed, once "
                    "an operation or a taught phrasing serves it.")
    sub.add_argument("--since", type=since_arg, metavar="WHEN",
                     help="only wishes from this recent: 30m, 12h, 7d, 2w or an ISO date")
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.add_argument("--all", action="store_true", help="list covered wishes too")
    sub.set_defaults(func=cmd_wishes)
