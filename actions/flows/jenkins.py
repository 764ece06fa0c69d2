"""The Jenkins intents: read requests answered at once, changes turned into previews.

Each handler takes a ``Turn`` and either answers (reads), asks for what is missing
(with buttons that carry the whole request), or records a pending operation and
shows its preview with Confirm and Cancel (``actions.confirmations`` takes it from
there). Each change intent also has an executor, run once after confirmation.

Each intent is declared once, in ``INTENTS`` at the end (``actions.registry.IntentKind``).
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from rasa_sdk.events import SlotSet

from actions._runtime import Runtime
from actions._watcher import WATCHER, stop_ended
from actions.backends.jenkins import JENKINS, OPERATION_PARAMETER, Build, JenkinsBackend, Job
from actions.catalog import (
    ENVIRONMENTS,
    Catalog,
    Deployment,
    ago,
    deployments,
    duration,
    environment_parameter,
    live_version,
    previous_version,
)
from actions.confirmations import permitted, propose, record_read, record_refusal
from actions.errors import (
    BackendError,
    InvalidRequest,
    NotFound,
    OutcomeUnknown,
)
from actions.guard import Operation
from actions.guard.policy import JOB_ENVIRONMENT
from actions.guard.reach import check_reach, job_reach
from actions.registry import Describe, Executor, Handler, IntentKind, Outcome
from actions.requests import build_of, on, phrase, subject, target
from actions.turn import Turn

__all__ = ["INTENTS", "UNRESOLVED_RESULTS", "completion_message", "follow_build", "start_job"]

# Results the watcher gives an operation whose start was unconfirmed and that it could
# not follow to a build's end; their result_detail is the whole message.
UNRESOLVED_RESULTS = frozenset({"NOT_STARTED", "AMBIGUOUS", "STILL_RUNNING", "STOPPED"})

_FAILING_WORDS = re.compile(r"\b(red|fail\w*|broken|break\w*|bad|unstable|flaky)\b", re.I)
_RUNNING_WORDS = re.compile(r"\b(running|in progress|building|active|queued|going on)\b", re.I)
_ICONS = {"success": "✅", "failure": "❌", "unstable": "⚠️", "aborted": "⏹",
          "not_built": "⚪", "disabled": "⚪"}


def _jenkins(turn: Turn) -> JenkinsBackend | None:
    return turn.backend(JENKINS)


def _ask(turn: Turn, question: str, asked: str, choices: list[str],
         titles: dict[str, str] | None = None) -> None:
    """Ask for one missing value, with a button per choice the policy would allow this
    person (the others are not shown); a typed answer works too."""
    entities = dict(turn.request.entities)
    choices = permitted(turn, turn.request.intent, asked, choices)
    if not choices:
        turn.say(f"I can't {turn.request.describe()} for you: policy.yml allows you none of "
                 "the choices. Nothing ran.")
        _done_asking(turn)
        return
    buttons = []
    for choice in choices[:8]:
        with_choice = {**entities, asked: choice}
        buttons.append(turn.button((titles or {}).get(choice, choice), turn.request.intent,
                                   with_choice))
    turn.say(question, buttons)
    turn.events.append(SlotSet("pending_request", {
        "intent": turn.request.intent, "entities": entities, "asked": asked,
        "at": datetime.now(UTC).isoformat(),
    }))


def _done_asking(turn: Turn) -> None:
    turn.events.append(SlotSet("pending_request", None))


async def _catalog(turn: Turn, jenkins: JenkinsBackend) -> Catalog:
    return Catalog(await jenkins.jobs(), turn.runtime.services.job_claims())


async def _jenkins_and_jobs(turn: Turn) -> tuple[JenkinsBackend, Catalog] | None:
    """Jenkins and its jobs, or None after saying that Jenkins is not connected."""
    jenkins = _jenkins(turn)
    return None if jenkins is None else (jenkins, await _catalog(turn, jenkins))


def _deploy_job(turn: Turn, catalog: Catalog) -> tuple[str, str, str] | None:
    """The service named in the request, a note about how it was read, and its deploy
    job; or None, having asked or explained."""
    resolved = _resolve_service(turn, catalog, deployable=True)
    if resolved is None:
        return None
    service, note = resolved
    job = catalog.deploy_job(service)
    assert job is not None  # deployable=True resolves only services with a deploy job
    return service, note, job


def _resolve_service(turn: Turn, catalog: Catalog, *, deployable: bool) -> tuple[str, str] | None:
    """The service named in the request, or ask / explain; returns (service, note)."""
    name = turn.request.get("service") or turn.request.get("job")
    choices = catalog.deployable() if deployable else sorted(catalog.services)
    if not name:
        _ask(turn, "Which service?", "service", choices)
        return None
    found = catalog.resolve_service(name, deployable=deployable)
    if found.match:
        note = "" if found.exact else f" (I took \"{name}\" to mean {found.match}.)"
        return found.match, note
    if found.ambiguous:
        _ask(turn, f"\"{name}\" could be several services. Which one?", "service",
             list(found.candidates))
        return None
    known = permitted(turn, turn.request.intent, "service", choices)
    turn.say(f"I can't find a service called \"{name}\"{' with a deploy job' if deployable else ''}"
             f" in Jenkins. Known: {', '.join(known) or 'none'}.")
    _done_asking(turn)
    return None


def _resolve_job(turn: Turn, catalog: Catalog, choices: list[str]) -> tuple[str, str] | None:
    """The job named (or the CI job of the service named), or ask / explain."""
    name = turn.request.get("job") or turn.request.get("service")
    if not name:
        _ask(turn, "Which job?", "job", choices)
        return None
    found = catalog.resolve_job(name)
    if found.match:
        note = "" if found.exact else f" (I took \"{name}\" to mean {found.match}.)"
        return found.match, note
    if found.ambiguous:
        _ask(turn, f"\"{name}\" could be several jobs. Which one?", "job", list(found.candidates))
        return None
    close = ", ".join(permitted(turn, turn.request.intent, "job", choices)[:8])
    turn.say(f"I can't find a job called \"{name}\" in Jenkins. Jobs: {close or 'none'}.")
    _done_asking(turn)
    return None


def _job_among(turn: Turn, catalog: Catalog, likely: list[str], question: str,
               none_text: str) -> tuple[str, str] | None:
    """The job named, or a question listing the likely ones (running, failing), or none_text."""
    if not turn.request.get("job") and not turn.request.get("service"):
        if likely:
            _ask(turn, question, "job", likely)
        else:
            turn.say(none_text)
            _done_asking(turn)
        return None
    return _resolve_job(turn, catalog, likely or sorted(catalog.jobs))


# -- deployments -----------------------------------------------------------------------------


def _deployed_line(live: Deployment | None, environment: str, job: str) -> str:
    if live is None:
        return f"Nothing has been deployed to {environment} with {job} yet."
    by = f", deployed by {live.by}" if live.by else ""
    return f"{environment} runs {live.version}{by} {ago(live.at)}."


async def _deploy_common(turn: Turn, *, rollback: bool) -> None:
    if (found := await _jenkins_and_jobs(turn)) is None:
        return
    jenkins, catalog = found
    if (deployable := _deploy_job(turn, catalog)) is None:
        return
    service, note, job = deployable
    environment = turn.request.get("environment")
    if not environment:
        verb = "roll back" if rollback else "deploy"
        _ask(turn, f"Which environment should I {verb} {service} {'on' if rollback else 'to'}?",
             "environment", list(ENVIRONMENTS))
        return
    if environment not in ENVIRONMENTS:
        _ask(turn, f"\"{environment}\" is not an environment {job} deploys to. Which one?",
             "environment", list(ENVIRONMENTS))
        return
    history = deployments(service, await jenkins.builds(job, limit=50))
    live = live_version(history, environment)
    version = turn.request.get("version")
    if rollback and not version:
        previous = previous_version(history, environment)
        if previous is None:
            _done_asking(turn)
            turn.say(f"I can't roll back {service} on {environment}: "
                     + (f"{live.version} is the only version deployed there successfully."
                        if live else f"nothing has been deployed there with {job}."))
            return
        version = previous.version
        when = f"deployed by {previous.by} {ago(previous.at)}" if previous.by else ago(previous.at)
        summary = (f"Roll back {service} on {environment} from {live.version if live else '?'} to "
                   f"{version} (the previous good version, {when}) with job {job}.")
    elif not version:
        known = []
        for deployment in history:
            if deployment.succeeded and deployment.version not in known:
                known.append(deployment.version)
        _ask(turn, f"Which version of {service} should I deploy to {environment}?"
             + (f" Recent versions: {', '.join(known[:4])}." if known else ""),
             "version", known[:4])
        return
    else:
        verb = "Roll back" if rollback else "Deploy"
        prep = "on" if rollback else "to"
        summary = f"{verb} {service} {version} {prep} {environment} with job {job}."
        if not any(d.version == version and d.succeeded for d in history):
            summary += f" {version} has not been deployed successfully anywhere yet."
    summary += " " + _deployed_line(live, environment, job)
    if live is not None and live.version == version:
        summary += " That version is already live there; this redeploys it."
    _done_asking(turn)
    parameters = {"service": service, "version": version, "environment": environment, "job": job}
    await propose(turn, turn.request.intent, parameters, summary + note)


async def deploy(turn: Turn) -> None:
    await _deploy_common(turn, rollback=False)


async def rollback(turn: Turn) -> None:
    await _deploy_common(turn, rollback=True)


def _connected(rt: Runtime) -> JenkinsBackend:
    return rt.backends.connected(JENKINS)


def _started(operation: Operation, what: str, ref: dict[str, Any]) -> Outcome:
    approved = f", approved by {operation.approved_by}" if operation.approved_by else ""
    return Outcome(
        f"Confirmed by {operation.confirmed_by}{approved}: started {what} ({ref['job']}, "
        f"Jenkins queue item {ref['queue_id']}). I'll post the result here when it finishes.",
        ref, follow=True)


async def start_job(rt: Runtime, operation: Operation, job: Job, parameters: dict[str, str],
                 what: str, private: frozenset[str] = frozenset()) -> Outcome:
    """Start ``job`` for ``operation``; an unconfirmed start is said as unknown and followed.

    A job that declares ``OPERATION_PARAMETER`` gets the operation id, so the watcher can
    find this very build should Jenkins' answer be lost. The parameters named in
    ``private`` (they hold secrets) are sent but not kept in the operation's record; the
    watcher matches builds on the others.
    """
    values = dict(parameters)
    # The one door to a Jenkins start: what the job will run with must be what the policy
    # decided on.
    defaults = await _connected(rt).parameter_defaults(job.full_name) if job.parameters else {}
    check_reach(operation.intent, operation.parameters, job, values, defaults)
    if OPERATION_PARAMETER in job.parameters:
        values[OPERATION_PARAMETER] = operation.id
    kept = {k: v for k, v in values.items() if k not in private}
    ref: dict[str, Any] = {"job": job.full_name, "requested": kept,
                           "sent_at": datetime.now(UTC).isoformat()}
    try:
        queue_id = await _connected(rt).start(job.full_name, values or None)
    except OutcomeUnknown as exc:
        return Outcome(f"I could not confirm that Jenkins started {what}; it may be running. "
                       "I am checking and will post what I find; do not ask again yet. "
                       f"({exc})", ref, follow=True, unknown=True)
    return _started(operation, what, {**ref, "queue_id": queue_id})


async def _execute_deploy(rt: Runtime, operation: Operation) -> Outcome:
    p = operation.parameters
    job = await _connected(rt).job(p["job"])
    return await start_job(rt, operation, job, {
        "SERVICE": p["service"], "VERSION": p["version"], "ENVIRONMENT": p["environment"]},
        f"the {operation.intent} of {p['service']} {p['version']} to {p['environment']}")


async def deploy_history(turn: Turn) -> None:
    if (found := await _jenkins_and_jobs(turn)) is None:
        return
    jenkins, catalog = found
    environment = turn.request.get("environment")
    name = turn.request.get("service") or turn.request.get("job")
    if not name:
        lines = []
        services = permitted(turn, "deploy_history", "service", catalog.deployable())
        all_builds = await asyncio.gather(
            *(jenkins.builds(str(catalog.deploy_job(s)), limit=30) for s in services))
        # gather returns one result per awaitable, in order: one list of builds per service
        for service, builds in zip(services, all_builds, strict=True):
            history = deployments(service, builds)
            envs = [environment] if environment else list(ENVIRONMENTS)
            live_by_env = [(e, live_version(history, e)) for e in envs]
            shown = [f"{e} {d.version}" for e, d in live_by_env if d]
            lines.append(f"• {service}: {', '.join(shown) if shown else 'nothing deployed'}")
        where = f" on {environment}" if environment else ""
        turn.say(f"What's live{where}:\n" + "\n".join(lines))
        record_read(turn, {"environment": environment or ""})
        return
    if (deployable := _deploy_job(turn, catalog)) is None:
        return
    service, note, job = deployable
    history = deployments(service, await jenkins.builds(job, limit=50))
    envs = [environment] if environment else list(ENVIRONMENTS)
    lines = []
    for env in envs:
        live = live_version(history, env)
        if live is None:
            lines.append(f"• {env}: nothing deployed")
        else:
            by = f" by {live.by}" if live.by else ""
            lines.append(f"• {env}: {live.version} "
                         f"(deployed{by} {ago(live.at)}, {job} #{live.number})")
    recent = [d for d in history if not environment or d.environment == environment][:5]
    if recent:
        lines.append("Recent deploys:")
        for d in recent:
            result = d.result or "RUNNING"
            by = f" by {d.by}" if d.by else ""
            lines.append(f"  {d.version} → {d.environment}: {result}{by}, {ago(d.at)}")
    turn.say(f"{service}{note}:\n" + "\n".join(lines))
    record_read(turn, {"service": service, "environment": environment or ""})


# -- builds -------------------------------------------------------------------------------------


def _build_line(build: Build, now: datetime | None = None) -> str:
    branch = build.parameters.get("BRANCH")
    on = f" ({branch})" if branch else ""
    by = f", started by {build.started_by}" if build.started_by else ""
    if build.building:
        return (f"{build.job} #{build.number}{on} is running for {duration(build.duration_s)}"
                f"{by}.")
    return (f"{build.job} #{build.number}{on}: {build.result}, {ago(build.started_at, now)}, "
            f"took {duration(build.duration_s)}{by}.")


async def run_build(turn: Turn) -> None:
    if (found := await _jenkins_and_jobs(turn)) is None:
        return
    jenkins, catalog = found
    ci_jobs = [j for s in sorted(catalog.services) if (j := catalog.ci_job(s))]
    others = [j for j in catalog.jobs if j not in ci_jobs and not catalog.deploys(j)]
    resolved = _resolve_job(turn, catalog, ci_jobs + others)
    if resolved is None:
        return
    job_name, note = resolved
    job = catalog.jobs[job_name]
    branch = turn.request.get("branch")
    reason = await _acts_on_an_environment(jenkins, catalog, job, branch)
    if reason is not None:
        _done_asking(turn)
        record_refusal(turn, "run_build", {"job": job_name}, "change", reason)
        turn.say(f"{reason} Nothing ran.{note}")
        return
    parameters = {"job": job_name}
    if branch and "BRANCH" not in job.parameters:
        summary = f"Run {job_name} (it takes no branch parameter, so \"{branch}\" is ignored)."
    elif branch:
        parameters["branch"] = branch
        summary = f"Run {job_name} on branch {branch}."
    else:
        default = " on its default branch" if "BRANCH" in job.parameters else ""
        summary = f"Run {job_name}{default}."
    last = await jenkins.last_build(job_name)
    if last is not None:
        summary += " Last build: " + _build_line(last)
    _done_asking(turn)
    await propose(turn, "run_build", parameters, summary + note)


def _run_values(job: Job, branch: str | None) -> dict[str, str]:
    """What a plain build of ``job`` sends Jenkins."""
    return {"BRANCH": branch} if branch and "BRANCH" in job.parameters else {}


async def _acts_on_an_environment(jenkins: JenkinsBackend, catalog: Catalog, job: Job,
                                  branch: str | None) -> str | None:
    """Why ``job`` is not run as a plain build (it deploys, or its parameters, sent or
    defaulted, name an environment), and what to say instead; None when it may be."""
    defaults = await jenkins.parameter_defaults(job.full_name) if job.parameters else {}
    reach = job_reach(job, _run_values(job, branch), defaults)
    if not reach:
        return None
    service = catalog.service_deployed_by(job.full_name)
    if service is not None:
        return (f"{job.full_name} is a deploy job; say \"deploy {service} <version> to "
                "<environment>\" so the deploy rules apply.")
    param = environment_parameter(job)
    what = f"takes an environment ({param})" if param else \
        f"runs on {reach[JOB_ENVIRONMENT]} (one of its parameters says so)"
    return (f"{job.full_name} {what}, so I don't run it as a plain build: its defaults could "
            "deploy anywhere, prod included, without the deploy rules.")


async def _execute_run(rt: Runtime, operation: Operation) -> Outcome:
    p = operation.parameters
    jenkins = _connected(rt)
    job = await jenkins.job(p["job"])
    reason = await _acts_on_an_environment(jenkins, Catalog([job]), job, p.get("branch"))
    if reason is not None:  # it became a deploy job since the preview
        raise InvalidRequest(reason, backend=JENKINS.product)
    return await start_job(rt, operation, job, _run_values(job, p.get("branch")),
                           f"a build of {p['job']}")


async def stop_build(turn: Turn) -> None:
    if (found := await _jenkins_and_jobs(turn)) is None:
        return
    jenkins, catalog = found
    running = [name for name, job in sorted(catalog.jobs.items()) if job.building]
    resolved = _job_among(turn, catalog, running, "Which build should I stop? Running now:",
                          "Nothing is running in Jenkins right now, so there is nothing to stop.")
    if resolved is None:
        return
    job_name, note = resolved
    number_text = turn.request.get("build_number")
    if number_text:
        try:
            build = await jenkins.build(job_name, int(number_text.lstrip("#")))
        except ValueError:
            turn.say(f"\"{number_text}\" is not a build number.")
            return
    else:
        last = await jenkins.last_build(job_name)
        if last is None or not last.building:
            turn.say(f"{job_name} has no running build, so there is nothing to stop."
                     + (f" Last build: {_build_line(last)}" if last else ""))
            _done_asking(turn)
            return
        build = last
    if not build.building:
        turn.say(f"{job_name} #{build.number} is not running (it ended {build.result}), "
                 "so there is nothing to stop.")
        _done_asking(turn)
        return
    by = f", started by {build.started_by}" if build.started_by else ""
    parameters = {"job": job_name, "build_number": str(build.number)}
    deploying = ""
    reach = job_reach(catalog.jobs[job_name], build.parameters)
    if reach:
        # The deploy rules apply to stopping a deploy: the environment it deploys to (prod
        # when that cannot be told, so the strictest rule decides) goes in the request.
        environment = reach[JOB_ENVIRONMENT]
        service = build.parameters.get("SERVICE") or catalog.service_deployed_by(job_name)
        parameters.update({**reach, "environment": environment})
        if service:
            parameters["service"] = service
        version = build.parameters.get("VERSION")
        deploying = (f"deploying {service or job_name}{' ' + version if version else ''} "
                     f"to {environment}, ")
    summary = (f"Stop {job_name} #{build.number} ({deploying}running for "
               f"{duration(build.duration_s)}{by}).")
    _done_asking(turn)
    await propose(turn, "stop_build", parameters, summary + note)


def _stop_wait() -> float:
    """Seconds a stop waits for Jenkins to say the build has ended (``OPSBOT_STOP_WAIT``)."""
    try:
        return max(0.0, float(os.environ.get("OPSBOT_STOP_WAIT") or 5.0))
    except ValueError:
        return 5.0


async def _ended(jenkins: JenkinsBackend, job: str, number: int) -> Build | str:
    """The build once Jenkins says it has ended, polled for ``_stop_wait()`` seconds;
    else why not yet: "" while it runs, the error when its state could not be read."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _stop_wait()
    while True:
        try:
            build = await jenkins.build(job, number)
        except BackendError as exc:  # the stop was sent; only reading its effect failed
            return str(exc)
        if not build.building:
            return build
        remaining = deadline - loop.time()
        if remaining <= 0:
            return ""
        await asyncio.sleep(min(0.5, remaining))


