"""subscribe, unsubscribe, list_subscriptions: which events a conversation is told of.

"tell this channel when nightly-integration fails", "notify me about alerts for payments
in prod", "post the results of PR checks on the checkout repo here". A subscription
belongs to the conversation the request came from (the Telegram chat or topic, the Teams
conversation, one person's REST or terminal chat; ``actions.events.routes``) and is
kept in opsbot's store (``actions.events.store``). ``policy.yml`` decides who may
subscribe (a rule on the ``subscribe`` intent); every subscription and removal is
audited like a read.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Any

from actions.backends.jenkins import JENKINS
from actions.confirmations import check_read, record_read
from actions.events.routes import conversation_of
from actions.events.store import EventStore, Filters, Subscription
from actions.guard.store import OperationStore
from actions.registry import Describe, Handler, IntentKind
from actions.requests import events_in_words, phrase
from actions.turn import Turn

__all__ = ["EVENT_ENTITIES", "INTENTS", "list_subscriptions", "subscribe", "unsubscribe"]

EVENT_ENTITIES = ("event_source", "event_kind", "severity", "subscription_id")

# Words for sources and kinds, for what the entity extractor leaves out ("alerts and
# checks": two sources in one sentence).
_SOURCE_WORDS = (
    (re.compile(r"\b(alerts?|alarms?|pages?|paging|incidents?)\b", re.I), "alerts"),
    (re.compile(r"\b(alertmanager|prometheus)\b", re.I), "alertmanager"),
    (re.compile(r"\bgrafana\b", re.I), "grafana"),
    (re.compile(r"\b(checks?|pull requests?|PRs?|github|workflows?)\b", re.I), "checks"),
    (re.compile(r"\b(builds?|jenkins|pipelines?|jobs?)\b", re.I), "builds"),
)
_ALL_WORDS = re.compile(r"\b(every|each|all)\s+(results?|builds?|runs?|checks?)\b|"
                        r"\bresults\b", re.I)
_RECOVERY_WORDS = re.compile(r"\b(green again|back to green|recover\w*|fixed|resolved)\b",
                             re.I)
_EVERYTHING = re.compile(r"\b(all|everything|every\s+\w+)\b", re.I)

_stores: dict[int, EventStore] = {}
_stores_lock = threading.Lock()


def event_store(store: OperationStore) -> EventStore:
    """The outbox in ``store``'s database (one per store)."""
    with _stores_lock:
        found = _stores.get(id(store))
        if found is None or found.database is not store.database:
            found = _stores[id(store)] = EventStore(store.database)
        return found


def _conversation(turn: Turn) -> tuple[str, str, dict[str, Any]]:
    who = turn.who
    meta = dict(turn.metadata)
    if who.channel == "telegram":
        # The chat comes from the conversation id the connector signed, not from metadata.
        parts = who.sender_id.split(":")
        if len(parts) == 3 and parts[1].lstrip("-").isdigit():
            meta["chat_id"] = int(parts[1])
    elif who.channel == "slack":
        # The channel comes from the conversation id the connector signed (slack:<channel>:<user>).
        parts = who.sender_id.split(":")
        meta["slack_channel"] = parts[1] if len(parts) == 3 and parts[1] else None
    return conversation_of(who.channel, who.sender_id, meta)


def _sources(turn: Turn) -> list[str]:
    given = [v.lower() for v in turn.request.values("event_source")]
    found: list[str] = list(dict.fromkeys(given))
    for pattern, source in _SOURCE_WORDS:
        if pattern.search(turn.request.text) and source not in found:
            found.append(source)
    # "alerts" covers Alertmanager and Grafana; naming one of them narrows it.
    if {"alertmanager", "grafana"} & set(found) and "alerts" in found \
            and "alerts" not in given:
        found.remove("alerts")
    return found


def _kinds(turn: Turn) -> list[str]:
    given = [v.lower() for v in turn.request.values("event_kind")]
    if given:
        return given
    if _ALL_WORDS.search(turn.request.text):
        return ["all"]
    if _RECOVERY_WORDS.search(turn.request.text):
        return ["failure"]  # "when it is green again": the failure and its recovery
    return []


