"""Webhook delivery: updates POSTed one at a time, in order, with the secret token,
retried with a growing delay.

Why apart: it runs in its own thread, beside the HTTP server, and only reads the
state's queue.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from simulators.telegram._model import _Pending, _Webhook
from simulators.telegram._state import _State


class _Deliverer:
    """Posts queued updates to the webhook from one thread, oldest first, retrying failures."""

    def __init__(self, state: _State, retry_delay: float, max_attempts: int,
                 timeout: float) -> None:
        self.state = state
        self.retry_delay = retry_delay
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.thread: threading.Thread | None = None

    def start(self) -> None:
        if self.thread is not None and self.thread.is_alive():
            return
        self.thread = threading.Thread(target=self._run, name="telegram-webhook", daemon=True)
        self.thread.start()

    def join(self) -> None:
        if self.thread is not None:
            self.thread.join(timeout=2)
            self.thread = None

    def _next(self) -> tuple[_Pending, _Webhook] | None:
        """Wait for something to deliver; None when stopping."""
        state = self.state
        with state.changed:
            while not state.stopping:
                hook = state.webhook
                wait = state.retry_at - time.monotonic()
                if hook is not None and state.pending and wait <= 0:
                    item = min(state.pending, key=lambda p: p.update["update_id"])
                    return item, hook
                state.changed.wait(wait if hook is not None and state.pending else None)
            return None

    def _run(self) -> None:
        state = self.state
        while (job := self._next()) is not None:
            item, hook = job
            status, error = self._post(hook, item.update)
            with state.changed:
                update_id = item.update["update_id"]
                attempt = state.attempts.get(update_id, 0) + 1
                state.deliveries.append({"update_id": update_id, "url": hook.url,
                                         "attempt": attempt, "status": status, "error": error,
                                         "at": time.time()})
                done = error is None or attempt >= self.max_attempts
                if error is not None:
                    hook.last_error_date = state.now()
                    hook.last_error_message = error
                    state.retry_at = time.monotonic() + min(
                        self.retry_delay * 2 ** (attempt - 1), 30.0) if not done else 0.0
                if done:
                    state.attempts.pop(update_id, None)
                    state.pending = [p for p in state.pending if p is not item]
                else:
                    state.attempts[update_id] = attempt
                state.changed.notify_all()

    def _post(self, hook: _Webhook, update: dict[str, Any]) -> tuple[int | None, str | None]:
        """One delivery: the status (None without an answer) and an error for the info."""
        parts = urlsplit(self.state.routed(hook.url))
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        headers = {"Content-Type": "application/json"}  # exactly this: PTB refuses anything else
        if hook.secret:
            headers["X-Telegram-Bot-Api-Secret-Token"] = hook.secret
        body = json.dumps(update, ensure_ascii=False).encode()
        connection: http.client.HTTPConnection
        if parts.scheme.lower() == "https":
            connection = http.client.HTTPSConnection(
                parts.hostname or "", parts.port, timeout=self.timeout,
                context=ssl.create_default_context())
        else:
            connection = http.client.HTTPConnection(parts.hostname or "", parts.port,
                                                    timeout=self.timeout)
        try:
            connection.request("POST", path, body=body, headers=headers)
            answer = connection.getresponse()
            answer.read()
        except TimeoutError:
            return None, "Read timeout expired"
        except ConnectionRefusedError:
            return None, "Connection refused"
        except (OSError, http.client.HTTPException) as exc:
            return None, f"Connection error: {exc}"
        finally:
            connection.close()
        if 200 <= answer.status < 300:
            return answer.status, None
        return answer.status, f"Wrong response from the webhook: {answer.status} {answer.reason}"
