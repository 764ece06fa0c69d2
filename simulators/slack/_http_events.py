"""HTTP mode: what Slack POSTs to the app's Request URL (events, interactions, slash
commands, the ``url_verification`` challenge), signed, and retried as Slack retries.

Why apart: it runs in threads of its own, beside the HTTP server, and touches the state
only to record what happened.

* Every request is signed (api.slack.com/authentication/verifying-requests-from-slack):
  ``X-Slack-Request-Timestamp: <unix seconds>`` and ``X-Slack-Signature: v0=<hex
  HMAC-SHA256 of "v0:<timestamp>:<body>" keyed with the signing secret>``.
* Events are JSON ``event_callback`` envelopes; interactions are a form with one field,
  ``payload=<JSON>`` (api.slack.com/interactivity/handling#payloads); slash commands
  are form fields (api.slack.com/interactivity/slash-commands#app_command_handling).
  All three go to the one Request URL given.
* The app must answer ``200 OK`` within 3 seconds (``ack_timeout``). An event that is
  not answered so is retried up to 3 times, "nearly immediately, then after 1 minute,
  then after 5 minutes" (``retry_delays``), each retry with ``X-Slack-Retry-Num`` (1, 2,
  3) and ``X-Slack-Retry-Reason`` (``http_timeout``, ``http_error``,
  ``connection_failed``, ``unknown_error``); a late answer is not waited for. A non-200
  answer with ``X-Slack-No-Retry: 1`` ends the retries (api.slack.com/apis/events-api,
  "Failure conditions", "Turning retries off").
* Interactions and commands are not retried: a late button press leaves the person
  with an error, a late command shows them ``/opsbot failed with the error
  "operation_timeout"``. A command's 200 body is its immediate answer (an ephemeral,
  or a message with ``response_type: in_channel``).

Deliberate difference: redirects are followed as urllib follows them (Slack follows
two at the most).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

from simulators.slack._model import VERIFICATION_TOKEN, Forgery, Outgoing
from simulators.slack._state import _State

_USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """Slack's ``v0`` request signature of ``body`` sent at ``timestamp``."""
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def _wire(item: Outgoing) -> tuple[bytes, str]:
    """The body and Content-Type of ``item`` as Slack posts it."""
    if item.kind == "events_api":
        return json.dumps(item.payload).encode(), "application/json"
    fields = {"payload": json.dumps(item.payload)} if item.kind == "interactive" else item.payload
    return urlencode(fields).encode(), "application/x-www-form-urlencoded"


class _Answer:
    """What one POST got back: the status (None without one), body, and why it failed."""

    def __init__(self, status: int | None, body: bytes = b"", content_type: str = "",
                 reason: str | None = None, no_retry: bool = False) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.reason = reason  # an X-Slack-Retry-Reason, None when answered 200
        self.no_retry = no_retry

    def parsed(self) -> Any:
        """The body as JSON when it says so (or looks so), else as text."""
        text = self.body.decode("utf-8", "replace")
        if "json" in self.content_type or text.lstrip().startswith("{"):
            try:
                return json.loads(text)
            except ValueError:
                return text
        return text


class _HttpSender:
    """Posts each delivery from a thread of its own (Slack does not keep them in order)."""

    def __init__(self, state: _State, signing_secret: str, events_url: str | None,
                 ack_timeout: float, retry_delays: Sequence[float]) -> None:
        self.state = state
        self.signing_secret = signing_secret
        self.events_url = events_url
        self.ack_timeout = ack_timeout
        self.retry_delays = tuple(retry_delays)
        self.stopping = threading.Event()
        self.threads: set[threading.Thread] = set()
        self.threads_lock = threading.Lock()

    def start(self) -> None:
        self.stopping.clear()

    def stop(self) -> None:
        self.stopping.set()
        with self.threads_lock:
            threads = list(self.threads)
        for thread in threads:
            thread.join(timeout=self.ack_timeout + 1)

    def send(self, item: Outgoing) -> None:
        thread = threading.Thread(target=self._deliver, args=(item,), daemon=True,
                                  name=f"slack-delivery:{item.id[:12]}")
        with self.threads_lock:
            self.threads.add(thread)
        thread.start()

    def verify_url(self, url: str) -> bool:
        """Slack's ``url_verification`` request: True when the app echoes the challenge
        (as plain text, JSON ``{"challenge": ...}`` or a form);
        api.slack.com/events/url_verification."""
        challenge = secrets.token_urlsafe(36)
        body = json.dumps({"token": VERIFICATION_TOKEN, "challenge": challenge,
                           "type": "url_verification"}).encode()
        answer = self._post(url, body, "application/json", None, {})
        if answer.status != 200:
            return False
        echoed = answer.parsed()
        if isinstance(echoed, dict):
            echoed = echoed.get("challenge")
        elif isinstance(echoed, str) and echoed.startswith("challenge="):
            echoed = echoed.split("=", 1)[1]
        return echoed == challenge

    def _deliver(self, item: Outgoing) -> None:
        try:
            retries = len(self.retry_delays) if item.kind == "events_api" else 0
            reason: str | None = None
            for attempt in range(retries + 1):
                if attempt and self.stopping.wait(self.retry_delays[attempt - 1]):
                    return
                url = self.events_url
                entry = self.state.record(item, transport="http", attempt=attempt,
                                          retry_reason=reason, status=None, error=None)
                if url is None:
                    self.state.complete(entry, error="no events_url set")
                    return
                extra = {"X-Slack-Retry-Num": str(attempt), "X-Slack-Retry-Reason": reason or ""} \
                    if attempt else {}
                body, content_type = _wire(item)
                answer = self._post(url, body, content_type, item.forgery, extra)
                self.state.complete(entry, status=answer.status, error=answer.reason,
                                    acknowledged=answer.reason is None)
                if answer.reason is None:
                    if item.kind == "slash_commands":
                        self.state.answered_command(item, answer.parsed())
                    return
                if answer.no_retry:
                    break
                reason = answer.reason
            if item.kind == "slash_commands":
                self.state.command_timed_out(item)
        finally:
            with self.threads_lock:
                self.threads.discard(threading.current_thread())

    def _post(self, url: str, body: bytes, content_type: str, forgery: Forgery | None,
              extra: dict[str, str]) -> _Answer:
        forgery = forgery or Forgery()
        timestamp = str(int(self.state.now() - forgery.timestamp_age))
        secret = "not-" + self.signing_secret if forgery.bad_signature else self.signing_secret
        headers = {"Content-Type": content_type, "User-Agent": _USER_AGENT, **extra}
        if not forgery.unsigned:
            headers["X-Slack-Request-Timestamp"] = timestamp
            headers["X-Slack-Signature"] = sign(secret, timestamp, body)
        request = urllib.request.Request(url, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.ack_timeout) as response:
                status, answer_body = response.status, response.read()
                answer_type = response.headers.get("Content-Type") or ""
                no_retry = response.headers.get("X-Slack-No-Retry") == "1"
        except urllib.error.HTTPError as error:
            with error:
                return _Answer(error.code, error.read(), reason="http_error",
                               no_retry=error.headers.get("X-Slack-No-Retry") == "1")
        except TimeoutError:
            return _Answer(None, reason="http_timeout")
        except urllib.error.URLError as error:
            timed_out = isinstance(error.reason, TimeoutError)
            return _Answer(None, reason="http_timeout" if timed_out else "connection_failed")
        except OSError:
            return _Answer(None, reason="unknown_error")
        if status != 200:
            return _Answer(status, answer_body, answer_type, "http_error", no_retry)
        return _Answer(status, answer_body, answer_type)
