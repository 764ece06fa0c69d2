"""What opsbot knows about the live Jenkins: services, their jobs, and what is deployed where.

Why: people say "payments", "the checkout api" or "paymnts"; Jenkins has
``payments-ci`` and ``deploy-payments``. The catalog is built from the live job list
(never a hard-coded one) and resolves such names, exactly where it can and with
rapidfuzz where it must, reporting ambiguity instead of guessing.

Job naming convention (the demo's, and a common one): ``<service>-ci`` builds a
service, ``deploy-<service>`` deploys it with parameters SERVICE, VERSION and
ENVIRONMENT. Other jobs (``platform/nightly-integration``) are reachable by name.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from rapidfuzz import fuzz, process

from actions.backends.jenkins import Build, Job

__all__ = [
    "Catalog",
    "Deployment",
    "Resolution",
    "ago",
    "deployments",
    "duration",
    "environment_parameter",
    "live_version",
    "previous_version",
    "resolve_name",
]

ENVIRONMENTS = ("dev", "staging", "prod")
# ENVIRONMENT, ENV, TARGET_ENV, DEPLOY_ENVIRONMENT, TARGET, STAGE, DEPLOY_TO, NAMESPACE,
# ENV_NAME ...: a parameter that picks where a job acts.
_ENVIRONMENT_PARAMETER = re.compile(
    r"^(?:\w*_)?(?:env|environments?|stage|target|deploy_?to|namespace)(?:_name)?$",
    re.IGNORECASE)
_FILLER = re.compile(
    r"^(?:the|our|a)\s+|\s+(?:service|svc|api|app|application|build|job|pipeline|ci|deploy(?:ment)?)$"
)
# A fuzzy match needs this score (0-100) and this lead over the runner-up to count as one.
_MIN_SCORE = 80.0
_MIN_LEAD = 8.0


@dataclass(frozen=True)
class Resolution:
    """The outcome of resolving a name: one match, several candidates, or none."""

    query: str
    match: str | None
    exact: bool
    candidates: tuple[str, ...]

    @property
    def ambiguous(self) -> bool:
        return self.match is None and len(self.candidates) > 1


def environment_parameter(job: Job) -> str | None:
    """The job's parameter that picks an environment (``ENVIRONMENT``, ``ENV`` ...), or None."""
    return next((p for p in job.parameters if _ENVIRONMENT_PARAMETER.match(p)), None)


def _clean(name: str) -> str:
    text = " ".join(name.lower().replace("_", "-").split())
    previous = None
    while previous != text:
        previous, text = text, _FILLER.sub("", text).strip()
    return text.replace(" ", "-")


class Catalog:
    """Services and jobs of one Jenkins, from its job list.

    ``claimed`` maps jobs to services as the service catalog says
    (``actions.service_catalog``: ``jenkins.io/job-full-name``); such a job builds its
    service, or deploys it if it takes an environment or its name starts with ``deploy``.
    The naming convention places the other jobs, in a role the catalog left free.
    """

    def __init__(self, jobs: Iterable[Job], claimed: Mapping[str, str] | None = None) -> None:
        self.jobs: dict[str, Job] = {job.full_name: job for job in jobs}
        self.services: dict[str, dict[str, str]] = {}
        claimed = {job: service for job, service in (claimed or {}).items() if job in self.jobs}
        for full_name, service in claimed.items():
            job = self.jobs[full_name]
            role = ("deploy" if job.name.lower().startswith("deploy")
                    or environment_parameter(job) is not None else "ci")
            self.services.setdefault(service, {}).setdefault(role, full_name)
        taken = {(service, role) for service, roles in self.services.items() for role in roles}
        for job in self.jobs.values():
            if job.full_name in claimed:
                continue
            if job.name.startswith("deploy-") and len(job.name) > 7:
                service, role = job.name[7:], "deploy"
            elif job.name.endswith("-ci") and len(job.name) > 3:
                service, role = job.name[:-3], "ci"
            else:
                continue
            if (service, role) not in taken:
                self.services.setdefault(service, {})[role] = job.full_name

    def deploy_job(self, service: str) -> str | None:
        return self.services.get(service, {}).get("deploy")

    def ci_job(self, service: str) -> str | None:
        return self.services.get(service, {}).get("ci")

    def deployable(self) -> list[str]:
        return sorted(s for s, jobs in self.services.items() if "deploy" in jobs)

    def deploys(self, job_name: str) -> bool:
        """Whether the job deploys: a service's deploy job, or any job taking an environment.

        Such a job is run only through the deploy intents (or stopped under the deploy
        rules), never as a plain build: its defaults could deploy anywhere, prod included.
        """
        job = self.jobs.get(job_name)
        return job is not None and (self.service_deployed_by(job_name) is not None
                                    or environment_parameter(job) is not None)

    def service_deployed_by(self, job_name: str) -> str | None:
        """The service whose deploy job this is, or None."""
        return next((s for s, jobs in self.services.items() if jobs.get("deploy") == job_name),
                    None)

    def environment_of(self, job_name: str, build: Build | None = None) -> str | None:
        """Where a deploy job (or one of its builds) deploys: the build's environment
        parameter, else the environment named in the job's name (``deploy-x-prod``)."""
        job = self.jobs.get(job_name)
        param = environment_parameter(job) if job is not None else None
        if build is not None and param and build.parameters.get(param):
            return build.parameters[param].strip().lower()
        words = re.split(r"[-_/.]", job_name.lower())
        return next((env for env in ENVIRONMENTS if env in words), None)

    def resolve_service(self, name: str, *, deployable: bool = False) -> Resolution:
        """``"the checkout api"`` -> ``checkout``; ``"paymnts"`` -> ``payments`` (not exact)."""
        pool = self.deployable() if deployable else sorted(self.services)
        return _resolve(name, pool, aliases={s: s for s in pool})

    def resolve_job(self, name: str) -> Resolution:
        """A job by full name, short name or service (its CI job), exact before fuzzy."""
        aliases: dict[str, str] = {}
        for full_name, job in self.jobs.items():
            aliases[full_name.lower()] = full_name
            aliases.setdefault(job.name.lower(), full_name)
        for service, jobs in self.services.items():
            if "ci" in jobs:
                aliases.setdefault(service, jobs["ci"])
        return _resolve(name, sorted(set(aliases.values())), aliases=aliases)


