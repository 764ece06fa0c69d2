"""The dialogue side of teaching: "did you mean ...?" buttons, chosen meanings, taught phrases.

When NLU is unsure, opsbot offers the two or three likeliest meanings as buttons plus
"something else". A choice carries on as if the person had said it, and the original
text becomes a candidate example of that intent, with who chose it. "When I say 'ship
it' I mean deploy" adds a candidate on purpose (people with a role that may teach,
per policy.yml). Candidates are reviewed with ``opsbot review``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from rasa_sdk.events import SlotSet

from actions.registry import offerable
from actions.teaching import (
    MAX_PHRASE,
    TeachingError,
    annotate,
    meaning_of,
    parse_example,
    quoted_phrase,
)
from actions.turn import Turn

__all__ = ["PENDING_SLOT", "chosen", "offer_meanings", "review", "teach"]

PENDING_SLOT = "pending_meaning"
_PENDING_TTL = timedelta(minutes=10)
_NOTHING = "none"


def offer_meanings(turn: Turn, message: dict[str, Any]) -> None:
    """Ask which meaning an unsure text had: the top intents as buttons, and "something else"."""
    ranking = [r.get("name") for r in message.get("intent_ranking") or []]
    titles = offerable()
    top = [name for name in dict.fromkeys(ranking) if name in titles][:3]
    text = str(message.get("text") or "")
    if not top or not text or text.startswith("/"):
        turn.say("Sorry, I'm not sure what you mean. Say \"help\" for examples of what I can do.")
        return
    buttons = [turn.button(titles[name].capitalize(), "choose_meaning", {"meaning": name})
               for name in top]
    buttons.append(turn.button("Something else", "choose_meaning", {"meaning": _NOTHING}))
    turn.say(f"I'm not sure what you mean by \"{_short(text)}\". Did you mean:", buttons)
    entities = list(message.get("entities") or [])
    turn.events.append(SlotSet(PENDING_SLOT, {
        "text": text,
        "example": annotate(text, entities),
        "entities": {str(e["entity"]): str(e["value"]) for e in entities
                     if e.get("entity") and e.get("value") is not None},
        "offered": top,
        "at": datetime.now(UTC).isoformat(),
    }))


def chosen(turn: Turn, meaning: str | None, pending: Any) -> dict[str, Any] | None:
    """Record a chosen meaning; the original request to carry on with, or None if done."""
    turn.events.append(SlotSet(PENDING_SLOT, None))
    if not isinstance(pending, dict) or not pending.get("text"):
        turn.say("That question has expired. Say it again, in your own words.")
        return None
    try:
        asked = datetime.fromisoformat(str(pending.get("at")))
    except ValueError:
        asked = datetime.min.replace(tzinfo=UTC)
    if datetime.now(UTC) - asked > _PENDING_TTL:
        turn.say("That question has expired. Say it again, in your own words.")
        return None
    if meaning == _NOTHING or meaning not in offerable():
        turn.say("OK. Say it in other words, or teach me, like this: when I say "
                 "'ship it' I mean deploy.")
        return None
    who = turn.who
    try:
        taught = turn.runtime.stores.taught.add(
            text=str(pending["text"]), example=str(pending.get("example") or pending["text"]),
            intent=meaning, source="fallback", taught_by=who.person, channel=who.channel)
    except TeachingError as exc:
        # The request still goes ahead; only the phrasing is not kept for training.
        turn.runtime.store.audit(None, "refused_teach", actor=who.person, channel=who.channel,
                                 detail={"text": str(pending["text"])[:MAX_PHRASE],
                                         "intent": meaning, "reason": str(exc)})
        turn.say(f"(I won't learn from how you said it: {exc})")
    else:
        turn.runtime.store.audit(None, "taught", actor=who.person, channel=who.channel,
                                 detail={"id": taught.id, "text": taught.text, "intent": meaning,
                                         "source": "fallback"})
    return {"intent": meaning, "text": str(pending["text"]),
            "entities": dict(pending.get("entities") or {})}


async def teach(turn: Turn) -> None:
    """ "When I say 'ship it' I mean deploy": a candidate example, for people allowed to teach."""
    text = turn.request.text
    if len(text.splitlines()) > 1:
        turn.say("Teach me one phrasing at a time, on one line, like this: when I say "
                 "'ship it' I mean deploy. Nothing was recorded.")
        return
    phrase = quoted_phrase(text)
    if phrase is None:
        turn.say("Teach me like this: when I say 'ship it' I mean deploy. Put the phrase in "
                 "quotes; mark values like 'ship [payments](service)'.")
        return
    rest = text[text.find(phrase) + len(phrase):]
    known = tuple(offerable())
    meaning = meaning_of(rest, known)
    if meaning is None:
        turn.say(f"What should \"{_short(phrase)}\" mean? Say it like: when I say '{phrase}' I "
                 f"mean deploy. I know: {', '.join(known)}.")
        return
    rt, who = turn.runtime, turn.who
    decision = rt.policy.decide("teach", {}, who.person)
    if not decision.allowed:
        rt.store.audit(None, "refused_teach", actor=who.person, channel=who.channel,
                       detail={"text": phrase, "intent": meaning, "reason": decision.reason})
        turn.say(f"I can't take phrasings from you: {decision.reason} Nothing was recorded.")
        return
    try:
        plain, _ = parse_example(phrase)
    except TeachingError as exc:
        turn.say(f"{exc} Nothing was recorded.")
        return
    taught = rt.stores.taught.add(text=plain, example=phrase, intent=meaning, source="chat",
                                  taught_by=who.person, channel=who.channel)
    rt.store.audit(None, "taught", actor=who.person, channel=who.channel,
                   detail={"id": taught.id, "text": plain, "intent": meaning, "source": "chat"})
    turn.say(f"Noted: \"{_short(plain)}\" means {meaning} ({taught.id}). Once a reviewer "
             "accepts it (opsbot review), I'll understand it directly.")


async def review(turn: Turn, taught_id: str | None, decision: str | None) -> None:
    """A reviewer in the chat: list candidates with Accept / Reject, or decide one."""
    from actions.storage import ACCEPTED, CANDIDATE, REJECTED
    from actions.teaching import TeachingError, write_accepted

    rt, who = turn.runtime, turn.who
    allowed = rt.policy.decide("review_taught", {}, who.person)
    if not allowed.allowed:
        rt.store.audit(None, "refused_review", actor=who.person, channel=who.channel,
                       detail={"reason": allowed.reason})
        turn.say(f"I can't let you review phrasings: {allowed.reason} Nothing changed.")
        return
    if not taught_id:
        waiting = rt.stores.taught.examples(CANDIDATE, limit=5)
        if not waiting:
            turn.say("No taught phrasings wait for review.")
            return
        for t in waiting:
            turn.say(f"{t.id}: \"{_short(t.example)}\" means {t.intent} (taught by {t.taught_by}, "
                     f"{t.source}).",
                     [turn.button(title, "review_taught",
                                  {"taught_id": t.id, "decision": title.lower()})
                      for title in ("Accept", "Reject")])
        return
    status = {"accept": ACCEPTED, "reject": REJECTED}.get(str(decision))
    if status is None:
        turn.say("Accept or reject? Use the buttons of the list ('review taught phrases').")
        return
    try:
        done = rt.stores.taught.review(taught_id, status, who.person)
    except TeachingError as exc:
        turn.say(f"I can't accept {taught_id}: {exc} Reject it instead; nothing changed.")
        return
    if done is None:
        turn.say(f"{taught_id} is not waiting for review (any more); nothing changed.")
        return
    rt.store.audit(None, f"taught_{status}", actor=who.person, channel=who.channel,
                   detail={"id": done.id, "text": done.text, "intent": done.intent})
    if status == REJECTED:
        turn.say(f"Rejected {done.id}: \"{_short(done.text)}\" stays unlearned.")
        return
    try:
        write_accepted(rt.project, [(done.intent, done.example)], intents=offerable())
    except TeachingError as exc:
        turn.say(f"Accepted {done.id}, but {exc}")
        return
    started = rt.retrain()
    turn.say(f"Accepted {done.id}: \"{_short(done.text)}\" means {done.intent}. "
             + ("Retraining now; I'll understand it in a moment, without a restart."
                if started else "Run 'opsbot train --reload' to use it."))


def _short(text: str, limit: int = 80) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"