async def _execute_stop(rt: Runtime, operation: Operation) -> Outcome:
    """Ask Jenkins to stop the build, and say "Stopped" only once Jenkins says it has ended.

    Stopping is asynchronous in Jenkins: ``POST stop`` only interrupts the build, which
    ends at its next abort point (a pipeline can take a while, or finish otherwise). A
    build still running after a few seconds is left to the watcher, which posts its end.
    """
    p = operation.parameters
    job, number = p["job"], int(p["build_number"])
    jenkins = _connected(rt)
    try:
        await jenkins.stop(job, number)
    except OutcomeUnknown as exc:
        return Outcome(f"I could not confirm that Jenkins stopped {job} #{number}; "
                       "it may have. I am checking and will post what I find; do not ask again "
                       f"yet. ({exc})",
                       {"job": job, "build_number": number, "stop": True,
                        "sent_at": datetime.now(UTC).isoformat()},
                       follow=True, unknown=True)
    ref: dict[str, Any] = {"job": job, "build_number": number, "stop_requested": True,
                           "sent_at": datetime.now(UTC).isoformat()}
    ended = await _ended(jenkins, job, number)
    if isinstance(ended, str):
        why = (f"I could not read its state just now ({ended}), so it may still be running"
               if ended else f"{job} #{number} is still running: Jenkins stops a build at its "
               "next abort point, and a pipeline can take a while")
        return Outcome(f"Stop requested (confirmed by {operation.confirmed_by}); {why}. I'll "
                       "post here when it has really ended.", ref, follow=True)
    stopped, said = stop_ended(operation, ended)
    ref.update(build_result=ended.result, duration_s=ended.duration_s, build_url=ended.url)
    if stopped:
        ref["stopped"] = True
    return Outcome(said, ref, result="SUCCESS" if stopped else "NOT_STOPPED")