def resolve_name(name: str, pool: Sequence[str],
                 aliases: Mapping[str, str] | None = None) -> Resolution:
    """Resolve ``name`` against any list of names (services with logs, Jira users, ...);
    ``aliases`` are other names of the pool's members (``checkout-web`` -> ``checkout``)."""
    known = {p.lower(): p for p in pool}
    for alias, member in (aliases or {}).items():
        known.setdefault(alias.lower(), member)
    return _resolve(name, sorted(pool), aliases=known)


def _resolve(name: str, pool: Sequence[str], *, aliases: dict[str, str]) -> Resolution:
    raw = name.strip()
    for key in (raw.lower(), _clean(raw)):
        if key in aliases:
            return Resolution(raw, aliases[key], True, (aliases[key],))
    query = _clean(raw)
    if not query or not pool:
        return Resolution(raw, None, False, ())
    choices = list(aliases)
    scored = process.extract(query, choices, scorer=fuzz.WRatio, limit=10)
    best: dict[str, float] = {}
    for alias, score, _ in scored:
        target = aliases[alias]
        best[target] = max(best.get(target, 0.0), float(score))
    ranked = sorted(best.items(), key=lambda item: -item[1])
    good = [(target, score) for target, score in ranked if score >= _MIN_SCORE]
    if not good:
        return Resolution(raw, None, False, ())
    if len(good) == 1 or good[0][1] - good[1][1] >= _MIN_LEAD:
        return Resolution(raw, good[0][0], False, (good[0][0],))
    return Resolution(raw, None, False, tuple(t for t, _ in good[:4]))


# -- deployments -------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    """One run of a deploy job, read from its parameters."""

    service: str
    version: str
    environment: str
    result: str | None
    by: str | None
    at: datetime
    job: str
    number: int
    duration_s: float

    @property
    def succeeded(self) -> bool:
        return self.result == "SUCCESS"


def deployments(service: str, builds: Iterable[Build]) -> list[Deployment]:
    """Deploy builds as deployments, newest first; those without VERSION/ENVIRONMENT are skipped."""
    found = []
    for build in builds:
        version = build.parameters.get("VERSION")
        environment = build.parameters.get("ENVIRONMENT")
        if not version or not environment:
            continue
        found.append(Deployment(
            service=build.parameters.get("SERVICE") or service, version=version,
            environment=environment, result=build.result, by=build.started_by,
            at=build.started_at, job=build.job, number=build.number, duration_s=build.duration_s,
        ))
    return sorted(found, key=lambda d: (d.at, d.number), reverse=True)


def live_version(history: Sequence[Deployment], environment: str) -> Deployment | None:
    """The newest successful deployment to ``environment``."""
    return next((d for d in history if d.environment == environment and d.succeeded), None)


def previous_version(history: Sequence[Deployment], environment: str) -> Deployment | None:
    """The newest successful deployment to ``environment`` of a version other than the live one."""
    live = live_version(history, environment)
    if live is None:
        return None
    return next(
        (d for d in history if d.environment == environment and d.succeeded
         and d.version != live.version and (d.at, d.number) < (live.at, live.number)),
        None,
    )


# -- wording -------------------------------------------------------------------------------


def ago(moment: datetime, now: datetime | None = None) -> str:
    """``3 hours ago``, ``2 days ago``, ``just now``."""
    now = now or datetime.now(UTC)
    seconds = max(0.0, (now - moment).total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''} ago"
    return "just now"


def duration(seconds: float) -> str:
    """``2m13s``, ``41s``, ``1h02m``."""
    total = int(round(max(0.0, seconds)))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    if minutes:
        return f"{minutes}m{secs:02d}s"
    return f"{secs}s"
