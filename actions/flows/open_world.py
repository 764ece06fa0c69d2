"""What opsbot says when it cannot do what was asked, or does not know what was named.

Why: a tool that holds production credentials must not turn "scale checkout to 4
replicas" into a Confirm button for checkout's CI build. When the NLU finds a request
outside what opsbot does (``out_of_scope``, or not sure and out of scope the likeliest),
the answer says so, says what opsbot *can* do with the things the request names, and how
a team turns the request into an operation. When a request is understood but names a
service or job opsbot has never heard of ("upgrade postgres to 16 on staging"), the
answer says that name is unknown instead of asking "Which service?" as if none was given.

Either way the request is kept as a wish (``actions.wishes``): what people keep asking
for and cannot get is the team's automation backlog (``opsbot wishes``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rapidfuzz import fuzz, process

from actions.backends.jenkins import JENKINS
from actions.catalog import ENVIRONMENTS, Catalog
from actions.confirmations import permitted
from actions.errors import OpsbotError
from actions.registry import IntentKind, kinds
from actions.turn import Turn
from actions.wishes import record_wish

__all__ = ["OUT_OF_SCOPE", "Unknown", "cannot_do", "is_out_of_scope", "unknown_name",
           "unknown_words"]

OUT_OF_SCOPE = "out_of_scope"
UNSEEN_WORDS_KEY = "unseen_words"  # nlu.Vocabulary's output; the action server loads no nlu
# The entities that name things opsbot acts on, and how a sentence names each kind.
_NOUNS = {"service": "service", "job": "job", "project": "Jira project",
          "issue_key": "issue", "environment": "environment"}
_MOST_LISTED = 8
# Words that are never the name of a service or job, though a model may not have learnt
# them: function words and the filler of chat requests.
_NEVER_NAMES = frozenset("""
a about above after again all also am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from
further had has have having he her here hers him his how i if in into is it its itself
just me more most my myself no nor not now of off on once only or other our ours out over
own same she should so some such than that the their them then there these they this
those through to too under until up very was we were what when where which while who
whom why will with would you your yours where's what's who's how's when's it's that's
there's let's i'm i'd i'll i've you're we're they're isn't aren't wasn't weren't don't
doesn't didn't can't couldn't won't wouldn't shouldn't please pls plz thanks thank ok
okay hey hi yo asap quickly right thing things stuff something anything everything
one ones again already still yet maybe just really actually currently today tonight
tomorrow yesterday morning afternoon evening week weekend
""".split())


def is_out_of_scope(message: Mapping[str, Any]) -> bool:
    """The NLU's verdict: out of scope, or not sure (fallback) with out of scope likeliest."""
    intent = (message.get("intent") or {}).get("name")
    if intent == OUT_OF_SCOPE:
        return True
    ranked = [r.get("name") for r in message.get("intent_ranking") or []
              if r.get("name") != "nlu_fallback"]
    return intent == "nlu_fallback" and bool(ranked) and ranked[0] == OUT_OF_SCOPE


def _named(entities: Mapping[str, str]) -> list[tuple[str, str]]:
    """(entity, value) of the things the request names, in ``_NOUNS`` order."""
    return [(name, value) for name in _NOUNS
            for value in [entities.get(name)] if value]


def _acting_on(entity: str, every: Mapping[str, IntentKind]) -> list[str]:
    """The titles of the intents that act on an ``entity`` ("deploy a version", ...)."""
    return [kind.title for kind in every.values() if entity in kind.acts_on and kind.title]


def cannot_do(turn: Turn) -> None:
    """Say that opsbot cannot do this, what it can do with what was named, and how a team
    makes it an operation; record the wish."""
    every = kinds()
    lines = ["I can't do that: it is not one of my operations, and I won't guess at "
             "another one."]
    offered: set[str] = set()
    for entity, value in _named(turn.request.entities):
        titles = [t for t in _acting_on(entity, every) if t not in offered]
        if titles:
            offered.update(titles)
            lines.append(f"With {value} I can: {_listed(titles)}.")
    if not offered:
        lines.append("Say \"help\" to see what I can do.")
    lines.append("If your team does this by hand, it can become an operation: "
                 "`opsbot operations new NAME` writes one to fill in. I've added your request "
                 "to the list of things people asked me for (`opsbot wishes`).")
    turn.say(" ".join(lines))
    record_wish(turn, turn.request.text)


