"""What every opsbot chat connector shares: settings, payloads, stale buttons, state.

* Settings come from credentials.yml (``${VAR}`` placeholders) or, for a key the
  section leaves out, from the environment; :func:`setting` reads one and says which
  variable to set when a required one is missing.
* A button is a Rasa payload (``/affirm{"operation_id": ...}``); :func:`operation_of`
  finds the operation it decides.
* opsbot's actions send, with their replies, the operations the reply concerns and
  their states (``opsbot_operations``). :class:`ButtonBook` remembers which chat
  message carries buttons for which operation in which state, and says which ones are
  stale after a turn, so a connector can edit them away before anyone presses them.
* In a group, choice buttons ("which service?", "did you mean ...?") answer the person
  who was asked: :func:`claim_keyboard` notes whose they are, :func:`pressed_by_other`
  tells a connector to refuse someone else's press. Buttons that decide an operation
  need no owner: the guard binds those to their requester and says so in the chat.
* :func:`split_text` cuts a long reply into pieces a chat takes, at paragraphs, lines or
  words (:func:`first_piece`: one message's worth, marked "…" where it was cut);
  :func:`stow_payload` keeps a button payload too long for a chat's button behind a short
  key in the store (:func:`unstow_payload` brings it back); :class:`Lanes` keeps what is
  sent to one chat in order.
* :func:`stores` are opsbot's stores (``OPSBOT_DB_URL`` or the state directory);
  :func:`channel_store` is the part where connectors keep conversation references,
  long button payloads and the ids of updates already handled, so a restart or a
  second replica changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import math
import os
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from rasa.core.channels.channel import OutputChannel
from rasa.shared.exceptions import RasaException

from actions._redact import add_secret, is_secret_name

if TYPE_CHECKING:  # pragma: no cover
    from actions.storage import ChannelState
    from actions.stores import Stores

__all__ = [
    "NOT_YOURS",
    "OPEN_STATES",
    "OPERATIONS_KEY",
    "ButtonBook",
    "ConnectorConfigError",
    "Lanes",
    "ReplyChannel",
    "agent_ready",
    "channel_store",
    "claim_keyboard",
    "decision_note",
    "first_piece",
    "is_event_message",
    "known_person",
    "mark_event_message",
    "operation_of",
    "operation_states",
    "operations_changed",
    "pressed_by_other",
    "refuse_forged_payload",
    "retry_after_seconds",
    "setting",
    "split_text",
    "stores",
    "stow_payload",
    "unstow_payload",
]

# The same key as actions.turn.OPERATIONS_KEY (tests check they agree).
OPERATIONS_KEY = "opsbot_operations"
OPEN_STATES = frozenset({"pending_confirmation", "pending_approval"})
NOT_YOURS = ("Those buttons answer someone else's question, so nothing was done. "
             "Ask me yourself and you get your own.")
_OWNER_KIND = "keyboard-owner"
CLAIMS_KEPT = timedelta(days=7)
_claims_pruned = float("-inf")

_L = TypeVar("_L")


class ConnectorConfigError(RasaException):
    """A connector's settings are missing or wrong; the message names the fix."""


def setting(credentials: Mapping[str, Any] | None, key: str, variable: str, *,
            default: str | None = None, required: bool = False) -> str | None:
    """``credentials[key]``, else the environment's ``variable``, else ``default``."""
    value = (credentials or {}).get(key)
    if value is None or str(value).strip() == "":
        value = os.environ.get(variable)
    text = str(value).strip() if value is not None else ""
    if text:
        if is_secret_name(variable):
            add_secret(text)  # a token written into credentials.yml is masked in logs too
        return text
    if required:
        raise ConnectorConfigError(
            f"{variable} is not set. Set it in the environment (credentials.yml reads it as "
            f"${{{variable}}}) or give '{key}' in the connector's section of credentials.yml."
        )
    return default