async def build_status(turn: Turn) -> None:
    jenkins = _jenkins(turn)
    if jenkins is None:
        return
    if not turn.request.get("job") and not turn.request.get("service"):
        await list_jobs(turn)
        return
    catalog = await _catalog(turn, jenkins)
    resolved = _resolve_job(turn, catalog, sorted(catalog.jobs))
    if resolved is None:
        return
    job_name, note = resolved
    number_text = turn.request.get("build_number")
    branch = turn.request.get("branch")
    build: Build | None
    if number_text:
        build = await jenkins.build(job_name, int(number_text.lstrip("#")))
    elif branch:
        build = next((b for b in await jenkins.builds(job_name, limit=30)
                      if b.parameters.get("BRANCH") == branch), None)
        if build is None:
            turn.say(f"{job_name} has no recent build of branch {branch}.{note}")
            record_read(turn, {"job": job_name, "branch": branch})
            return
    else:
        build = await jenkins.last_build(job_name)
    if build is None:
        turn.say(f"{job_name} has never been built.{note}")
    else:
        text = _build_line(build) + note
        if not build.building and build.result not in ("SUCCESS", None):
            text += f"\nSay \"why did {job_name} #{build.number} fail?\" for the reason."
        turn.say(text + f"\n{build.url}")
    _done_asking(turn)
    record_read(turn, {"job": job_name, "build_number": number_text or "", "branch": branch or ""})


