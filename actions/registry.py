"""Where intents meet their code: one ``IntentKind`` per ops intent, built-in or team-defined.

The extension API (README, "Layout"): a kind says how a request is handled (answers,
asks, or proposes an operation), how a confirmed change is executed (exactly once),
which backend it talks to, how its end is announced and who follows it while it runs.

- Built-in intents register themselves when their module is imported:
  ``register(IntentKind("deploy", handler=deploy, executor=..., backend="Jenkins"))``
  in ``jenkins_flows``, ``jira_flows`` and ``logs_flows``.
- Team-defined operations (``operations/*.yml``) come from a *provider*, a function that
  returns the current kinds (``actions.operations.flow`` adds one): files can change while
  opsbot runs, and a provider is asked again on every lookup.

Risk and roles come from ``policy.yml``; a kind's ``risk`` is used when no rule names its
intent (team-defined operations: known people may run them, strangers may not).
This module imports no flow: flows import it, never the other way round.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from actions._runtime import Runtime
    from actions.guard import Operation
    from actions.turn import Turn

__all__ = ["Executor", "Handler", "IntentKind", "Outcome", "add_provider", "executors",
           "handlers", "kind_of", "kinds", "register", "register_all"]


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


@dataclass(frozen=True)
class IntentKind:
    """One ops intent: its handler and, for a change, everything that runs after the yes."""

    intent: str
    handler: Handler
    executor: Executor | None = None
    backend: str = "the backend"
    # Button titles and teaching ("did you mean: restart a service?").
    title: str = ""
    # Default risk when no policy.yml rule names the intent; None: a rule is required.
    risk: str | None = None
    # Reads are answered at once, shown only if the policy allowed them, and audited.
    read: bool = False
    # What opsbot says when a followed operation has ended (None: a generic sentence).
    completion: Completion | None = None
    # Who follows an operation the executor left running (``Outcome.follow``).
    follow: Follower | None = None
    # Entities this intent reads beyond the built-in ones (its parameters).
    entities: tuple[str, ...] = ()
    # Where it is defined: "built-in", or the operation file.
    source: str = "built-in"
    # A short sentence for requests ("restart payments on prod"); None: OpsRequest.describe.
    describe: Callable[[Mapping[str, str]], str] | None = None
    # What a restarted action server does with an operation of this kind it finds still
    # executing (None: the watcher follows it, as a build).
    resume: Callable[[Operation], None] | None = None


_registered: dict[str, IntentKind] = {}
_providers: list[Callable[[], Mapping[str, IntentKind]]] = []


def register(kind: IntentKind) -> IntentKind:
    """Add a built-in kind; a second kind for the same intent is a programming error."""
    current = _registered.get(kind.intent)
    if current is not None and current is not kind:
        raise ValueError(f"the intent {kind.intent} is registered twice "
                         f"({current.source} and {kind.source})")
    _registered[kind.intent] = kind
    return kind


def register_all(handlers: Mapping[str, Handler], executors: Mapping[str, Executor] | None = None,
                 *, backend: str, read: frozenset[str] = frozenset(),
                 completion: Completion | None = None, follow: Follower | None = None) -> None:
    """Register a module's built-in intents at once (its ``HANDLERS`` and ``EXECUTORS``)."""
    for intent, handler in handlers.items():
        register(IntentKind(intent, handler, (executors or {}).get(intent), backend=backend,
                            read=intent in read, completion=completion, follow=follow))


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


def handlers() -> dict[str, Handler]:
    """Every ops intent's handler."""
    return {intent: kind.handler for intent, kind in kinds().items()}


def executors() -> dict[str, Executor]:
    """Every change intent's executor."""
    return {intent: kind.executor for intent, kind in kinds().items() if kind.executor}