def operation_of(payload: str | None) -> str | None:
    """The operation id a button payload decides (``/affirm{"operation_id": "op-1"}``)."""
    if not payload or not payload.startswith("/") or "{" not in payload:
        return None
    try:
        entities = json.loads(payload[payload.index("{"):])
    except ValueError:
        return None
    value = entities.get("operation_id") if isinstance(entities, dict) else None
    return str(value) if value else None


def claim_keyboard(location: str, owner: str, payloads: Iterable[str]) -> None:
    """Note that the choice buttons of the group message at ``location`` answer ``owner``
    (a conversation id). A keyboard of operation buttons only is not noted. Claims older
    than ``CLAIMS_KEPT`` are dropped (at most once an hour): by then nobody is waiting
    for an answer, and a press on such a keyboard counts as anyone's."""
    global _claims_pruned
    if not any(operation_of(p) is None for p in payloads):
        return
    store = channel_store()
    store.remember(_OWNER_KIND, location, {"owner": owner})
    if time.monotonic() - _claims_pruned > 3600:
        _claims_pruned = time.monotonic()
        store.forget_older(_OWNER_KIND, datetime.now(UTC) - CLAIMS_KEPT)


def pressed_by_other(location: str, presser: str, payload: str) -> bool:
    """True if ``presser`` pressed a choice button of a message sent to someone else."""
    if operation_of(payload) is not None:
        return False
    claimed = channel_store().recall(_OWNER_KIND, location)
    if not claimed:
        return False
    return claimed.get("owner") != presser


def operation_states(message: Mapping[str, Any]) -> dict[str, str]:
    """The ``{operation id: state}`` a bot message reports (empty if none)."""
    states: dict[str, str] = {}
    for item in message.get(OPERATIONS_KEY) or ():
        if isinstance(item, Mapping) and item.get("id") and item.get("state"):
            states[str(item["id"])] = str(item["state"])
    return states


def operations_changed(message: Mapping[str, Any]) -> set[str]:
    """The operations a bot message's turn moved to another state: a button press whose
    turn moved none changed nothing (it was someone else's, a second one, a late one)."""
    return {str(item["id"]) for item in message.get(OPERATIONS_KEY) or ()
            if isinstance(item, Mapping) and item.get("id") and item.get("changed") is True}


_NOTES = {
    "executing": "confirmed; running",
    "succeeded": "done",
    "failed": "ran and failed",
    "error": "failed to start",
    "cancelled": "cancelled",
    "expired": "expired",
    "superseded": "replaced by a newer request",
    "refused": "refused",
    "pending_approval": "confirmed; waiting for a second approver",
}


def decision_note(state: str) -> str:
    """A few words for a retired button message: what became of its operation."""
    return _NOTES.get(state, state.replace("_", " "))


@dataclass
class _Entry(Generic[_L]):
    location: _L
    operation_id: str
    state: str | None


class ButtonBook(Generic[_L]):
    """Which sent messages carry buttons for which operation, and in what state it was.

    ``_L`` is the connector's way to find a message again (a Telegram chat and message
    id, a Teams conversation and activity id). Thread-safe; bounded (the oldest entries
    go first), because a button nobody pressed is harmless once it expires.
    """

    def __init__(self, limit: int = 5000) -> None:
        self._lock = threading.Lock()
        self._entries: list[_Entry[_L]] = []
        self._limit = limit

    def track(self, location: _L, payloads: Iterable[str], states: Mapping[str, str]) -> None:
        """Remember ``location`` if one of its button ``payloads`` decides an operation."""
        with self._lock:
            for operation_id in dict.fromkeys(filter(None, map(operation_of, payloads))):
                self._entries.append(_Entry(location, operation_id, states.get(operation_id)))
            del self._entries[:-self._limit]

    def stale(self, states: Mapping[str, str]) -> list[tuple[_L, str]]:
        """Messages whose operation is now in another state: ``(location, new state)``.

        They are forgotten here; the caller edits their buttons away. A message sent
        in the same state (the preview itself, a refused click by someone else) stays.
        """
        found: list[tuple[_L, str]] = []
        with self._lock:
            keep: list[_Entry[_L]] = []
            for entry in self._entries:
                state = states.get(entry.operation_id)
                if state is not None and state != entry.state:
                    if all(entry.location != seen for seen, _ in found):
                        found.append((entry.location, state))
                else:
                    keep.append(entry)
            self._entries = keep
        return found

    def forget(self, location: _L) -> None:
        with self._lock:
            self._entries = [e for e in self._entries if e.location != location]