async def list_jobs(turn: Turn) -> None:
    jenkins = _jenkins(turn)
    if jenkins is None:
        return
    listed = {j.full_name: j for j in await jenkins.jobs()}
    # Only the jobs this person may ask about (a rule with a `when` on job may hide some).
    jobs = [listed[name] for name in permitted(turn, "list_jobs", "job", sorted(listed))]
    text = turn.request.text
    if _FAILING_WORDS.search(text):
        chosen = [j for j in jobs if j.status in ("failure", "unstable", "aborted")]
        title, empty = "Failing in CI", "Nothing is red in CI: every job's last build passed."
    elif _RUNNING_WORDS.search(text):
        chosen = [j for j in jobs if j.building]
        title, empty = "Running now", "Nothing is running in Jenkins right now."
    else:
        chosen, title, empty = jobs, "Jobs", "Jenkins has no jobs."
    if not chosen:
        turn.say(empty)
    else:
        turn.say(f"{title} ({len(chosen)}):\n" + "\n".join(_job_line(j) for j in chosen[:25])
                 + (f"\n… and {len(chosen) - 25} more" if len(chosen) > 25 else ""))
    _done_asking(turn)
    record_read(turn, {"filter": title})


def _job_line(job: Job) -> str:
    icon = "⏳" if job.building else _ICONS.get(job.status, "•")
    state = "running" if job.building else job.status.replace("_", " ")
    number = f" #{job.last_build}" if job.last_build else ""
    return f"{icon} {job.full_name}{number}: {state}"


