"""Follows started builds to the end and tells their conversation, unprompted.

Why a thread with its own event loop: rasa_sdk owns the action server's loop and
gives actions no hook for background work, and a build outlives the action that
started it. The watcher keeps no state of its own: what to follow is the store's
``executing`` operations, so after a restart of the action server it picks up
where the last one stopped (``ensure_started`` resumes them).

An operation whose start is ``unknown`` (Jenkins' answer was lost, or opsbot stopped
between claiming and recording it) is reconciled first: the watcher looks for the build
by its ``OPSBOT_OPERATION`` parameter (or, on a job without one, by time, parameters and
opsbot's Jenkins user), follows it when found, and after ``OPSBOT_RECONCILE_WINDOW``
seconds with nothing found reports that Jenkins did not start it.

A build Jenkins was asked to stop but that still ran when the stop was answered is
followed too, until Jenkins says it has ended (ABORTED, or finished otherwise).

With several action servers (replicas) sharing the store, each operation is followed by
exactly one of them at a time, the holder of its lease ``operation:<id>`` in the store
(``actions.storage.leases``). The replica that confirms an operation takes its lease
before it claims the execution key, and renews it every ``OPSBOT_LEASE_SECONDS`` / 4
seconds (default 20 s) while it runs or follows it. Every replica scans the store's
executing operations as often: one whose lease has run out (its replica died) is taken
over, followed from where the store says it is, or, for a command that ran inside the
dead replica, reported as interrupted. So a replica that dies loses its operations within
``OPSBOT_LEASE_SECONDS``, and no replica marks another's in-flight operation as
interrupted. A replica's name is ``OPSBOT_REPLICA_ID`` (the action server sets it to
host and port): a restarted action server takes its own leases back at once.

When a build ends, the operation moves to its final state (compare-and-set, so two
watchers cannot both finish it) and the Rasa server is asked to run
``action_notify_operations`` in the requester's conversation
(``POST /conversations/<id>/execute``), which records the message in the tracker and
pushes it through the conversation's latest channel when that channel can push.

While the store or Jenkins is down, each loop (the scan, each operation followed) waits
longer between attempts, up to a cap, and logs one line when it goes down, one every
few minutes while it stays down, and one when it is back (``actions.backoff``); an
operation followed when the store fails is followed again, from the store's state, once
it answers.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
import os
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from actions import _runtime, metrics
from actions.backends.jenkins import JENKINS, OPERATION_PARAMETER, Build, JenkinsBackend
from actions.backoff import Backoff
from actions.catalog import duration
from actions.errors import BackendError, OpsbotError
from actions.guard import (
    ERROR,
    EXECUTING,
    FAILED,
    SUCCEEDED,
    UNKNOWN,
    Operation,
    StoreError,
)
from actions.leases import lease_seconds, process_owner
from actions.registry import kind_of

logger = logging.getLogger(__name__)

NOTIFY_ACTION = "action_notify_operations"
_GIVE_UP_AFTER = 6 * 3600.0  # a build nobody can see for six hours is reported as lost
_FOLLOWED = frozenset({EXECUTING, UNKNOWN})
_STARTS = frozenset({"deploy", "rollback", "run_build"})  # intents that start a build
# Without OPSBOT_OPERATION a lost start is matched by time: allow this much clock skew.
_CLOCK_SLACK = timedelta(seconds=30)


def _reconcile_window() -> float:
    """Seconds after a lost start request within which its build must show up in Jenkins."""
    try:
        return max(1.0, float(os.environ.get("OPSBOT_RECONCILE_WINDOW") or 120.0))
    except ValueError:
        return 120.0


def _lease_name(operation_id: str) -> str:
    return f"operation:{operation_id}"


def _poll_seconds() -> float:
    try:
        return max(0.05, float(os.environ.get("OPSBOT_WATCH_POLL") or 2.0))
    except ValueError:
        return 2.0


class Watcher:
    """Follows executing operations in a daemon thread, each under its lease."""

    def __init__(self, pace: Callable[[str, float, float], Backoff] | None = None) -> None:
        # Makes each loop's Backoff from its name, interval and cap (tests pass fast ones).
        self._pace = pace or _backoff
        self._loop: asyncio.AbstractEventLoop | None = None
        self._following: dict[str, concurrent.futures.Future[None] | None] = {}
        self._held: set[str] = set()  # confirmed here and running here (not followed yet)
        self._kept: set[str] = set()  # of those, still running after the turn (a command)
        self._passive: set[str] = set()  # executing, but nothing here follows them
        self._lock = threading.Lock()

    @property
    def owner(self) -> str:
        return process_owner()

    def ensure_started(self) -> None:
        """Start the thread and its scan of the store once (see the module's docstring)."""
        with self._lock:
            if self._loop is not None:
                return
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="opsbot-watcher", daemon=True)
            thread.start()
            self._loop = loop
        self._submit(self._scan_forever())

    def stop(self) -> None:
        """Stop the thread and forget what it followed; the next ``ensure_started`` starts
        afresh. For tests, where each test has its own store: a watcher left running
        would rebuild the runtime from the next test's environment and act on its store."""
        with self._lock:
            loop, self._loop = self._loop, None
            for known in (self._following, self._held, self._kept, self._passive):
                known.clear()
        if loop is None:
            return

        async def cancel() -> None:
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        try:
            asyncio.run_coroutine_threadsafe(cancel(), loop).result(timeout=10)
        finally:
            loop.call_soon_threadsafe(loop.stop)

    # -- leases ---------------------------------------------------------------------------

    def hold(self, operation_id: str) -> bool:
        """Take the operation's lease before running it here; False if another replica holds
        it (it is running or followed there). Raises StoreError when the store fails."""
        self.ensure_started()
        # Marked held before the lease is taken: a scan in between must not take this
        # replica's own fresh lease for an orphan and close the operation as interrupted.
        with self._lock:
            self._held.add(operation_id)
        try:
            lease = _runtime.runtime().stores.leases.take(_lease_name(operation_id), self.owner,
                                                          lease_seconds())
        except BaseException:
            with self._lock:
                self._held.discard(operation_id)
            raise
        if lease is None:
            with self._lock:
                self._held.discard(operation_id)
            return False
        return True

    def keep(self, operation_id: str) -> None:
        """The operation goes on running here after the turn (a long command): keep its lease
        until :meth:`release`."""
        with self._lock:
            self._kept.add(operation_id)

    def settle(self, operation_id: str) -> None:
        """The turn that ran the operation is over: give its lease up unless it is followed
        or kept."""
        with self._lock:
            if operation_id in self._kept or operation_id in self._following:
                return
            self._held.discard(operation_id)
        self._release(operation_id)

    def release(self, operation_id: str) -> None:
        """The operation's run here has ended: give its lease up."""
        with self._lock:
            self._kept.discard(operation_id)
            self._held.discard(operation_id)
        self._release(operation_id)

    def _release(self, operation_id: str) -> None:
        try:
            _runtime.runtime().stores.leases.release(_lease_name(operation_id), self.owner)
        except OpsbotError as exc:  # it runs out by itself
            logger.warning("could not release the lease of %s: %s", operation_id, exc)

    def follow(self, operation_id: str, ref: Mapping[str, Any] | None = None) -> None:
        """Follow one operation's build until it ends (no-op if already followed here, or
        if another replica holds its lease: that one follows it).

        ``ref`` is what the caller knows of the build (queue id ...) when the store could
        not record it; what the store holds wins.
        """
        self.ensure_started()
        with self._lock:
            if operation_id in self._following:
                return
            held = operation_id in self._held
            self._following[operation_id] = None
        if not held:
            try:
                taken = _runtime.runtime().stores.leases.take(
                    _lease_name(operation_id), self.owner, lease_seconds())
            except OpsbotError as exc:
                logger.warning("following %s: %s; the next scan tries again", operation_id,
                               exc)
                taken = None
            if taken is None:
                with self._lock:
                    self._following.pop(operation_id, None)
                return
        with self._lock:
            self._held.discard(operation_id)
            self._kept.discard(operation_id)
        future = self._submit(self._follow(operation_id, dict(ref or {})))
        with self._lock:
            if operation_id in self._following:
                self._following[operation_id] = future

    def _submit(self, coroutine: Coroutine[Any, Any, None]) -> concurrent.futures.Future[None]:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop)

    async def _scan_forever(self) -> None:
        """Scan every quarter of a lease; while the store fails, less often (up to a lease)."""
        seconds = lease_seconds()
        pace = self._pace("the watcher's scan of the store", seconds / 4, seconds)
        while True:
            try:
                await asyncio.to_thread(self.scan)
            except Exception as exc:  # noqa: BLE001 - the scan must go on
                wait = pace.failed(exc)
            else:
                wait = pace.succeeded()
            await asyncio.sleep(wait)

    def scan(self) -> None:
        """Renew this replica's leases, take over the executing operations nobody holds, and
        close the confirmations and approvals whose time is up.

        Expiring here, not only when someone answers, is what makes the audit say
        "expired" for a preview nobody answered: its buttons stop working at the expiry
        (their payloads carry it), so nothing else would record it. A store failure ends
        the scan (StoreError): the next one does it all again.
        """
        store, leases = _runtime.runtime().store, _runtime.runtime().stores.leases
        seconds = lease_seconds()
        with self._lock:
            mine = set(self._following) | self._held
        for operation_id in mine:
            kept = leases.take(_lease_name(operation_id), self.owner, seconds)
            if kept is None:  # too slow to renew: another replica has it now
                logger.warning("operation %s is followed by another replica now", operation_id)
                with self._lock:
                    future = self._following.pop(operation_id, None)
                    self._held.discard(operation_id)
                    self._kept.discard(operation_id)
                if future is not None:
                    future.cancel()
        for operation in store.executing():
            with self._lock:
                if (operation.id in self._following or operation.id in self._held
                        or operation.id in self._passive):
                    continue
            lease = leases.take(_lease_name(operation.id), self.owner, seconds)
            if lease is None:
                continue
            if lease.previous is not None:
                metrics.lease_changed("operation")
                logger.info("took over operation %s from %s", operation.id, lease.previous)
            kind = kind_of(operation.intent)
            if kind is not None and kind.resume is not None:
                try:
                    kind.resume(operation)
                finally:
                    with self._lock:  # said once (or nothing to say): not again each scan
                        self._passive.add(operation.id)
                    self._release(operation.id)
            else:
                with self._lock:
                    self._held.add(operation.id)  # follow() keeps the lease just taken
                self.follow(operation.id)
        for operation in store.expire_due():
            logger.info("operation %s (%s) expired unanswered", operation.id, operation.intent)

    async def _follow(self, operation_id: str, hint: dict[str, Any]) -> None:
        """Follow the operation to its end; after a store failure, again from the store's
        state (every step of a follow can be done twice), less often while it lasts.

        Two paces: the polls' (Jenkins, mostly) and the store's, so that a good poll between
        two store failures is not taken for the end of the outage.
        """
        poll = _poll_seconds()
        polls = self._pace(f"following operation {operation_id}", poll, 30.0)
        store = self._pace(f"following operation {operation_id}: opsbot's store", poll, 60.0)
        while True:
            try:
                await self._follow_build(operation_id, hint, polls)
            except StoreError as exc:
                await asyncio.sleep(store.failed(exc))
                continue
            except Exception:  # noqa: BLE001 - a watcher must never die silently
                logger.exception("following operation %s failed", operation_id)
            else:
                store.succeeded()  # "back", if it was down
            break
        # Not reached when cancelled (its lease went to another replica). Ended, or nothing
        # here can follow it (no Jenkins, not a build, a failure logged above): the scans
        # leave it alone from now on.
        with self._lock:
            self._following.pop(operation_id, None)
            self._passive.add(operation_id)
        await asyncio.to_thread(self._release, operation_id)

    async def _follow_build(self, operation_id: str, hint: dict[str, Any],
                            pace: Backoff) -> None:
        rt = _runtime.runtime()
        store, jenkins = rt.store, rt.backends.get(JENKINS)
        operation = store.get(operation_id)
        if operation is None or operation.state not in _FOLLOWED or jenkins is None:
            return
        if operation.intent == "stop_build":
            if operation.state == EXECUTING and operation.backend_ref.get("stop_requested"):
                await self._follow_stop(operation, jenkins, pace)
            else:
                await self._reconcile_stop(operation, jenkins, pace)
            return
        if operation.intent not in _STARTS and not operation.backend_ref.get("starts_build"):
            # Not a build (a Jira change, a team-defined command or request): its unknown
            # outcome was said with what to check.
            return
        ref = {**hint, **operation.backend_ref}
        job = ref.get("job") or operation.parameters.get("job")
        queue_id, number = ref.get("queue_id"), ref.get("build_number")
        if not job:
            self._finish(operation, ERROR, "interrupted",
                         "opsbot stopped before it could see whether Jenkins took the build; "
                         "check the job in Jenkins.")
            return
        if queue_id is None and number is None:
            found = await self._reconcile_start(operation, jenkins, str(job), ref, pace)
            if found is None:
                return
            queue_id, number = found
        queue: Any = queue_id  # one of the two is set
        poll = _poll_seconds()
        started = asyncio.get_running_loop().time()
        while True:
            try:
                if number is None:
                    build = await jenkins.wait_for_build(int(queue), poll=poll,
                                                         timeout=_GIVE_UP_AFTER)
                    number = build.number
                    store.update_backend_ref(operation_id, build_number=number, url=build.url)
                build = await jenkins.build(str(job), int(number))
                wait = pace.succeeded()
                if not build.building:
                    break
            except (BackendError, StoreError) as exc:
                if asyncio.get_running_loop().time() - started > _GIVE_UP_AFTER:
                    self._finish(operation, ERROR, "lost", f"Lost track of the build: {exc}")
                    return
                if "cancelled" in str(exc).lower() and number is None:
                    self._finish(operation, FAILED, "CANCELLED",
                                 "The build was cancelled in the Jenkins queue before it started.")
                    return
                wait = pace.failed(exc)
            await asyncio.sleep(wait)
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

    async def _reconcile_start(self, operation: Operation, jenkins: JenkinsBackend, job: str,
                               ref: Mapping[str, Any],
                               pace: Backoff) -> tuple[int | None, int | None] | None:
        """Find the build a start with a lost answer made: (queue id, build number).

        None when the operation was finished here instead: nothing started within the
        window (failed, NOT_STARTED), or several builds could be it (error, AMBIGUOUS).
        """
        store = _runtime.runtime().store
        current = _unconfirmed(operation)
        if current is None:
            return None
        what = _what(operation)
        requested = ref.get("requested")
        while requested is None:  # opsbot stopped mid-start: did the job take the id?
            try:
                declared = OPERATION_PARAMETER in (await jenkins.job(job)).parameters
                requested = {OPERATION_PARAMETER: operation.id} if declared else {}
                pace.succeeded()
            except BackendError as exc:
                await asyncio.sleep(pace.failed(exc))
        marker = requested.get(OPERATION_PARAMETER)
        wanted = {OPERATION_PARAMETER: marker} if marker else dict(requested)
        sent = (_when(ref.get("sent_at")) or operation.approved_at or operation.confirmed_at
                or operation.created_at)
        since = sent - (timedelta(days=1) if marker else _CLOCK_SLACK)
        window = _reconcile_window()
        deadline = sent + timedelta(seconds=window)
        found_by = (f"its {OPERATION_PARAMETER} parameter" if marker
                    else "its start time, parameters and Jenkins user")
        while True:
            wait = _poll_seconds()
            try:
                seen = await jenkins.find_started(job, wanted, since=since, by_me=not marker)
            except BackendError as exc:
                if datetime.now(UTC) - sent > timedelta(seconds=_GIVE_UP_AFTER):
                    self._finish(current, ERROR, "lost", f"Lost track of {what}: {exc}")
                    return None
                wait = pace.failed(exc)
            else:
                pace.succeeded()
                if seen.count == 1 or (marker and seen.count):
                    if seen.builds:
                        build = seen.builds[0]
                        store.update_backend_ref(operation.id, build_number=build.number,
                                                 url=build.url, found_by=found_by)
                        located: tuple[int | None, int | None] = (None, build.number)
                    else:
                        store.update_backend_ref(operation.id, queue_id=seen.queued[0],
                                                 found_by=found_by)
                        located = (seen.queued[0], None)
                    store.transition(operation.id, {UNKNOWN}, EXECUTING, actor="jenkins",
                                     event="reconciled", detail={"found_by": found_by})
                    return located
                if seen.count > 1:
                    shown = [f"#{b.number}" for b in seen.builds] + \
                        [f"queue item {q}" for q in seen.queued]
                    self._finish(current, ERROR, "AMBIGUOUS", (
                        f"I could not tell which build is {what}: since opsbot asked, {job} has "
                        f"{seen.count} that could be it ({', '.join(shown)}). Check them in "
                        "Jenkins before asking again."))
                    return None
                if datetime.now(UTC) >= deadline:
                    self._finish(current, FAILED, "NOT_STARTED", (
                        f"Jenkins did not start {what}: {window:g}s after opsbot asked, {job} "
                        f"has no build or queued item for it"
                        f"{f' (operation {operation.id})' if marker else ''}. Nothing ran; ask "
                        "again if you still want it."))
                    return None
            await asyncio.sleep(wait)

    async def _follow_stop(self, operation: Operation, jenkins: JenkinsBackend,
                           pace: Backoff) -> None:
        """Follow a build Jenkins was asked to stop until it has really ended, and say how:
        stopped (ABORTED), or finished otherwise despite the stop."""
        job, number = operation.parameters["job"], int(operation.parameters["build_number"])
        started = asyncio.get_running_loop().time()
        while True:
            try:
                build = await jenkins.build(job, number)
                wait = pace.succeeded()
                if not build.building:
                    break
            except BackendError as exc:
                if asyncio.get_running_loop().time() - started > _GIVE_UP_AFTER:
                    self._finish(operation, ERROR, "lost", f"Lost track of {job} #{number} "
                                 f"after asking Jenkins to stop it: {exc}")
                    return
                wait = pace.failed(exc)
            await asyncio.sleep(wait)
        stopped, said = stop_ended(operation, build)
        ref: dict[str, Any] = {"build_result": build.result, "duration_s": build.duration_s,
                               "build_url": build.url}
        if stopped:
            ref["stopped"] = True
        self._finish(operation, SUCCEEDED if stopped else FAILED,
                     "SUCCESS" if stopped else "NOT_STOPPED", said, **ref)

    async def _reconcile_stop(self, operation: Operation, jenkins: JenkinsBackend,
                              pace: Backoff) -> None:
        """Find out whether a stop whose answer was lost took effect, and say so."""
        current = _unconfirmed(operation)
        if current is None:
            return
        job, number = operation.parameters["job"], int(operation.parameters["build_number"])
        sent = (_when(operation.backend_ref.get("sent_at")) or operation.approved_at
                or operation.confirmed_at or operation.created_at)
        window = _reconcile_window()
        while True:
            wait = _poll_seconds()
            try:
                build = await jenkins.build(job, number)
            except BackendError as exc:
                if datetime.now(UTC) - sent > timedelta(seconds=_GIVE_UP_AFTER):
                    self._finish(current, ERROR, "lost", f"Lost track of {job} #{number}: {exc}")
                    return
                wait = pace.failed(exc)
            else:
                pace.succeeded()
                if not build.building:
                    ended = ("it was stopped (ABORTED)" if build.result == "ABORTED"
                             else f"it had ended by itself: {build.result}")
                    self._finish(current, SUCCEEDED, "STOPPED", f"Checked: {job} #{number} is no "
                                 f"longer running; {ended}.", duration_s=build.duration_s)
                    return
                if datetime.now(UTC) >= sent + timedelta(seconds=window):
                    self._finish(current, FAILED, "STILL_RUNNING", (
                        f"{job} #{number} is still running {window:g}s after opsbot asked Jenkins "
                        "to stop it, so the stop did not take effect. Ask again to stop it."))
                    return
            await asyncio.sleep(wait)

    def _finish(self, operation: Operation, state: str, result: str, detail: str | None,
                **ref: Any) -> None:
        rt = _runtime.runtime()
        if ref:
            rt.store.update_backend_ref(operation.id, **ref)
        won = rt.store.transition(
            operation.id, _FOLLOWED, state, actor="jenkins", event="finished",
            detail={"result": result, "detail": detail},
            result=result, result_detail=detail, finished_at=datetime.now(UTC),
        )
        if won is not None:
            threading.Thread(target=notify, args=(operation.sender_id,), daemon=True,
                             name="opsbot-notify").start()