def _listed(titles: Sequence[str]) -> str:
    shown = list(titles[:_MOST_LISTED])
    more = len(titles) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more else "")


# Where a name goes: after these words ("errors from zookeeper", "the logs of the cobol
# batch"), before these ("the loyalty service"), and an environment at the end ("to uat").
_BEFORE_A_NAME = frozenset({"from", "of", "for"})
_AFTER_A_NAME = frozenset({"service", "job", "pipeline", "app", "api", "build", "builds"})
_BEFORE_AN_ENVIRONMENT = frozenset({"on", "in", "to", "into"})


@dataclass(frozen=True)
class Unknown:
    """Words of a request that stand where a name should, which opsbot never learnt."""

    words: tuple[str, ...]
    noun: str  # "service", "service or job", "environment"
    # True: the request needs a name and gave none but these words; several of them
    # are no name but a request opsbot cannot do.
    instead_of_object: bool = False


def unknown_words(kind: IntentKind, text: str, entities: Mapping[str, str],
                  unseen: Sequence[str]) -> Unknown | None:
    """The words of ``text`` that stand where a name of what ``kind`` acts on should be,
    among the words the NLU never learnt (``unseen``), less values and words that are
    never names; None when the request names nothing unknown."""
    objects = [e for e in kind.acts_on if e in ("service", "job")]
    if not objects:
        return None
    values = " ".join(str(v).lower() for v in entities.values())
    candidates = [w for w in unseen if w not in _NEVER_NAMES and w not in values]
    if not candidates:
        return None
    named = any(entities.get(e) for e in (*kind.acts_on, "service", "job"))
    if kind.needs_object and not named:
        return Unknown(tuple(candidates), " or ".join(_NOUNS[e] for e in objects), True)
    words = [w for w in (t.strip(".,;:!?\"'()").lower() for t in text.split()) if w]
    for i, word in enumerate(words):
        if word not in candidates:
            continue
        before = words[i - 2] if i > 1 and words[i - 1] == "the" else (
            words[i - 1] if i else "")
        after = words[i + 1] if i + 1 < len(words) else ""
        if not named and (before in _BEFORE_A_NAME or after in _AFTER_A_NAME):
            return Unknown((word,), _NOUNS[objects[0]])
        last = i + 1 == len(words)
        if not entities.get("environment") and before in _BEFORE_AN_ENVIRONMENT and last:
            return Unknown((word,), "environment")
    return None


async def unknown_name(turn: Turn, kind: IntentKind, message: Mapping[str, Any]) -> bool:
    """For a request of ``kind`` that holds, where a name should be, a word opsbot never
    learnt: say the name is unknown, with the closest known ones (or, with several such
    words instead of a name it needs, that opsbot cannot do it). True when it answered."""
    found = unknown_words(kind, turn.request.text, turn.request.entities,
                          message.get(UNSEEN_WORDS_KEY) or [])
    if found is None:
        return False
    if found.instead_of_object and len(found.words) > 1:
        cannot_do(turn)
        return True
    name = found.words[0]
    if found.noun == "environment":
        closest = list(ENVIRONMENTS)
        hint = f" The environments are {', '.join(closest)}."
    else:
        closest = await _closest(turn, name, [e for e in kind.acts_on if e in ("service", "job")])
        hint = f" The closest I know: {', '.join(closest)}." if closest else ""
    article = "an" if found.noun[0] in "aeiou" else "a"
    turn.say(f"I don't know {article} {found.noun} called \"{name}\", so nothing ran.{hint}")
    record_wish(turn, turn.request.text)
    return True


async def _closest(turn: Turn, name: str, objects: Sequence[str]) -> list[str]:
    """Known services or jobs that look like ``name`` (Jenkins' job list), best first."""
    jenkins = turn.runtime.backends.get(JENKINS)
    if jenkins is None:
        return []
    try:
        catalog = Catalog(await jenkins.jobs(), turn.runtime.services.job_claims())
    except OpsbotError:
        return []  # the answer is still right without suggestions
    asked = "service" if "service" in objects else "job"
    pool = sorted(catalog.services if asked == "service" else catalog.jobs)
    # Only what this person could ask for is shown (as every list of choices is).
    pool = permitted(turn, turn.request.intent, asked, pool)
    found = process.extract(name, pool, scorer=fuzz.WRatio, limit=3, score_cutoff=60)
    return [match for match, _score, _index in found]
