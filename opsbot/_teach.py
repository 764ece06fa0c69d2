"""``opsbot teach`` and ``opsbot review``: candidate phrasings in, reviewed examples out.

``teach`` records a candidate (as the chat's "did you mean" buttons and "when I say ..."
do). ``review`` lists candidates and accepts or rejects them, one by one or all at once;
accepted ones go to data/nlu/taught.yml (never to the hand-written files), then the
model is retrained and a running opsbot switches to it. Rejected ones stay in the store,
marked, so the same suggestion is not reviewed twice. ``review --wish ID --as INTENT``
teaches a request opsbot could not serve (``opsbot wishes``) as a phrasing of an intent
it has, accepted at once.
"""

from __future__ import annotations

import argparse
import getpass
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from opsbot.settings import Settings

__all__ = ["add_commands", "open_stores", "shown"]


def open_stores(settings: Settings) -> Any:
    """opsbot's stores (the taught phrasings, and the audit log of what was decided)."""
    os.environ.setdefault("OPSBOT_STATE_DIR", str(settings.state_dir))
    from actions.stores import Stores

    return Stores.from_env()


def _intents(settings: Settings) -> list[str]:
    """The built-in intents one can teach, then the team-defined operations."""
    from actions import intents
    from actions.operations import load_operations

    intents.install()
    offered = {kind.intent for kind in intents.BUILT_IN if kind.title}
    domain = yaml.safe_load((settings.project / "domain.yml").read_text(encoding="utf-8")) or {}
    builtins = [i for i in domain.get("intents") or [] if i in offered]
    return builtins + sorted(load_operations(settings.project).operations)


def cmd_teach(args: argparse.Namespace, settings: Settings,
              fail: Callable[[str], Exception]) -> int:
    from actions.errors import OpsbotError
    from actions.teaching import TeachingError, parse_example

    intents = _intents(settings)
    if args.intent not in intents:
        raise fail(f"--intent {args.intent}: not an intent opsbot can be taught. Use one of: "
                   f"{', '.join(intents)}.")
    try:
        text, entities = parse_example(args.phrase)
    except TeachingError as exc:
        raise fail(str(exc)) from None
    who = args.user or os.environ.get("OPSBOT_USER") or getpass.getuser()
    try:
        store = open_stores(settings)
        try:
            taught = store.taught.add(text=text, example=args.phrase, intent=args.intent,
                                      source="cli", taught_by=who, channel="cli")
            store.operations.audit(None, "taught", actor=who, channel="cli",
                                   detail={"id": taught.id, "text": text,
                                           "intent": args.intent, "source": "cli"})
        finally:
            store.close()
    except OpsbotError as exc:
        raise fail(str(exc)) from None
    marks = ", ".join(f"{e['value']} = {e['entity']}" for e in entities)
    print(f"{taught.id}: \"{text}\" -> {args.intent}{f' ({marks})' if marks else ''}, a candidate. "
          "Accept it with: opsbot review --accept " + taught.id)
    return 0


