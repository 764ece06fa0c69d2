"""Where intents meet their code: one ``IntentKind`` per intent, built-in or team-defined.

A kind is the one declaration of an intent: how a request is handled (answers, asks,
or proposes an operation), how a confirmed change is executed (exactly once), which
backend it talks to, how it is named in buttons, previews, refusals and teaching, and
how its end is announced. Every consumer (the actions, the guard's refusals, teaching,
help, the trainer) reads these facts from here; nothing keeps a table keyed by intent.

- Built-in intents are declared beside their handlers, as each flow module's
  ``INTENTS`` tuple (``actions.flows``), and installed explicitly by whoever starts
  opsbot's actions (``actions.intents.install``): importing a module registers nothing.
- Team-defined operations (``operations/*.yml``) come from a *provider*, a function that
  returns the current kinds: files can change while opsbot runs, so a provider is asked
  again on every lookup.

Risk and roles come from ``policy.yml``; a kind's ``risk`` is used when no rule names its
intent. This module imports no flow: flows import it, never the other way round.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from actions._runtime import Runtime
    from actions.guard import Operation
    from actions.turn import Turn

__all__ = ["Completion", "Describe", "Executor", "Follower", "Handler", "IntentKind", "Outcome",
           "add_provider", "kind_of", "kinds", "offerable", "register"]


@dataclass(frozen=True)
class Outcome:
    """What an executor did: the reply, a backend reference, and whether it is followed."""

    reply: str
    ref: dict[str, Any] = field(default_factory=dict)
    follow: bool = False  # True: the operation keeps running; its kind's follower reports the end
    # True: the request was sent but its answer lost, so whether it happened is not known;
    # the operation goes to ``unknown`` and (with ``follow``) the watcher finds out.
    unknown: bool = False
    # The result recorded for a finished operation: SUCCESS, or why not (FAILED, EXIT_3 ...).
    result: str = "SUCCESS"
    # Extra audit detail for the finished row (output, exit code, duration ...).
    audit: dict[str, Any] = field(default_factory=dict)

    @property
    def succeeded(self) -> bool:
        return self.result == "SUCCESS"


Handler = Callable[["Turn"], Awaitable[None]]
Executor = Callable[["Runtime", "Operation"], Awaitable[Outcome]]
Completion = Callable[["Operation"], str]
Follower = Callable[[str, "Mapping[str, Any] | None"], None]
Describe = Callable[[Mapping[str, str]], str]


@dataclass(frozen=True)
class IntentKind:
    """One intent: its handler and how it is named and, for a change, everything that runs
    after the yes.

    ``handler`` None: the intent is answered by the dialogue itself (a response in
    ``domain.yml`` such as ``utter_greet``, or an action of its own such as ``action_help``);
    it is declared for its title and its aliases, which teaching offers.
    """

    intent: str
    handler: Handler | None
    # "deploy a version": buttons, "did you mean", teaching, help.
    title: str
    # "Deploying": how a refusal names the request ("Deploying to prod needs ...").
    gerund: str = ""
    # The word before the environment in a refusal: "Deploying to prod", "Rolling back on prod".
    preposition: str = "on"
    # "deploy payments 2.4.1 to prod", from the request's entities: previews, "I understood".
    describe: Describe | None = None
    executor: Executor | None = None
    backend: str = "the backend"
    # Default risk when no policy.yml rule names the intent; None: a rule is required.
    risk: str | None = None
    # Reads are answered at once, shown only if the policy allowed them, and audited.
    read: bool = False
    # A bare value typed after opsbot asked ("prod", "2.4.1") may be the answer to this
    # intent's question: the NLU often takes such a word for this intent.
    answers: bool = False
    # Words that name the intent when someone teaches a phrasing ("ship" means deploy).
    aliases: tuple[str, ...] = ()
    # What opsbot says when a followed operation has ended (None: a generic sentence).
    completion: Completion | None = None
    # Who follows an operation the executor left running (``Outcome.follow``).
    follow: Follower | None = None
    # Entities this intent reads beyond the built-in ones (its parameters).
    entities: tuple[str, ...] = ()
    # The entities that name what it acts on ("service", "job", "issue_key"): the answer
    # to a request opsbot cannot do lists what it can do with the things named.
    acts_on: tuple[str, ...] = ()
    # It asks for a service or job when none is named ("Which service?"): a request for
    # it that holds a word opsbot never learnt is told that name is unknown instead.
    needs_object: bool = False
    # Where it is defined: "built-in", or the operation file.
    source: str = "built-in"
    # What a restarted action server does with an operation of this kind it finds still
    # executing (None: the watcher follows it, as a build).
    resume: Callable[[Operation], None] | None = None

    def doing(self) -> str:
        """How a refusal names the request: the gerund, or "The operation <intent>"."""
        return self.gerund or f"The operation {self.intent}"


_registered: dict[str, IntentKind] = {}
_providers: list[Callable[[], Mapping[str, IntentKind]]] = []


def register(kinds_: Iterable[IntentKind]) -> None:
    """Add built-in kinds; a second kind for the same intent is a programming error."""
    for kind in kinds_:
        current = _registered.get(kind.intent)
        if current is not None and current is not kind:
            raise ValueError(f"the intent {kind.intent} is declared twice "
                             f"({current.source} and {kind.source})")
        _registered[kind.intent] = kind


def add_provider(provider: Callable[[], Mapping[str, IntentKind]]) -> None:
    """Add a source of kinds that may change at run time (team-defined operations)."""
    if provider not in _providers:
        _providers.append(provider)


def kinds() -> dict[str, IntentKind]:
    """Every kind now: the built-ins, then what providers add (never replacing a built-in)."""
    result = dict(_registered)
    for provider in _providers:
        for intent, kind in provider().items():
            result.setdefault(intent, kind)
    return result


def kind_of(intent: str) -> IntentKind | None:
    kind = _registered.get(intent)
    if kind is not None:
        return kind
    for provider in _providers:
        found = provider().get(intent)
        if found is not None:
            return found
    return None


def offerable() -> dict[str, str]:
    """Intents a person can teach or choose, with their titles: the built-ins first, then
    the team-defined operations."""
    return {intent: kind.title for intent, kind in kinds().items() if kind.title}