class ReplyChannel(OutputChannel, ABC):
    """Rasa's output channel for a connector: every kind of reply becomes ``deliver``.

    It also collects, per turn, the operation states the replies reported (``states``),
    the operations the turn moved (``changed``) and the replies' texts (``sent``), for the
    connector to retire stale buttons afterwards.
    """

    def __init__(self) -> None:
        self.states: dict[str, str] = {}
        self.changed: set[str] = set()
        self.sent: list[str] = []

    @abstractmethod
    async def deliver(self, recipient_id: str, text: str, buttons: list[dict[str, Any]],
                      states: Mapping[str, str]) -> None:
        """Send one reply (text, and buttons if any) to the conversation."""

    async def send_text_message(self, recipient_id: str, text: str, **kwargs: Any) -> None:
        await self._reply(recipient_id, text, [], kwargs)

    async def send_text_with_buttons(self, recipient_id: str, text: str,
                                     buttons: list[dict[str, Any]], **kwargs: Any) -> None:
        await self._reply(recipient_id, text, buttons, kwargs)

    async def send_quick_replies(self, recipient_id: str, text: str,
                                 quick_replies: list[dict[str, Any]], **kwargs: Any) -> None:
        await self._reply(recipient_id, text, quick_replies, kwargs)

    async def send_image_url(self, recipient_id: str, image: str, **kwargs: Any) -> None:
        await self._reply(recipient_id, image, [], kwargs)

    async def send_attachment(self, recipient_id: str, attachment: Any, **kwargs: Any) -> None:
        await self._reply(recipient_id, str(attachment), [], kwargs)

    async def send_custom_json(self, recipient_id: str, json_message: dict[str, Any],
                               **kwargs: Any) -> None:
        text = json_message.get("text") if isinstance(json_message, dict) else None
        if text:
            await self._reply(recipient_id, str(text), [], kwargs)

    async def _reply(self, recipient_id: str, text: str, buttons: list[dict[str, Any]],
                     extra: Mapping[str, Any]) -> None:
        states = operation_states(extra)
        self.states.update(states)
        self.changed |= operations_changed(extra)
        self.sent.append(text or "")
        await self.deliver(recipient_id, text or "", buttons, states)