def shown(text: str) -> str:
    """``text`` for the terminal, control characters (from before phrasings were checked)
    escaped."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in text)


def _table(rows: list[Any]) -> str:
    lines = [f"{'id':<13} {'status':<9} {'intent':<14} {'who':<10} {'when':<16} text"]
    for t in rows:
        when = t.created_at.strftime("%Y-%m-%d %H:%M")
        lines.append(f"{t.id:<13} {t.status:<9} {t.intent:<14} {t.taught_by[:10]:<10} {when:<16} "
                     f"{shown(t.example)}  ({t.source})")
    return "\n".join(lines)


def cmd_review(args: argparse.Namespace, settings: Settings,
               fail: Callable[[str], Exception], retrain: Callable[[Settings], None]) -> int:
    from actions.errors import OpsbotError
    from actions.storage import ACCEPTED, CANDIDATE, REJECTED
    from actions.teaching import TeachingError, parse_example, write_accepted

    reviewer = args.reviewer or os.environ.get("OPSBOT_USER") or getpass.getuser()
    if getattr(args, "wish", None) or getattr(args, "as_intent", None):
        return _review_wishes(args, settings, fail, retrain, reviewer)
    try:
        store = open_stores(settings)
    except OpsbotError as exc:
        raise fail(str(exc)) from None
    try:
        candidates = store.taught.examples(CANDIDATE)
        ids = {t.id: t for t in candidates}
        accept = [t.id for t in candidates] if args.accept_all else list(args.accept or [])
        reject = [t.id for t in candidates] if args.reject_all else list(args.reject or [])
        for wanted in [*accept, *reject]:
            if wanted not in ids:
                known = {t.id: t for t in store.taught.examples(None)}
                state = f"already {known[wanted].status}" if wanted in known else "unknown"
                raise fail(f"{wanted} is {state}; 'opsbot review' lists the candidates.")
        both = sorted(set(accept) & set(reject))
        if both:
            raise fail(f"Accept or reject, not both: {', '.join(both)}.")
        for wanted in accept:
            try:
                parse_example(ids[wanted].example)
            except TeachingError as exc:
                raise fail(f"{wanted} cannot be accepted: {exc} Reject it with: opsbot review "
                           f"--reject {wanted}. Nothing changed.") from None
        if not accept and not reject:
            rows = store.taught.examples(None if args.all else CANDIDATE)
            if args.json:
                print(json.dumps([{**t.__dict__, "created_at": t.created_at.isoformat(),
                                   "reviewed_at": (t.reviewed_at.isoformat() if t.reviewed_at
                                                   else None)}
                                  for t in rows], indent=2))
            elif not rows:
                print("No phrasings wait for review." if not args.all
                      else "Nothing was taught yet.")
            else:
                print(_table(rows))
                print("\nAccept with --accept ID ... (or --accept-all), "
                      "reject with --reject ID ...")
            return 0
        accepted = [t for t in (store.taught.review(i, ACCEPTED, reviewer) for i in accept) if t]
        rejected = [t for t in (store.taught.review(i, REJECTED, reviewer) for i in reject) if t]
        for t in [*accepted, *rejected]:
            store.operations.audit(None, f"taught_{t.status}", actor=reviewer, channel="cli",
                                   detail={"id": t.id, "text": t.text, "intent": t.intent})
    except OpsbotError as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    for t in rejected:
        print(f"rejected {t.id}: \"{t.text}\" -> {t.intent}")
    if not accepted:
        return 0
    try:
        path, added = write_accepted(settings.project, [(t.intent, t.example) for t in accepted],
                                     intents=_intents(settings))
    except TeachingError as exc:
        raise fail(str(exc)) from None
    for t in accepted:
        print(f"accepted {t.id}: \"{t.text}\" -> {t.intent}")
    return _written(settings, path, added, args.no_train, retrain)


def _written(settings: Settings, path: Path, added: int, no_train: bool,
             retrain: Callable[[Settings], None]) -> int:
    """Say what reached taught.yml, then retrain (unless ``no_train``)."""
    print(f"{added} new example{'s' if added != 1 else ''} "
          f"in {path.relative_to(settings.project)}.")
    if no_train:
        print("Not retrained (--no-train): run 'opsbot train --reload' when ready.")
    else:
        retrain(settings)
    return 0


def _review_wishes(args: argparse.Namespace, settings: Settings,
                   fail: Callable[[str], Exception], retrain: Callable[[Settings], None],
                   reviewer: str) -> int:
    """``opsbot review --wish ID ... --as INTENT``: each wish's text becomes a phrasing of
    INTENT, taught and accepted at once (the reviewer decides as they type it), through the
    store and the audit log as any phrasing; then the wishes are covered by INTENT."""
    from actions.errors import OpsbotError
    from actions.storage import ACCEPTED
    from actions.teaching import TeachingError, parse_example, write_accepted
    from actions.wish_backlog import example_text

    if not args.wish or not args.as_intent:
        raise fail("--wish and --as go together: opsbot review --wish ID --as INTENT.")
    if args.accept or args.reject or args.accept_all or args.reject_all:
        raise fail("Review wishes on their own: --wish does not go with --accept or --reject.")
    intent, intents = args.as_intent, _intents(settings)
    if intent not in intents:
        raise fail(f"--as {intent}: not an intent opsbot can be taught. Use one of: "
                   f"{', '.join(intents)}.")
    try:
        store = open_stores(settings)
    except OpsbotError as exc:
        raise fail(str(exc)) from None
    try:
        chosen = []
        for wish_id in dict.fromkeys(args.wish):
            wish = store.wishes.get(wish_id)
            if wish is None or wish.covered_by:
                raise fail(f"Wish {wish_id} is " + (f"covered by {wish.covered_by} already"
                           if wish else "unknown; 'opsbot wishes' lists them") + ". Nothing "
                           "changed.")
            example = example_text(wish.text)
            try:
                text, _ = parse_example(example)
            except TeachingError as exc:
                raise fail(f"Wish {wish_id} cannot be a phrasing: {exc} Nothing changed.") from None
            chosen.append((wish.id, text, example))
        for wish_id, text, example in chosen:
            taught = store.taught.add(text=text, example=example, intent=intent, source="wish",
                                      taught_by=reviewer, channel="cli")
            store.operations.audit(None, "taught", actor=reviewer, channel="cli", detail={
                "id": taught.id, "text": text, "intent": intent, "source": "wish",
                "wish": wish_id})
            store.taught.review(taught.id, ACCEPTED, reviewer)
            store.operations.audit(None, "taught_accepted", actor=reviewer, channel="cli",
                                   detail={"id": taught.id, "text": text, "intent": intent})
        path, added = write_accepted(settings.project, [(intent, e) for _, _, e in chosen],
                                     intents=intents)
        store.wishes.mark_covered([w for w, _, _ in chosen], intent)
    except (OpsbotError, TeachingError) as exc:
        raise fail(str(exc)) from None
    finally:
        store.close()
    for wish_id, text, _ in chosen:
        print(f"taught {wish_id}: \"{shown(text)}\" -> {intent} (covered by {intent} now)")
    return _written(settings, path, added, args.no_train, retrain)


def add_commands(commands: Any, with_ports: Callable[[argparse.ArgumentParser], None],
                 teach: Callable[..., int], review: Callable[..., int]) -> None:
    """The ``teach`` and ``review`` sub-commands (their functions come from the CLI)."""
    sub = commands.add_parser(
        "teach", help="add a phrasing for an intent (a candidate, until reviewed)",
        description="Record a phrasing as a candidate example of an intent. Mark values in "
                    "Rasa's syntax: opsbot teach "
                    "\"ship [payments](service) to [prod](environment)\" --intent deploy")
    sub.add_argument("phrase", help="the phrasing, with [value](entity) marks if it names values")
    sub.add_argument("--intent", required=True, help="the intent it means, e.g. deploy")
    sub.add_argument("--user", help="who teaches it (default $OPSBOT_USER or your login)")
    sub.set_defaults(func=teach)

    sub = commands.add_parser(
        "review", help="list, accept or reject taught phrasings",
        description="Without options, lists the candidates (text, intent, who, when). Accepted "
                    "phrasings are appended to data/nlu/taught.yml; then opsbot retrains and a "
                    "running opsbot switches to the new model. Rejected ones stay, marked.")
    sub.add_argument("--accept", nargs="+", metavar="ID", help="accept these candidates")
    sub.add_argument("--reject", nargs="+", metavar="ID", help="reject these candidates")
    sub.add_argument("--accept-all", action="store_true", help="accept every candidate")
    sub.add_argument("--reject-all", action="store_true", help="reject every candidate")
    sub.add_argument("--all", action="store_true", help="list reviewed phrasings too")
    sub.add_argument("--json", action="store_true", help="list as JSON")
    sub.add_argument("--wish", nargs="+", metavar="ID",
                     help="teach these wishes ('opsbot wishes' lists them) as phrasings of "
                          "--as INTENT, accepted at once; they are covered by it then")
    sub.add_argument("--as", dest="as_intent", metavar="INTENT",
                     help="with --wish: the intent the wishes mean, e.g. deploy")
    sub.add_argument("--reviewer", help="who reviews (default $OPSBOT_USER or your login)")
    sub.add_argument("--no-train", action="store_true", help="write data/ only; do not retrain")
    with_ports(sub)
    sub.set_defaults(func=review)