def _filters(turn: Turn) -> Filters:
    request = turn.request
    sources = _sources(turn)
    job = request.get("job")
    if job and not sources:
        sources = ["builds"]
    return Filters.build(sources=sources, service=request.get("service"), job=job,
                         environment=request.get("environment"),
                         severity=request.get("severity"), kinds=_kinds(turn))


def _short_id(subscription: Subscription) -> str:
    return subscription.id if subscription.origin != "chat" else subscription.id[:6]


def _line(subscription: Subscription) -> str:
    where = ("declared in subscriptions.yml" if subscription.origin != "chat"
             else f"id {_short_id(subscription)}, by {subscription.created_by}")
    return f"- {subscription.filters.describe()} ({where})"


def _not_connected(filters: Filters) -> str:
    """A note when the events asked for cannot arrive yet (their source is off)."""
    sources = filters.sources or frozenset({"alertmanager", "grafana", "github", "jenkins"})
    missing = []
    if sources & {"alertmanager", "grafana"} and not os.environ.get("OPSBOT_EVENTS_TOKEN"):
        missing.append("alerts need OPSBOT_EVENTS_TOKEN (Alertmanager and Grafana send it)")
    if "github" in sources and not os.environ.get("GITHUB_WEBHOOK_SECRET"):
        missing.append("GitHub checks need GITHUB_WEBHOOK_SECRET (the webhook's secret)")
    if not missing:
        return ""
    return " Note: " + "; ".join(missing) + ", set where opsbot runs."


async def subscribe(turn: Turn) -> None:
    try:
        filters = _filters(turn)
    except ValueError as exc:
        turn.say(f"{exc} Nothing was subscribed.")
        return
    if not (filters.sources or filters.service or filters.job or filters.severity):
        turn.say("What should I tell this chat about? For example: \"tell us when payments "
                 "alerts fire in prod\", \"post the checkout repo's PR checks here\" or \"tell "
                 "this channel when nightly-integration fails\".")
        return
    jenkins = turn.runtime.backends.get(JENKINS)
    if filters.job and jenkins is not None:
        from actions.catalog import resolve_name

        jobs = [job.full_name for job in await jenkins.jobs()]
        found = resolve_name(filters.job, jobs)
        if found.match is None:
            turn.say(f"Jenkins has no job called \"{filters.job}\". Jobs: "
                     f"{', '.join(sorted(jobs)[:15]) or 'none'}. Nothing was subscribed.")
            return
        filters = Filters.from_dict({**filters.as_dict(), "job": found.match.lower()})
    conversation, channel, address = _conversation(turn)
    record_read(turn, {"conversation": conversation, "what": filters.describe(),
                       "service": filters.service or "", "job": filters.job or "",
                       "environment": filters.environment or ""})
    store = event_store(turn.runtime.store)
    subscription, created = store.subscribe(
        conversation=conversation, channel=channel, address=address, filters=filters,
        created_by=turn.who.person)
    here = "this chat" if channel != "rest" else "you"
    if not created:
        turn.say(f"{here.capitalize()} already get{'s' if here != 'you' else ''} "
                 f"{filters.describe()} (id {_short_id(subscription)}).")
        return
    note = _not_connected(filters)
    turn.say(f"Subscribed: {here} will get {filters.describe()}. To stop, say \"unsubscribe "
             f"{_short_id(subscription)}\".{note}")


async def list_subscriptions(turn: Turn) -> None:
    conversation, _channel, _address = _conversation(turn)
    record_read(turn, {"conversation": conversation})
    found = event_store(turn.runtime.store).subscriptions(conversation)
    if not found:
        turn.say("This conversation is subscribed to nothing. Say, for example, \"tell us "
                 "when payments alerts fire in prod\" or \"post the checkout repo's PR checks "
                 "here\".")
        return
    turn.say(f"This conversation gets {len(found)} kind{'s' if len(found) > 1 else ''} of "
             "event:\n" + "\n".join(_line(s) for s in found))


