"""``opsbot catalog``: what opsbot knows about each service, and where each fact came from.

    opsbot catalog [--json]

It reads ``OPSBOT_CATALOG`` (Backstage descriptors) and ``GITHUB_OWNER`` as the servers
do, and adds Jenkins' jobs when ``JENKINS_URL`` is set and Jenkins answers; when it does
not, the listing says so and goes on. A catalog that cannot be used exits 1 with each
problem's place and fix, as ``opsbot run`` would stop.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from opsbot._training import CommandError
from opsbot.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    from actions.service_catalog import Fact, JenkinsJob, Service, ServiceCatalog

__all__ = ["add_command", "check_catalog"]


def check_catalog(env: Mapping[str, str]) -> str:
    """The start-up line about the service catalog; CommandError (the places and fixes)
    when it cannot be used, before anything starts."""
    from actions.errors import ConfigError
    from actions.service_catalog import ServiceCatalog

    try:
        return f"Service catalog: {ServiceCatalog.from_env(env).describe()}"
    except ConfigError as exc:
        raise CommandError(str(exc)) from None


def _with_jenkins(catalog: ServiceCatalog) -> tuple[ServiceCatalog, dict[str, str]]:
    """The catalog with the jobs of the Jenkins in the environment, and what became of it."""
    import asyncio

    from actions.backends.jenkins import JENKINS
    from actions.catalog import Catalog
    from actions.errors import OpsbotError

    try:
        backend = JENKINS.from_env(os.environ)
    except OpsbotError as exc:
        return catalog, {"state": "misconfigured", "detail": f"{exc} Its jobs are left out."}
    if backend is None:
        return catalog, {"state": "not configured",
                         "detail": f"{JENKINS.setup} to add its jobs"}
    try:
        jobs = asyncio.run(backend.jobs())
    except OpsbotError as exc:
        return catalog, {"state": "not reached",
                         "detail": f"{backend.url}: {exc} Its jobs are left out."}
    jenkins = Catalog(jobs, catalog.job_claims())
    return catalog.with_jenkins(jenkins), {"state": "connected",
                                           "detail": f"{len(jobs)} jobs at {backend.url}"}


def _fact(fact: Fact[Any]) -> dict[str, Any]:
    return {"value": None if fact.value is None else str(fact.value), "origin": fact.origin}


def _job(job: JenkinsJob) -> dict[str, Any]:
    return {"job": job.full_name, "role": job.role, "instance": job.instance,
            "listed": job.listed, "origin": job.origin}


def _as_json(catalog: ServiceCatalog, jenkins: Mapping[str, str]) -> dict[str, Any]:
    services = []
    for s in catalog.services():
        repository = _fact(s.repository)
        if s.repository.value is not None:
            repository.update(owner=s.repository.value.owner, name=s.repository.value.name)
        services.append({
            "name": s.name, "title": s.title, "system": s.system, "owner": s.owner,
            "origin": s.origin, "repository": repository,
            "kubernetes_selector": _fact(s.kubernetes_selector),
            "kubernetes_namespace": _fact(s.kubernetes_namespace),
            "jenkins_jobs": [_job(j) for j in s.jenkins_jobs],
        })
    return {"catalog": catalog.source, "github_owner": catalog.github_owner,
            "jenkins": dict(jenkins), "services": services}


def _job_shown(job: JenkinsJob) -> str:
    name = f"{job.instance}:{job.full_name}" if job.instance else job.full_name
    said = [job.role] if job.role else []
    if job.listed is False:
        said.append("not in Jenkins' job list")
    return f"{name} ({', '.join(said)})" if said else name


def _rows(service: Service, jenkins: Mapping[str, str]) -> list[tuple[str, str, str]]:
    rows = [("repository", str(service.repository.value or "-"), service.repository.origin),
            ("kubernetes", service.kubernetes_selector.value or "-",
             service.kubernetes_selector.origin),
            ("namespace", service.kubernetes_namespace.value or "-",
             service.kubernetes_namespace.origin)]
    for number, job in enumerate(service.jenkins_jobs):
        rows.append(("jenkins" if number == 0 else "", _job_shown(job), job.origin))
    if not service.jenkins_jobs:
        reason = ("no job in Jenkins' job list" if jenkins["state"] == "connected"
                  else f"Jenkins was not asked ({jenkins['state']})")
        rows.append(("jenkins", "-", reason))
    return rows


def _human(catalog: ServiceCatalog, jenkins: Mapping[str, str]) -> str:
    from actions.service_catalog import OWNER_VARIABLE

    owner = (f"{OWNER_VARIABLE}={catalog.github_owner}" if catalog.github_owner
             else f"{OWNER_VARIABLE} is not set")
    lines = [f"Service catalog: {catalog.describe()}", f"GitHub owner: {owner}",
             f"Jenkins: {jenkins['state']}: {jenkins['detail']}", ""]
    services = catalog.services()
    if not services:
        lines.append("No services: the catalog has no Component and Jenkins implies none.")
    rows = {s.name: _rows(s, jenkins) for s in services}
    width = max((len(value) for r in rows.values() for _, value, _ in r), default=0)
    for service in services:
        title = f" \"{service.title}\"" if service.title else ""
        about = [f"{what} {value}" for what, value in (("system", service.system),
                                                       ("owner", service.owner)) if value]
        lines.append(f"{service.name}{title}: " + ", ".join([*about, f"from {service.origin}"]))
        lines += [f"  {label:<11}{value:<{width}}  {origin}"
                  for label, value, origin in rows[service.name]]
        lines.append("")
    return "\n".join(lines).rstrip()


def cmd_catalog(args: argparse.Namespace, settings: Settings) -> int:
    from actions.errors import ConfigError
    from actions.service_catalog import ServiceCatalog

    try:
        catalog = ServiceCatalog.from_env(os.environ)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    catalog, jenkins = _with_jenkins(catalog)
    if args.json:
        print(json.dumps(_as_json(catalog, jenkins), indent=2, ensure_ascii=False))
    else:
        print(_human(catalog, jenkins))
    return 0


def add_command(commands: Any) -> None:
    """``opsbot catalog``, for ``opsbot.cli.build_parser``."""
    sub = commands.add_parser(
        "catalog", help="what opsbot knows about each service, and where each fact came from",
        description="Each service with its repository, Kubernetes selector and namespace, "
                    "and Jenkins jobs, each with its origin: a line of $OPSBOT_CATALOG "
                    "(Backstage descriptors), a naming convention, or Jenkins' job list "
                    "(when $JENKINS_URL is set and Jenkins answers).")
    sub.add_argument("--json", action="store_true", help="print JSON")
    sub.set_defaults(func=cmd_catalog)
