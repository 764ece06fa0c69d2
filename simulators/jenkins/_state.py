"""The Jenkins simulator's state and its rules: the queue, builds on the clock, stops, console text.

Why apart: everything that changes, under one lock, brought up to date on every read;
the renderer and the HTTP face only read it.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable

from simulators._base import Faults, RequestLog
from simulators.jenkins._model import (
    _PERMALINKS,
    _QUEUE_RETENTION,
    BuildSnapshot,
    RecordedRequest,
    _Build,
    _Cause,
    _Job,
    _QueueItem,
    _Refused,
)
from simulators.jenkins._seed import _new_build, _Seed


def _time_span(seconds: float) -> str:
    """Durations the way Jenkins writes them in queue reasons ("4.9 sec", "12 min")."""
    seconds = max(seconds, 0.0)
    if seconds >= 3600:
        return f"{int(seconds // 3600)} hr {int(seconds % 3600 // 60)} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60)} sec"
    if seconds >= 10:
        return f"{int(seconds)} sec"
    if seconds >= 0.1:
        return f"{seconds:.1f} sec" if seconds >= 1 else f"{seconds:.2f} sec"
    return f"{int(seconds * 1000)} ms"


class _State:
    """Jobs, builds and the queue, with Jenkins' scheduling rules. Callers hold ``lock``."""

    def __init__(self, seed: _Seed, *, queue_delay: float, build_seconds: float,
                 clock: Callable[[], float], stop_seconds: float = 0.0) -> None:
        self.lock = threading.RLock()
        self.seed = seed
        self.jobs = seed.jobs
        self.users = seed.users
        self.queue_delay = queue_delay
        self.build_seconds = build_seconds
        self.stop_seconds = stop_seconds
        self.clock = clock
        self.executors = seed.executors
        self.next_queue_id = seed.next_queue_id
        self.running: list[_Build] = list(seed.running)
        self.pending: list[_QueueItem] = []  # oldest first
        self.items: dict[int, _QueueItem] = {}
        self.faults = Faults()
        self.log: RequestLog[RecordedRequest] = RequestLog()

    def now(self) -> float:
        """The current time, with everything that happened until then applied."""
        now = self.clock()
        self._advance(now)
        return now

    def _advance(self, now: float, since: float = float("-inf")) -> None:
        """Replay build ends and starts up to ``now`` in time order (ends first on ties)."""
        t = since
        while True:
            ending = min(self.running, key=lambda b: b.ends_at, default=None)
            start: tuple[float, _QueueItem] | None = None
            if len(self.running) < self.executors:
                busy = {id(b.job) for b in self.running}
                for item in self.pending:
                    if not item.job.concurrent and id(item.job) in busy:
                        continue
                    at = max(item.ready_at, t)
                    if start is None or at < start[0]:
                        start = (at, item)
            end_at = ending.ends_at if ending else float("inf")
            start_at = start[0] if start else float("inf")
            if ending is not None and end_at <= start_at and end_at <= now:
                ending.result = ending.planned_result
                self.running.remove(ending)
                t = max(t, end_at)
            elif start is not None and start_at <= now:
                self._start(start[1], start_at)
                t = max(t, start_at)
            else:
                return

    def _start(self, item: _QueueItem, at: float) -> None:
        job = item.job
        result, log = job.forced.popleft() if job.forced else ("SUCCESS", None)
        build = _new_build(job, job.next_number, item.id, item.params, item.cause, at,
                           self.build_seconds, result, log, self.seed.templates)
        job.next_number += 1
        job.builds.append(build)
        self.running.append(build)
        self.pending.remove(item)
        item.build, item.left_at = build, at

    # -- lookups -------------------------------------------------------------------

    def job(self, full_name: str) -> _Job:
        job = self.jobs.get(full_name)
        if job is None:
            raise _Refused(404, "Not Found")
        return job

    def build(self, job: _Job, ref: str) -> _Build:
        """A build by number or permalink (``lastFailedBuild``), or 404."""
        if job.is_folder:
            raise _Refused(404, "Not Found")
        found: _Build | None = None
        if ref.isdigit():
            found = next((b for b in job.builds if b.number == int(ref)), None)
        elif ref in _PERMALINKS:
            found = self.permalink(job, ref)
        if found is None:
            raise _Refused(404, "Not Found")
        return found

    @staticmethod
    def permalink(job: _Job, name: str) -> _Build | None:
        tests: dict[str, Callable[[_Build], bool]] = {
            "lastBuild": lambda b: True,
            "lastCompletedBuild": lambda b: not b.building,
            "lastSuccessfulBuild": lambda b: b.result in ("SUCCESS", "UNSTABLE"),
            "lastStableBuild": lambda b: b.result == "SUCCESS",
            "lastFailedBuild": lambda b: b.result == "FAILURE",
            "lastUnstableBuild": lambda b: b.result == "UNSTABLE",
            "lastUnsuccessfulBuild": lambda b: b.result not in (None, "SUCCESS"),
        }
        return next((b for b in reversed(job.builds) if tests[name](b)), None)

    def pending_item(self, job: _Job) -> _QueueItem | None:
        return next((item for item in self.pending if item.job is job), None)

    def queue_item(self, number: int, now: float) -> _QueueItem:
        item = self.items.get(number)
        if item is None or (item.left_at is not None and now - item.left_at > _QUEUE_RETENTION):
            raise _Refused(404, "Not Found")
        return item

    def display_name(self, user_id: str) -> str:
        return self.users.get(user_id, user_id)

    # -- operations ----------------------------------------------------------------

    def trigger(self, job: _Job, values: dict[str, list[str]], with_parameters: bool,
                user_id: str, now: float) -> _QueueItem:
        """``POST build`` / ``buildWithParameters``; an identical waiting request is reused."""
        if job.is_folder:
            raise _Refused(404, "Not Found")
        if job.disabled:
            raise _Refused(409, f"{job.full_name} is not buildable")
        if with_parameters and not job.params:
            raise _Refused(500, "This build is not parameterized!",
                           java="java.lang.IllegalStateException")
        if not with_parameters and job.params:
            raise _Refused(400, "Nothing is submitted")

        def submitted(name: str) -> str | None:
            """The first value given for ``name`` (Jenkins reads one); None if none was."""
            given = values.get(name)
            return given[0] if given else None

        params = tuple((param, param.coerce(submitted(param.name)))
                       for param in job.params)  # undeclared parameters are dropped, as in Jenkins
        for item in self.pending:
            if item.job is job and item.params == params:
                return item
        delay = self.queue_delay
        match = re.fullmatch(r"(\d+)(?:sec)?", (values.get("delay") or [""])[0])
        if match:
            delay = float(match[1])
        item = _QueueItem(self.next_queue_id, job, params,
                          _Cause("user", user_id, self.display_name(user_id)), now, now + delay)
        self.next_queue_id += 1
        self.items[item.id] = item
        self.pending.append(item)
        self._advance(now)  # a zero delay starts the build at once
        return item

    def stop(self, build: _Build, user_id: str, now: float) -> None:
        """Ask a running build to stop; a finished one is left alone, as Jenkins does.

        The request only interrupts the build (``Executor.doStop`` -> ``interrupt()``; a
        pipeline's ``AsynchronousExecution.interrupt`` hands it to a timer thread): the
        build ends when it reaches an abort point, ``stop_seconds`` later, with its job's
        ``stop_result`` (a pipeline that catches the interruption ends as it likes), or, for
        a job that ignores stops, when it would have anyway. A second stop changes nothing.
        """
        if not build.building or build.stop_requested_at is not None:
            return
        job = build.job
        delay = self.stop_seconds if job.stop_seconds is None else job.stop_seconds
        build.stop_requested_at = now
        build.stop_line = _lines_by(build, now)
        build.aborted_by = self.display_name(user_id)
        build.stop_obeyed = job.stop_result is not None
        if job.stop_result is not None and now + delay < build.ends_at:
            build.ends_at, build.planned_result = now + delay, job.stop_result
        self._advance(now, since=now)  # whatever waited for it starts then, not earlier

    def cancel(self, number: int, now: float) -> None:
        item = self.items.get(number)
        if item is None or item.build is not None or item.cancelled:
            raise _Refused(404, "Not Found")
        item.cancelled, item.left_at = True, now
        self.pending.remove(item)

    def snapshot(self, build: _Build, now: float) -> BuildSnapshot:
        return BuildSnapshot(
            job=build.job.full_name, number=build.number, result=build.result,
            building=build.building, parameters=build.parameters, cause=build.cause.short(),
            user_id=build.cause.user_id or None, started_at=build.started_at,
            duration=(now if build.building else build.ends_at) - build.started_at,
            queue_id=build.queue_id, console=_console(build, now),
            stop_requested_at=build.stop_requested_at,
        )