def _backoff(name: str, interval: float, cap: float) -> Backoff:
    return Backoff(name, logger, interval=interval, cap=cap)


def stop_ended(operation: Operation, build: Build) -> tuple[bool, str]:
    """(stopped, what to say) for a stop whose build has ended: ABORTED, or not."""
    p = operation.parameters
    took = f" after running {duration(build.duration_s)}"
    if build.result == "ABORTED":
        return True, (f"Stopped {p['job']} #{p['build_number']}: ABORTED{took} (stop asked by "
                      f"{operation.requester}).")
    return False, (f"{p['job']} #{p['build_number']} did not stop: it finished {build.result}"
                   f"{took} despite the stop {operation.requester} asked for (Jenkins builds can "
                   "catch a stop, or end before it takes effect).")


def _unconfirmed(operation: Operation) -> Operation | None:
    """The operation in state unknown: an executing one whose start was never recorded
    (opsbot stopped, or its store failed, mid-start) is moved there first."""
    if operation.state == UNKNOWN:
        return operation
    return _runtime.runtime().store.transition(
        operation.id, {EXECUTING}, UNKNOWN, actor="opsbot", event="unconfirmed",
        detail={"reason": "no answer from Jenkins was recorded for it"})


def _what(operation: Operation) -> str:
    p = operation.parameters
    if operation.intent in ("deploy", "rollback"):
        return f"the {operation.intent} of {p.get('service')} {p.get('version')} to " \
               f"{p.get('environment')}"
    return f"a build of {operation.backend_ref.get('job') or p.get('job')}"


def _when(text: object) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


_PCHAR = "!$&'()*+,;=:@-._~"


def notify(sender_id: str) -> bool:
    """Ask the Rasa server to deliver pending completion messages in ``sender_id``'s chat."""
    rt = _runtime.runtime()
    # Rasa's Sanic routes do not percent-decode the conversation id, so the characters a
    # path segment may hold as they are stay as they are (connectors keep to those).
    url = (f"{rt.rasa_url}/conversations/{urllib.parse.quote(sender_id, safe=_PCHAR)}/execute"
           "?output_channel=latest")
    body = json.dumps({"name": NOTIFY_ACTION}).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})
    token = os.environ.get("OPSBOT_API_TOKEN")
    if token:
        request.full_url = f"{url}&token={urllib.parse.quote(token, safe='')}"
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
