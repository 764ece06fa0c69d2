"""Jenkins without a plugin: poll the jobs someone subscribed to for newly finished builds.

Every ``OPSBOT_EVENTS_JENKINS_POLL`` seconds (default 30) the watcher lists the jobs the
subscriptions name (a job, or a service whose jobs start with its name), reads each
one's newest builds in one request, and records every build that finished since the last
look as an event: a failure (FAILURE, UNSTABLE) with the failure summary opsbot extracts
from the console, a success (which the outbox reports as a recovery where the last
message of that job was a failure: the first green after red), an abort. What it has
seen is kept in opsbot's store per job, so a restart neither repeats nor skips a build;
a job seen for the first time is not back-filled (its history is not news). Events are
keyed ``jenkins:<job>#<number>``, the key the Notification plugin's webhook gets too,
so a build reported both ways is posted once, and two replicas polling post once.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable

from actions.backends.jenkins import Build, JenkinsBackend
from actions.errors import OpsbotError
from actions.events._model import FAILURE, RESULT, Event
from actions.events.store import EventStore, Subscription
from actions.guard.store import OperationStore

__all__ = ["JenkinsWatch", "build_event", "watched_jobs"]

logger = logging.getLogger(__name__)

_STATE_KIND = "jenkins-events"
_FAILED = frozenset({"FAILURE", "UNSTABLE"})
_LOOK_BACK = 10  # builds read per job and poll


def _environment(parameters: dict[str, str]) -> str | None:
    for name in ("ENV", "ENVIRONMENT", "environment", "env", "TARGET_ENV"):
        if parameters.get(name):
            return parameters[name].lower()
    return None


def build_event(build: Build, summary: str = "") -> Event | None:
    """The event of a finished build (None while it runs)."""
    if build.building or not build.result:
        return None
    result = build.result.upper()
    params = dict(build.parameters)
    service = params.get("SERVICE") or params.get("service") or build.job.split("-", 1)[0]
    environment = _environment(params)
    failed = result in _FAILED
    word = {"FAILURE": "failed", "UNSTABLE": "is unstable", "SUCCESS": "passed",
            "ABORTED": "was aborted", "NOT_BUILT": "was not built"}.get(result, result.lower())
    title = f"{build.job} #{build.number} {word}"
    ended = build.started_at
    if build.duration_s:
        from datetime import timedelta

        ended = build.started_at + timedelta(seconds=build.duration_s)
    links = ((("Console", build.url.rstrip("/") + "/console"),) if build.url else ())
    return Event(
        source="jenkins", key=f"jenkins:{build.job}#{build.number}", group=f"jenkins:{build.job}",
        kind=FAILURE if failed else RESULT, status=result.lower(), title=title,
        summary=summary if failed else "", service=service.lower() if service else None,
        environment=environment, job=build.job, started_at=build.started_at, ended_at=ended,
        links=links, labels={"build_number": str(build.number), "result": result})


def watched_jobs(subscriptions: Iterable[Subscription], jobs: Iterable[str]) -> list[str]:
    """The jobs some subscription wants builds of (a job by name, or a service's jobs)."""
    names = list(jobs)
    wanted: set[str] = set()
    for sub in subscriptions:
        f = sub.filters
        if f.sources and "jenkins" not in f.sources:
            continue
        if f.job:
            wanted |= {n for n in names if n.lower() == f.job}
        elif f.service:
            wanted |= {n for n in names if n.lower() == f.service
                       or n.lower().startswith(f.service + "-")}
        elif f.sources:  # "every Jenkins build": all of them
            wanted |= set(names)
    return sorted(wanted)


class JenkinsWatch:
    """Polls Jenkins for the subscribed jobs' finished builds and records them."""

    def __init__(self, events: EventStore, jenkins: JenkinsBackend, state: OperationStore,
                 *, interval: float | None = None, max_jobs: int = 50) -> None:
        self.events, self.jenkins, self.state = events, jenkins, state
        self.interval = interval if interval is not None else _interval()
        self.max_jobs = max_jobs
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="opsbot-jenkins-events")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        while True:
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except OpsbotError as exc:
                logger.warning("events: Jenkins not polled: %s", exc)
            except Exception:  # noqa: BLE001 - keep polling; the next look catches up
                logger.exception("events: polling Jenkins failed")
            await asyncio.sleep(self.interval)

    async def poll_once(self) -> int:
        """Look once; how many new events were recorded."""
        subs = await asyncio.to_thread(self.events.subscriptions)
        if not any(not s.filters.sources or "jenkins" in s.filters.sources for s in subs):
            return 0
        listed = [job.full_name for job in await self.jenkins.jobs()]
        jobs = watched_jobs(subs, listed)
        if len(jobs) > self.max_jobs:
            logger.warning("events: %d jobs are subscribed; watching the first %d", len(jobs),
                           self.max_jobs)
            jobs = jobs[: self.max_jobs]
        recorded = 0
        for job in jobs:
            try:
                recorded += await self._job(job)
            except OpsbotError as exc:
                logger.warning("events: could not read %s: %s", job, exc)
        return recorded

    async def _job(self, job: str) -> int:
        seen = await asyncio.to_thread(self.state.recall, _STATE_KIND, job)
        builds = await self.jenkins.builds(job, limit=_LOOK_BACK)
        ordered = sorted(builds, key=lambda b: b.number)
        finished = [b for b in ordered if not b.building and b.result]
        if seen is None:
            # First look: what is done is history, not news. Start from the newest finished.
            last = finished[-1].number if finished else 0
            await asyncio.to_thread(self.state.remember, _STATE_KIND, job, {"last": last})
            return 0
        last = int(seen.get("last") or 0)
        recorded = 0
        for build in ordered:
            if build.number <= last:
                continue
            if build.building or not build.result:
                break  # still running: later builds wait for it, so none is skipped
            summary = ""
            if build.result in _FAILED:
                try:
                    summary = (await self.jenkins.failure_report(job, build.number)).summary
                except OpsbotError as exc:
                    summary = f"(the failure summary could not be read: {exc})"
            event = build_event(build, summary)
            if event is not None:
                queued = await asyncio.to_thread(self.events.record, event)
                recorded += queued is not None
            last = build.number
            await asyncio.to_thread(self.state.remember, _STATE_KIND, job, {"last": last})
        return recorded


def _interval() -> float:
    raw = os.environ.get("OPSBOT_EVENTS_JENKINS_POLL", "").strip()
    try:
        return max(float(raw), 1.0) if raw else 30.0
    except ValueError:
        logger.warning("OPSBOT_EVENTS_JENKINS_POLL=%r is not a number; polling every 30s", raw)
        return 30.0