def _lines_by(build: _Build, moment: float) -> int:
    """How many body lines a build's console has at ``moment`` (it grows as it runs)."""
    elapsed = moment - build.started_at
    progress = elapsed / build.planned_seconds if build.planned_seconds else 1.0
    return int(len(build.body) * min(max(progress, 0.0), 1.0))


_FORCE_AFTER = 15.0  # WorkflowRun.printLater: the terminate link shows 15 s after a stop


def _console(build: _Build, now: float) -> str:
    """The console log as of ``now``: lines appear as the build progresses, never reordered.

    After a stop a pipeline prints "Aborted by" at once (``recordCauseOfInterruption``)
    and, still running 15 s later, the link to terminate its steps; a freestyle build
    prints "Build was aborted" when it has ended ABORTED.
    """
    lines = [build.cause.short()]
    until = now if build.building else build.ends_at
    pipeline = build.job.kind == "pipeline"
    if build.stop_requested_at is None:
        lines.extend(build.body[:_lines_by(build, until)] if build.building else build.body)
    else:
        lines.extend(build.body[:build.stop_line])
        if pipeline:
            lines.append(f"Aborted by {build.aborted_by}")
        if not build.stop_obeyed:
            lines.extend(build.body[build.stop_line:_lines_by(build, until)])
        elif pipeline and until - build.stop_requested_at >= _FORCE_AFTER:
            lines.append("Click here to forcibly terminate running steps")
        if not build.building and pipeline:
            lines.append("[Pipeline] End of Pipeline")
        elif not build.building and build.result == "ABORTED":
            lines += ["Build was aborted", f"Aborted by {build.aborted_by}"]
    if not build.building:
        lines.append(f"Finished: {build.result}")
    return "\n".join(lines) + "\n"
