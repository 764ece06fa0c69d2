"""Where events go: the conversation a chat message came from, and ``subscriptions.yml``.

A subscription belongs to a conversation, keyed by channel:

* ``telegram:<chat id>`` or ``telegram:<chat id>/<topic id>`` (a forum topic): the chat
  or thread, shared by everyone in it;
* ``teams:<conversation id>``: the Teams chat or channel conversation;
* ``slack:<channel id>``: the Slack channel (or direct message), shared by everyone in it;
* ``rest:<sender>``: one person's REST or terminal conversation.

``subscriptions.yml`` (in the project, or ``OPSBOT_SUBSCRIPTIONS``) declares routes that
always hold, for channels that should get certain events whoever asked::

    routes:
      - name: payments-oncall          # shown in "what are we subscribed to?"
        telegram: -1001234567890       # or "-1001234567890/42" for a forum topic
        sources: [alerts]              # alerts, builds, checks, alertmanager, grafana,
                                       # jenkins, github; left out: all
        service: payments
        environment: prod
        severity: critical
        kinds: [failure]               # failure (with its recovery), recovery, all
        buttons: [restart_service]     # team-defined operations offered on the message
      - teams: "19:abc@thread.tacv2"
        sources: [checks]
        service: checkout
      - slack: C0123456789             # a Slack channel id
        sources: [builds]

The file is read when the server starts; a mistake names the route and the field, and
no route of a broken file is used.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from actions.events.store import EventStore, Filters, Subscription
from actions.guard.identity import conversation_scope

__all__ = ["CHANNELS", "RouteError", "conversation_of", "load_routes", "read_routes",
           "routes_path"]

CHANNELS = ("telegram", "teams", "slack", "rest")
_FIELDS = {"name", "sources", "service", "job", "environment", "severity", "kinds",
           "buttons", *CHANNELS}


class RouteError(ValueError):
    """subscriptions.yml is not as documented; the message names the route and the fix."""


def conversation_of(channel: str | None, sender: str,
                    metadata: Mapping[str, Any] | None) -> tuple[str, str, dict[str, Any]]:
    """(conversation key, channel, address) for a message from ``sender`` on ``channel``."""
    meta = metadata or {}
    if channel == "telegram" and meta.get("chat_id") is not None:
        chat = int(meta["chat_id"])
        thread = meta.get("thread_id")
        key = f"telegram:{chat}" + (f"/{int(thread)}" if thread else "")
        return key, "telegram", {"chat_id": chat, "thread_id": int(thread) if thread else None}
    if channel == "teams" and meta.get("conversation_id"):
        conversation = str(meta["conversation_id"])
        return f"teams:{conversation}", "teams", {"conversation_id": conversation,
                                                   "sender": sender}
    if channel == "slack" and meta.get("slack_channel"):
        slack = str(meta["slack_channel"])
        return f"slack:{slack}", "slack", {"channel": slack}
    return f"rest:{sender}", "rest", {"sender": sender}


def chat_of(channel: str, address: Mapping[str, Any]) -> str:
    """The chat a subscription's messages go to, as the connector that shows them names it
    (``actions.guard.identity.conversation_scope``): event buttons are bound to it."""
    if channel == "telegram" and address.get("chat_id") is not None:
        return conversation_scope(channel, int(address["chat_id"]))
    if channel == "teams" and address.get("conversation_id"):
        return conversation_scope(channel, str(address["conversation_id"]))
    if channel == "slack" and address.get("channel"):
        return conversation_scope(channel, str(address["channel"]))
    return conversation_scope("rest", str(address.get("sender") or ""))


def routes_path(project: Path | None = None) -> Path:
    given = os.environ.get("OPSBOT_SUBSCRIPTIONS")
    if given:
        return Path(given).expanduser()
    return (project or Path(os.environ.get("OPSBOT_PROJECT") or Path.cwd())) / \
        "subscriptions.yml"


def _strings(route: Mapping[str, Any], key: str, where: str) -> list[str]:
    value = route.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise RouteError(f"{where}: '{key}' must be a word or a list of words.")


def _target(route: Mapping[str, Any], where: str) -> tuple[str, str, dict[str, Any]]:
    named = [c for c in CHANNELS if route.get(c) not in (None, "")]
    if len(named) != 1:
        raise RouteError(f"{where}: give exactly one of telegram (a chat id), teams (a "
                         "conversation id), slack (a channel id) or rest (a sender).")
    channel = named[0]
    value = str(route[channel]).strip()
    if channel == "telegram":
        chat, _, thread = value.partition("/")
        try:
            chat_id, thread_id = int(chat), int(thread) if thread else None
        except ValueError:
            raise RouteError(f"{where}: telegram must be a chat id such as -1001234567890, "
                             f"or chat/topic such as -1001234567890/42; not {value!r}.") from None
        return conversation_of("telegram", "", {"chat_id": chat_id, "thread_id": thread_id})
    if channel == "teams":
        return f"teams:{value}", "teams", {"conversation_id": value}
    if channel == "slack":
        if not re.match(r"^[CGD][A-Z0-9]{2,}$", value):
            raise RouteError(f"{where}: slack must be a channel id such as C0123456789 (a "
                             f"channel's About tab shows it), not {value!r}.")
        return conversation_of("slack", "", {"slack_channel": value})
    return f"rest:{value}", "rest", {"sender": value}


def read_routes(path: Path) -> list[Subscription]:
    """The routes in ``path`` (none if it does not exist); RouteError for a broken file."""
    if not path.is_file():
        return []
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise RouteError(f"{path} is not YAML: {exc}") from None
    routes = data.get("routes") if isinstance(data, dict) else None
    if routes is None:
        routes = []
    if not isinstance(routes, list):
        raise RouteError(f"{path}: 'routes' must be a list of routes.")
    found: list[Subscription] = []
    for index, route in enumerate(routes, 1):
        where = f"{path}, route {index}"
        if not isinstance(route, dict):
            raise RouteError(f"{where}: a route is a mapping (telegram: ..., sources: ...).")
        unknown = sorted(set(route) - _FIELDS)
        if unknown:
            raise RouteError(f"{where}: unknown field(s) {', '.join(unknown)}; a route takes "
                             f"{', '.join(sorted(_FIELDS))}.")
        name = str(route.get("name") or f"route {index}")
        where = f"{path}, route {name!r}"
        conversation, channel, address = _target(route, where)
        try:
            filters = Filters.build(
                sources=_strings(route, "sources", where),
                service=_one(route, "service", where), job=_one(route, "job", where),
                environment=_one(route, "environment", where),
                severity=_one(route, "severity", where),
                kinds=_strings(route, "kinds", where))
        except ValueError as exc:
            raise RouteError(f"{where}: {exc}") from None
        found.append(Subscription(
            id=f"file-{index}", conversation=conversation, channel=channel, address=address,
            filters=filters, buttons=tuple(_strings(route, "buttons", where)),
            origin=f"file:{name}", created_by="subscriptions.yml"))
    return found


def _one(route: Mapping[str, Any], key: str, where: str) -> str | None:
    value = route.get(key)
    if value is None:
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        return str(value)
    raise RouteError(f"{where}: '{key}' must be one word, such as a name.")


def load_routes(store: EventStore, path: Path | None = None) -> int:
    """Make the store's file routes those of ``subscriptions.yml``; how many there are."""
    return store.replace_routes(read_routes(path or routes_path()))
