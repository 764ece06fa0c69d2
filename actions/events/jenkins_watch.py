"""Jenkins without a plugin: poll the jobs someone subscribed to for newly finished builds.

Every ``OPSBOT_EVENTS_JENKINS_POLL`` seconds (default 30) the watcher lists the jobs the
subscriptions name (a job, or a service whose jobs start with its name), reads each
one's newest builds in one request, and records every build that finished since the last
look as an event: a failure (FAILURE, UNSTABLE) with the failure summary opsbot extracts
from the console, a success (which the outbox reports as a recovery where the last
message of that job was a failure: the first green after red), an abort. What it has
seen is kept in opsbot's store per job, so a restart neither repeats nor skips a build;
a job seen for the first time is not back-filled (its history is not news). While
Jenkins or the store is down the loop backs off (``actions.backoff``) and logs one line
per change of state, not one per attempt.

What opsbot reads from Jenkins is keyed ``jenkins-observed:<job>#<number>``, a namespace
no webhook body can write to. A Notification plugin webhook is only a hint where Jenkins
is configured: :meth:`JenkinsWatch.confirm` reads the build it names from Jenkins and
gives the event of what Jenkins records, the very event (and key) the poll gives, so a
build reported both ways is posted once and two replicas polling post once; a
notification of a build Jenkins does not have, has not finished or records with another
result counts for nothing. So a forged notification can neither post a false result nor,
recorded first, make the real one a "duplicate".
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from actions.backends.jenkins import Build, JenkinsBackend
from actions.backoff import Backoff
from actions.errors import BackendAuthError, InvalidRequest, NotFound, OpsbotError
from actions.events._model import FAILURE, RESULT, Event, fit_key
from actions.events.sources import JenkinsClaim
from actions.events.store import EventStore, Subscription
from actions.storage import ChannelState

__all__ = ["JenkinsWatch", "build_event", "observed_key", "watched_jobs"]

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
        # Keys recorded before this namespace existed ("jenkins:<job>#<n>") were partly
        # taken from webhook bodies, which whoever held the URL token could forge: under a
        # prefix of its own none of them can drop an observation, and they need no
        # migration, being pruned with their events after OPSBOT_EVENTS_RETENTION_DAYS.
        source="jenkins", key=observed_key(build.job, build.number),
        group=f"jenkins:{build.job}",
        kind=FAILURE if failed else RESULT, status=result.lower(), title=title,
        summary=summary if failed else "", service=service.lower() if service else None,
        environment=environment, job=build.job, started_at=build.started_at, ended_at=ended,
        links=links, labels={"build_number": str(build.number), "result": result})


def observed_key(job: str, number: int) -> str:
    """The key of what opsbot read from Jenkins about build ``number`` of ``job``."""
    return fit_key(f"jenkins-observed:{job}#{number}")


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
    """Polls Jenkins for the subscribed jobs' finished builds and records them; confirms
    the builds a webhook names (:meth:`confirm`)."""

    def __init__(self, events: EventStore, jenkins: JenkinsBackend, state: ChannelState,
                 *, interval: float | None = None, max_jobs: int = 50,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 backoff: Backoff | None = None) -> None:
        self.events, self.jenkins, self.state = events, jenkins, state
        self.clock = clock  # when an event is received: the courier's windows count from it
        self.interval = interval if interval is not None else _interval()
        self.max_jobs = max_jobs
        self.backoff = backoff or Backoff("events: polling Jenkins", logger,
                                          interval=self.interval)
        self._failing: dict[str, str] = {}  # job -> why it could not be read, logged once
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
                wait = self.backoff.succeeded()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep polling; the next look catches up
                wait = self.backoff.failed(exc)
            await asyncio.sleep(wait)

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
            except (NotFound, InvalidRequest, BackendAuthError) as exc:
                # One job's own trouble (deleted, now a folder, not readable by opsbot's
                # user): said once, not every poll. Jenkins or the store being down fails
                # the whole look instead, for the loop's backoff to say once.
                if self._failing.get(job) != str(exc):
                    logger.warning("events: could not read %s: %s", job, exc)
                self._failing[job] = str(exc)
            else:
                if self._failing.pop(job, None) is not None:
                    logger.info("events: %s can be read again", job)
        return recorded

    async def confirm(self, claim: JenkinsClaim) -> Event | str:
        """The event of the build a webhook says finished, as Jenkins records it; or, when
        Jenkins does not bear the claim out, why (one line, for the log).

        Why: the webhook's body and the token that let it in may be forged; what Jenkins
        says is the same event, under the same key, as the poll's. Only news counts: a
        real build the poll already passed (or, for a job it has not looked at yet, any
        but the newest finished one) is history, which a sender could otherwise replay as
        new ("back to green" over a real, later failure). The job is named as Jenkins names
        it, so another spelling of the same job is not another group. A Jenkins that cannot
        be asked (down, timing out, refusing opsbot's credentials) raises its
        BackendError: the sender should retry, and nothing is recorded meanwhile.
        """
        try:
            job = await self.jenkins.job(claim.job)
            build = await self.jenkins.build(job.full_name, claim.number)
        except (NotFound, InvalidRequest) as exc:
            return f"Jenkins does not have it ({exc})"
        if job.full_name != claim.job:
            return f"Jenkins calls that job {job.full_name}, not {claim.job}"
        if build.building or not build.result:
            return "Jenkins says it is still running (the poll reports it when it ends)"
        if build.result.upper() != claim.result:
            return f"Jenkins records it as {build.result}, not {claim.result}"
        stale = await self._history(job.full_name, build.number)
        if stale:
            key = observed_key(job.full_name, build.number)
            if await asyncio.to_thread(self.events.seen, key):
                return build_event(build) or stale  # told already: the sender's retry
            return stale
        event = await self._event(build)
        return event if event is not None else "Jenkins says it has no result"

    async def _history(self, job: str, number: int) -> str | None:
        """Why build ``number`` of ``job`` is not news (None: it is)."""
        seen = await asyncio.to_thread(self.state.recall, _STATE_KIND, job)
        if seen is not None:
            last = int(seen.get("last") or 0)
            return (f"#{number} is not new: opsbot's look at Jenkins had reached #{last}"
                    if number <= last else None)
        finished = [b.number for b in await self.jenkins.builds(job, limit=_LOOK_BACK)
                    if not b.building and b.result]
        newest = max(finished, default=number)
        return (f"#{number} is not new: #{newest} finished after it" if number < newest
                else None)

    async def _event(self, build: Build) -> Event | None:
        """The event of a finished build, with the failure summary from its console."""
        summary = ""
        if build.result in _FAILED:
            try:
                summary = (await self.jenkins.failure_report(build.job, build.number)).summary
            except OpsbotError as exc:
                summary = f"(the failure summary could not be read: {exc})"
        return build_event(build, summary)

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
            event = await self._event(build)
            if event is not None:
                queued = await asyncio.to_thread(self.events.record, event, self.clock())
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
