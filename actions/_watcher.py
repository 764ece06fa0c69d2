"""Follows started builds to the end and tells their conversation, unprompted.

Why a thread with its own event loop: rasa_sdk owns the action server's loop and
gives actions no hook for background work, and a build outlives the action that
started it. The watcher keeps no state of its own: what to follow is the store's
``executing`` operations, so after a restart of the action server it picks up
where the last one stopped (``ensure_started`` resumes them).

When a build ends, the operation moves to its final state (compare-and-set, so two
watchers cannot both finish it) and the Rasa server is asked to run
``action_notify_operations`` in the requester's conversation
(``POST /conversations/<id>/execute``), which records the message in the tracker and
pushes it through the conversation's latest channel when that channel can push.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Coroutine
from datetime import datetime, timezone
from typing import Any

from actions import _runtime
from actions.errors import BackendError, OpsbotError
from actions.guard import EXECUTING, FAILED, SUCCEEDED, ERROR, Operation

logger = logging.getLogger(__name__)

NOTIFY_ACTION = "action_notify_operations"
_GIVE_UP_AFTER = 6 * 3600.0  # a build nobody can see for six hours is reported as lost


def _poll_seconds() -> float:
    try:
        return max(0.05, float(os.environ.get("OPSBOT_WATCH_POLL") or 2.0))
    except ValueError:
        return 2.0


class Watcher:
    """Follows executing operations in a daemon thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._following: set[str] = set()
        self._lock = threading.Lock()

    def ensure_started(self) -> None:
        """Start the thread once, and resume every operation the store says is executing."""
        with self._lock:
            if self._loop is not None:
                return
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="opsbot-watcher", daemon=True)
            thread.start()
            self._loop = loop
        try:
            for operation in _runtime.runtime().store.executing():
                self.follow(operation.id)
        except OpsbotError:
            logger.exception("could not resume executing operations")

    def follow(self, operation_id: str) -> None:
        """Follow one operation's build until it ends (no-op if already followed)."""
        self.ensure_started()
        with self._lock:
            if operation_id in self._following:
                return
            self._following.add(operation_id)
        assert self._loop is not None
        self._submit(self._follow(operation_id))

    def _submit(self, coroutine: Coroutine[Any, Any, None]) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _follow(self, operation_id: str) -> None:
        try:
            await self._follow_build(operation_id)
        except Exception:  # noqa: BLE001 - a watcher must never die silently
            logger.exception("following operation %s failed", operation_id)
        finally:
            with self._lock:
                self._following.discard(operation_id)

    async def _follow_build(self, operation_id: str) -> None:
        rt = _runtime.runtime()
        store, jenkins = rt.store, rt.jenkins
        operation = store.get(operation_id)
        if operation is None or operation.state != EXECUTING or jenkins is None:
            return
        ref = operation.backend_ref
        job, queue_id, number = ref.get("job"), ref.get("queue_id"), ref.get("build_number")
        if not job or (queue_id is None and number is None):
            self._finish(operation, ERROR, "interrupted",
                         "opsbot stopped before it could see whether Jenkins took the build; "
                         "check the job in Jenkins.")
            return
        poll = _poll_seconds()
        started = asyncio.get_running_loop().time()
        failures = 0
        while True:
            try:
                if number is None:
                    build = await jenkins.wait_for_build(int(queue_id), poll=poll,
                                                         timeout=_GIVE_UP_AFTER)
                    number = build.number
                    store.update_backend_ref(operation_id, build_number=number, url=build.url)
                build = await jenkins.build(str(job), int(number))
                failures = 0
                if not build.building:
                    break
            except BackendError as exc:
                failures += 1
                if asyncio.get_running_loop().time() - started > _GIVE_UP_AFTER:
                    self._finish(operation, ERROR, "lost", f"Lost track of the build: {exc}")
                    return
                logger.warning("following %s: %s (attempt %d)", operation_id, exc, failures)
                if "cancelled" in str(exc).lower() and number is None:
                    self._finish(operation, FAILED, "CANCELLED",
                                 "The build was cancelled in the Jenkins queue before it started.")
                    return
            await asyncio.sleep(min(30.0, poll * (2 ** min(failures, 4))))
        result = build.result or "UNKNOWN"
        detail = None
        if result != "SUCCESS":
            try:
                report = await jenkins.failure_report(str(job), int(number))
                detail = report.summary
                if report.stage:
                    detail = f"failed in stage {report.stage}: {detail}"
            except BackendError as exc:
                detail = f"(could not read the console: {exc})"
        self._finish(operation, SUCCEEDED if result == "SUCCESS" else FAILED, result, detail,
                     duration_s=build.duration_s, build_url=build.url)

    def _finish(self, operation: Operation, state: str, result: str, detail: str | None,
                **ref: Any) -> None:
        rt = _runtime.runtime()
        if ref:
            rt.store.update_backend_ref(operation.id, **ref)
        won = rt.store.transition(
            operation.id, {EXECUTING}, state, actor="jenkins", event="finished",
            detail={"result": result, "detail": detail},
            result=result, result_detail=detail, finished_at=datetime.now(timezone.utc),
        )
        if won is not None:
            threading.Thread(target=notify, args=(operation.sender_id,), daemon=True,
                             name="opsbot-notify").start()


_PCHAR = "!$&'()*+,;=:@-._~"


def notify(sender_id: str) -> bool:
    """Ask the Rasa server to deliver pending completion messages in ``sender_id``'s conversation."""
    rt = _runtime.runtime()
    # Rasa's Sanic routes do not percent-decode the conversation id, so the characters a
    # path segment may hold as they are stay as they are (connectors keep to those).
    url = (f"{rt.rasa_url}/conversations/{urllib.parse.quote(sender_id, safe=_PCHAR)}/execute"
           "?output_channel=latest")
    body = json.dumps({"name": NOTIFY_ACTION}).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    token = os.environ.get("OPSBOT_RASA_TOKEN")
    if token:
        request.full_url = f"{url}&token={urllib.parse.quote(token)}"
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
        return True
    except (urllib.error.URLError, OSError) as exc:
        # The message is not lost: the next action in that conversation delivers it.
        logger.warning("could not reach the Rasa server at %s to notify %s: %s",
                       rt.rasa_url, sender_id, exc)
        return False


WATCHER = Watcher()