async def build_failure(turn: Turn) -> None:
    if (found := await _jenkins_and_jobs(turn)) is None:
        return
    jenkins, catalog = found
    failing = [n for n, j in sorted(catalog.jobs.items())
               if j.status in ("failure", "unstable", "aborted")]
    resolved = _job_among(turn, catalog, failing,
                          "Which job's failure should I look at? Failing now:",
                          "Nothing is failing in CI right now.")
    if resolved is None:
        return
    job_name, note = resolved
    number_text = turn.request.get("build_number")
    try:
        report = await jenkins.failure_report(job_name, int(number_text.lstrip("#"))
                                              if number_text else None)
    except NotFound as exc:
        turn.say(str(exc) + note)
        _done_asking(turn)
        return
    where = f" in stage {report.stage}" if report.stage else ""
    lines = "\n".join(report.error_lines)
    text = f"{report.job} #{report.number} ended {report.result}{where}: {report.summary}.{note}"
    if lines:
        text += f"\n```\n{lines}\n```"
    turn.say(text + f"\nFull log: {report.url}console")
    _done_asking(turn)
    record_read(turn, {"job": job_name, "build_number": str(report.number)})


def completion_message(operation: Operation) -> str:
    """What opsbot says in the conversation when an operation's build has ended."""
    p, ref = operation.parameters, operation.backend_ref
    if operation.intent == "stop_build" and operation.result in ("SUCCESS", "NOT_STOPPED") \
            and operation.result_detail:
        return operation.result_detail  # the watcher's whole sentence (stop_ended)
    took = f" in {duration(float(ref['duration_s']))}" if ref.get("duration_s") is not None else ""
    job = ref.get("job", p.get("job"))
    build = f"{job} #{ref['build_number']}" if ref.get("build_number") else str(job)
    result = operation.result or "UNKNOWN"
    if result in UNRESOLVED_RESULTS and operation.result_detail:
        return operation.result_detail
    detail = f" {operation.result_detail}." if operation.result_detail else ""
    found = (" (Jenkins' answer to the start had been lost; this is the build opsbot started, "
             f"found by {ref['found_by']}.)" if ref.get("found_by") else "")
    if operation.intent in ("deploy", "rollback"):
        if result == "SUCCESS":
            return (f"{p['service']} {p['version']} is live on {p['environment']}: SUCCESS{took} "
                    f"({build}).{found}")
        doing = (f"Rolling back {p['service']} on {p['environment']} to {p['version']}"
                 if operation.intent == "rollback" else
                 f"Deploying {p['service']} {p['version']} to {p['environment']}")
        return (f"{doing} did not succeed: "
                f"{result}{took} ({build}).{detail} {p['environment']} keeps its previous version "
                f"unless the job says otherwise; say \"why did {ref.get('job', '')} fail?\" for "
                f"details.{found}")
    if result == "SUCCESS":
        return f"{build} finished: SUCCESS{took}.{found}"
    return f"{build} finished: {result}{took}.{detail}{found}"


