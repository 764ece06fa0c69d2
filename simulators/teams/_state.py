"""The Teams simulator's state: conversations, what the bot sent, issued tokens and the
throttling windows.

Why apart: everything that changes, under one lock; the HTTP face and the public face
change it only through here.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

from simulators._base import Faults, RequestLog
from simulators.teams._model import CHANNEL_ID, THREAD_LIMITS, USERS, RecordedRequest, TeamsUser


@dataclass
class _Sent:
    """An activity the bot sent, in its current state."""

    id: str
    conversation: str
    activity: dict[str, Any]
    deleted: bool = False


@dataclass
class _Conversation:
    id: str
    kind: str  # personal | channel | groupChat
    members: list[str]  # user keys


class _State:
    """Everything the simulator remembers; guarded by ``lock`` (``changed`` wakes waiters)."""

    def __init__(self, tenant_id: str) -> None:
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.faults = Faults()
        self.log: RequestLog[RecordedRequest] = RequestLog()
        self.users: dict[str, TeamsUser] = dict(USERS)
        self.conversations: dict[str, _Conversation] = {}
        for user in self.users.values():
            self.add_personal(user)
        self.conversations[CHANNEL_ID] = _Conversation(CHANNEL_ID, "channel", list(self.users))
        self.sent: dict[str, _Sent] = {}  # by activity id, in sending order
        self.events: list[dict[str, Any]] = []
        self.inbound: list[dict[str, Any]] = []
        self.tokens: dict[str, float] = {}  # outbound access token -> expiry (epoch seconds)
        self.tenant_id = tenant_id
        self.thread_limits: dict[str, tuple[tuple[float, int], ...]] = dict(THREAD_LIMITS)
        self.recent: dict[tuple[str, str], deque[float]] = {}  # (scenario, thread) -> times
        self.throttles: list[list[Any]] = []  # [remaining, retry_after, path]
        self._last_id = 0

    def admit(self, scenario: str, thread: str, path: str) -> int | None:
        """None if the Connector API takes one more ``scenario`` operation on ``thread``
        now (and counts it), else the seconds the bot must wait (its Retry-After)."""
        with self.lock:
            for throttle in self.throttles:
                remaining, retry_after, wanted = throttle
                if wanted is None or wanted in path:
                    throttle[0] = remaining - 1
                    if throttle[0] <= 0:
                        self.throttles.remove(throttle)
                    return int(retry_after)
            limits = self.thread_limits.get(scenario)
            if not limits:
                return None
            now = time.monotonic()
            times = self.recent.setdefault((scenario, thread), deque())
            longest = max(period for period, _ in limits)
            while times and now - times[0] >= longest:
                times.popleft()
            wait = 0.0
            for period, allowed in limits:
                inside = [t for t in times if now - t < period]
                if len(inside) >= allowed:
                    # room again once the oldest operation that fills the window leaves it
                    wait = max(wait, inside[-allowed] + period - now)
            if wait > 0:
                return max(1, math.ceil(wait))
            times.append(now)
            return None

    def add_personal(self, user: TeamsUser) -> None:
        cid = user.personal_conversation
        self.conversations[cid] = _Conversation(cid, "personal", [user.key])

    def next_id(self) -> str:
        """A Teams-like activity id (epoch milliseconds), unique and increasing."""
        with self.lock:
            self._last_id = max(self._last_id + 1, int(time.time() * 1000))
            return str(self._last_id)

    def conversation(self, cid: str) -> _Conversation | None:
        """The conversation for an id; a channel thread id resolves to its channel."""
        found = self.conversations.get(cid)
        if found is None and ";messageid=" in cid:
            base = self.conversations.get(cid.split(";", 1)[0])
            if base is not None and base.kind == "channel":
                return base
        return found

    def user(self, ident: str) -> TeamsUser | None:
        """A user by key, 29: id, AAD object id or UPN."""
        lowered = ident.lower()
        return next((u for u in self.users.values()
                     if lowered in (u.key, u.id.lower(), u.aad_object_id, u.email)), None)


def _matches(conversation: str | None, cid: str, state: _State) -> bool:
    if conversation is None:
        return True
    if conversation == "channel":
        return cid.split(";", 1)[0] == CHANNEL_ID
    if conversation == "personal":
        found = state.conversations.get(cid)
        return found is not None and found.kind == "personal"
    if conversation in state.users:
        return cid == state.users[conversation].personal_conversation
    if ";" not in conversation and ";messageid=" in cid:
        return cid.split(";", 1)[0] == conversation
    return cid == conversation