def retry_after_seconds(value: str | None) -> float | None:
    """Seconds a ``Retry-After`` header asks for: delta-seconds (whole or, as some servers
    send, fractional) or an HTTP date (RFC 9110 section 10.2.3); None without a readable
    one. Never negative: a date in the past means now."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    return max(0.0, seconds) if math.isfinite(seconds) else None


def split_text(text: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """``text`` in pieces of at most ``limit`` (as ``measure`` counts: characters, UTF-16
    units, escaped length), cut at paragraphs, lines or words, in order, nothing dropped
    but the whitespace at the cuts."""
    pieces: list[str] = []
    rest = text.strip()
    while measure(rest) > limit:
        window = rest[:limit]
        while len(window) > 1 and measure(window) > limit:  # characters counting more than one
            window = window[:max(1, min(len(window) - 1, len(window) * limit // measure(window)))]
        cut = max(window.rfind("\n\n"), window.rfind("\n"))
        if cut < len(window) // 2:
            cut = window.rfind(" ")
        if cut < len(window) // 2:
            cut = len(window)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    if rest:
        pieces.append(rest)
    return pieces


def first_piece(text: str, limit: int, measure: Callable[[str], int] = len) -> str:
    """What fits one message of ``text`` (an event's message is one message, edited in
    place): all of it, or its first piece ending in "…" so nobody takes it for all."""
    pieces = split_text(text, limit, measure)
    if len(pieces) <= 1:
        return pieces[0] if pieces else "…"
    return split_text(text, limit - measure("…"), measure)[0] + "…"


LONG_PAYLOAD = "~"  # button data that starts with this is a key into the store


async def stow_payload(kind: str, payload: str, fits: Callable[[str], bool]) -> str:
    """What a button carries for ``payload``: the payload itself if it ``fits`` the chat's
    button, else ``~`` and a key under which the store keeps it (``kind``: the chat's)."""
    if fits(payload) and not payload.startswith(LONG_PAYLOAD):
        return payload
    key = hashlib.sha256(payload.encode()).hexdigest()[:24]
    await asyncio.to_thread(channel_store().remember, kind, key, {"payload": payload})
    return LONG_PAYLOAD + key


async def unstow_payload(kind: str, data: str) -> str | None:
    """The payload a button carried (:func:`stow_payload`); None when the store lost it."""
    if not data.startswith(LONG_PAYLOAD):
        return data or None
    stored = await asyncio.to_thread(channel_store().recall, kind, data[1:])
    return str(stored["payload"]) if stored and stored.get("payload") else None


async def mark_event_message(kind: str, key: str) -> None:
    """Note that the message ``key`` carries an event (an alert, a red build): pressing one
    of its buttons leaves them for whoever else wants them."""
    await asyncio.to_thread(channel_store().remember, kind, key, {"event": True})


async def is_event_message(kind: str, key: str) -> bool:
    """Whether :func:`mark_event_message` noted ``key`` (an unknown answer: no)."""
    try:
        return await asyncio.to_thread(channel_store().recall, kind, key) is not None
    except Exception:  # noqa: BLE001 - unknown: treat it as an ordinary message
        return False


class Lanes:
    """One asyncio lock per key (a chat, a person's conversation), dropped when nobody
    holds or waits for it.

    asyncio locks wake their waiters first come, first served, so what was started in
    order (turns, the parts of replies) runs in that order.
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users <= 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


def agent_ready(app: Any) -> bool:
    """Whether the Rasa server ``app`` has loaded its model (a connector that fetches its
    own updates waits for it: Rasa offers no event to await)."""
    agent = getattr(getattr(app, "ctx", None), "agent", None)
    return bool(agent is not None and agent.is_ready())


_stores_lock = threading.Lock()
_stores: Stores | None = None


def stores() -> Stores:
    """opsbot's stores, opened once per process (``OPSBOT_DB_URL`` or the state dir)."""
    global _stores
    with _stores_lock:
        if _stores is None:
            from actions.stores import Stores

            _stores = Stores.from_env()
        return _stores


def channel_store() -> ChannelState:
    """What the connectors remember, in opsbot's store."""
    return stores().channel_state


async def refuse_forged_payload(channel: str, user: str, text: str, reason: str) -> None:
    """Record a button payload that opsbot did not sign (or that was edited): nothing runs."""
    import asyncio
    import logging

    logging.getLogger(__name__).warning(
        "refused a forged button payload from %s:%s (%s)", channel, user, reason)
    try:
        await asyncio.to_thread(stores().operations.audit, None, "forged_payload",
                                actor=f"{channel}:{user}", channel=channel,
                                detail={"payload": text[:500], "reason": reason})
    except Exception:  # noqa: BLE001 - the refusal stands even if the audit cannot be written
        logging.getLogger(__name__).exception("could not audit a forged payload")


_policy_lock = threading.Lock()
_policy: Any = None


def known_person(channel: str, user_id: str) -> bool:
    """Whether policy.yml names the person behind ``user_id`` on ``channel``."""
    global _policy
    with _policy_lock:
        if _policy is None:
            from pathlib import Path

            from actions.guard.policy import Policy

            _policy = Policy.from_env(Path(os.environ.get("OPSBOT_PROJECT") or Path.cwd()))
        policy = _policy
    return bool(policy.knows(policy.person(channel, user_id)))