def follow_build(operation_id: str, ref: Mapping[str, Any] | None = None) -> None:
    """The watcher follows the operation's build to its end (``Outcome.follow``)."""
    WATCHER.follow(operation_id, ref=ref)


def _declare(intent: str, handler: Handler, title: str, gerund: str, describe: Describe, *,
             executor: Executor | None = None, preposition: str = "on",
             aliases: tuple[str, ...] = (), answers: bool = True,
             risk: str | None = None,
             acts_on: tuple[str, ...] = ("service", "job"),
             needs_object: bool = True) -> IntentKind:
    """A Jenkins intent: a read unless it has an executor, whose build the watcher follows.
    ``risk``: the default when no policy.yml rule names the intent (None: a rule must)."""
    return IntentKind(intent, handler, title, gerund, preposition, describe, executor,
                      backend=JENKINS.product, risk=risk, read=executor is None,
                      answers=answers, aliases=aliases,
                      completion=completion_message if executor else None,
                      follow=follow_build if executor else None, acts_on=acts_on,
                      needs_object=needs_object)


INTENTS = (
    _declare("deploy", deploy, "deploy a version", "Deploying", preposition="to",
             describe=lambda e: phrase("deploy", subject(e) or "(service not given)",
                                       on("to", e.get("environment"))),
             executor=_execute_deploy, aliases=("ship", "release", "roll out", "rollout"),
             acts_on=("service",)),
    _declare("rollback", rollback, "roll back", "Rolling back",
             describe=lambda e: phrase("roll back", subject(e) or "(service not given)",
                                       on("on", e.get("environment"))),
             executor=_execute_deploy, aliases=("roll back", "revert", "undo"),
             acts_on=("service",)),
    _declare("deploy_history", deploy_history, "what is deployed where",
             "Showing deploy history",
             describe=lambda e: phrase("show what is deployed", on("for", subject(e)),
                                       on("on", e.get("environment"))), needs_object=False),
    _declare("run_build", run_build, "run a build", "Running a build",
             describe=lambda e: phrase("run a build", on("of", target(e)),
                                       on("from", e.get("branch"))),
             executor=_execute_run, aliases=("build", "run")),
    _declare("stop_build", stop_build, "stop a build", "Stopping a build",
             describe=lambda e: phrase("stop build", build_of(e)),
             executor=_execute_stop, aliases=("abort", "stop", "cancel build")),
    _declare("build_status", build_status, "build status", "Showing a build's status",
             describe=lambda e: phrase("show the build status", on("of", build_of(e)),
                                       on("on", e.get("branch"))),
             aliases=("status", "green")),
    _declare("list_jobs", list_jobs, "what's failing in CI", "Listing the CI jobs",
             describe=lambda e: "list the CI jobs", aliases=("red", "failing"), answers=False,
             acts_on=(), needs_object=False),
    _declare("build_failure", build_failure, "why a build failed", "Explaining a build failure",
             describe=lambda e: phrase("explain why", build_of(e) or "the last build", "failed"),
             aliases=("why", "failure")),
)
"""The Jenkins intents. A new one: its handler above and its declaration here (for a
change, an executor too); its risk comes from ``policy.yml``."""
