"""Webhooks as GitHub sends them when checks, runs and pull requests change.

Why apart: delivering is a thread of its own, and the payloads and signing are
``simulators.events``' (``github_check_run``, ``github_workflow_run``, ``github_pull_request``,
``post_event`` with ``X-GitHub-Event``, ``X-GitHub-Delivery`` and ``X-Hub-Signature-256``).
GitHub posts each event once and does not retry a failed delivery by itself
(docs.github.com/en/webhooks/using-webhooks/handling-failed-webhook-deliveries); neither
does this sender. It looks at the state every ``interval`` seconds and after every API
request, so events follow the clock, whoever moves it.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from simulators.events import post_event
from simulators.github._state import _State


class _Webhooks:
    """Posts the state's outbox to ``{events_url}/webhooks/events/github``."""

    def __init__(self, state: _State, events_url: str | None, secret: str | None,
                 interval: float = 0.1) -> None:
        self.state = state
        self.events_url = events_url
        self.secret = secret
        self.interval = interval
        self.deliveries: list[dict[str, Any]] = []
        self.changed = threading.Condition()
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.events_url is None or self._thread is not None:
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._loop, name="github-webhooks", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is not None:
            self._stopping.set()
            self._wake.set()
            thread.join(timeout=5)

    def poke(self) -> None:
        """Look now (after an API request: a dispatch, a merge, a push)."""
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.interval)
            self._wake.clear()
            with self.state.lock:
                self.state.tick(emit=True)
                pending, self.state.outbox = self.state.outbox, []
            for event, payload in pending:
                self._send(event, payload)

    def _send(self, event: str, payload: dict[str, Any]) -> None:
        assert self.events_url is not None
        delivery = str(uuid.uuid4())
        try:
            status, _ = post_event(self.events_url, "github", payload, secret=self.secret,
                                   delivery=delivery, event=event, timeout=10)
            error = None
        except OSError as exc:  # GitHub records the failure and moves on
            status, error = None, str(exc)
        with self.changed:
            self.deliveries.append({"event": event, "action": payload.get("action"),
                                    "delivery": delivery, "status": status, "error": error,
                                    "payload": payload})
            self.changed.notify_all()