def _matching(found: list[Subscription], turn: Turn) -> list[Subscription]:
    request = turn.request
    wanted = [v.lower() for v in request.values("subscription_id")]
    if not wanted:
        wanted = [w for w in re.findall(r"\b([0-9a-f]{4,16})\b", request.text.lower())
                  if any(s.id.startswith(w) for s in found)]
    if wanted:
        return [s for s in found if any(s.id.lower().startswith(w) for w in wanted)]
    sources: set[str] = set()
    for name in _sources(turn):
        sources |= Filters.build(sources=[name]).sources
    service, job = request.get("service"), request.get("job")
    environment = request.get("environment")
    named = bool(sources or service or job or environment)
    if not named:
        return list(found) if _EVERYTHING.search(request.text) or len(found) == 1 else []

    def fits(s: Subscription) -> bool:
        f = s.filters
        return all((
            not sources or not f.sources or bool(f.sources & sources),
            not service or (f.service or "") == service.lower(),
            not job or (f.job or "") == job.lower(),
            not environment or (f.environment or "") == environment.lower(),
        ))

    return [s for s in found if fits(s)]


async def unsubscribe(turn: Turn) -> None:
    conversation, _channel, _address = _conversation(turn)
    check_read(turn, {"conversation": conversation})  # before it lists anything
    store = event_store(turn.runtime.store)
    found = store.subscriptions(conversation)
    if not found:
        turn.say("This conversation is subscribed to nothing, so there is nothing to stop.")
        return
    chosen = _matching(found, turn)
    if not chosen:
        chat_made = [s for s in found if s.origin == "chat"]
        turn.say("Which one should I stop?\n" + "\n".join(_line(s) for s in found),
                 [turn.button(f"Stop {s.filters.describe()}"[:64], "unsubscribe",
                         {"subscription_id": s.id}) for s in chat_made[:8]])
        return
    declared = [s for s in chosen if s.origin != "chat"]
    removable = [s for s in chosen if s.origin == "chat"]
    record_read(turn, {"conversation": conversation,
                       "subscriptions": ",".join(s.id for s in removable)})
    removed = store.unsubscribe(conversation, [s.id for s in removable])
    lines = []
    if removed:
        lines.append("Stopped: " + "; ".join(s.filters.describe() for s in removed) + ".")
    if declared:
        lines.append("Declared in subscriptions.yml, so an admin changes it there: "
                     + "; ".join(s.filters.describe() for s in declared) + ".")
    turn.say(" ".join(lines) or "Nothing was stopped.")


def _declare(intent: str, handler: Handler, title: str, gerund: str, describe: Describe,
             aliases: tuple[str, ...], acts_on: tuple[str, ...] = ("service", "job")) -> IntentKind:
    """A subscriptions intent: answered at once and audited like a read."""
    return IntentKind(intent, handler, title, gerund, describe=describe,
                      backend="opsbot's event outbox", read=True, aliases=aliases,
                      entities=EVENT_ENTITIES, acts_on=acts_on)


INTENTS = (
    _declare("subscribe", subscribe, "post events in this chat",
             "Subscribing a chat to events",
             lambda e: phrase("subscribe:", events_in_words(e) or "events"),
             ("notify", "alert me", "tell us when")),
    _declare("unsubscribe", unsubscribe, "stop posting events here",
             "Unsubscribing a chat from events",
             lambda e: phrase("unsubscribe from", " and ".join(
                 v for v in (e.get("subscription_id") or "").split(",") if v)
                 or events_in_words(e) or "this conversation's subscriptions"),
             ("mute", "stop notifications", "stop posting")),
    _declare("list_subscriptions", list_subscriptions, "what this chat is subscribed to",
             "Listing a chat's subscriptions",
             lambda e: "list this conversation's subscriptions", ("subscriptions",), acts_on=()),
)
