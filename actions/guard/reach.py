"""What a request reaches in Jenkins, told to the policy whatever the request is called.

Why: the prod rules are written for deploys ("deploy with environment prod needs a
release manager"), but a deploy job can be reached by other paths: stopping a running
deploy, a team operation whose ``job`` parameter names ``deploy-payments``, an event
button. Jobs by kind (docs/safety.md): every request that would start or stop a
deploy job carries, in the parameters the policy decides on and the confirmation binds,
the job's kind and the environment it acts on, read from the values Jenkins would use
(what is sent, and the job's defaults for what is not), whatever the operation or the
job calls them. ``Policy.decide`` then applies the deploy rules of that environment on
top of the request's own rule, and the Jenkins call itself (``actions.flows.jenkins.start_job``)
checks that what it sends is what was decided (:func:`check_reach`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from actions.backends.jenkins import Job
from actions.catalog import ENVIRONMENTS, Catalog, environment_parameter
from actions.errors import InvalidRequest
from actions.guard.policy import DEPLOY_INTENTS, JOB_ENVIRONMENT, JOB_KIND, JOB_SERVICE
from actions.values import ENVIRONMENTS as ENVIRONMENT_NAMES

__all__ = ["check_reach", "job_reach"]

_STRICTEST = "prod"
# Parameters whose values are git names or versions, not places: a branch called
# "staging" does not make a CI job a deploy.
_NOT_A_PLACE = re.compile(
    r"^(?:\w*_)?(?:branch|ref|tag|commit|sha|revision|version|pr|pull_request)(?:_\w*)?$",
    re.IGNORECASE)


def job_reach(job: Job, sent: Mapping[str, str],
              defaults: Mapping[str, str] | None = None) -> dict[str, str]:
    """The policy parameters of a call that starts (or stops a build of) ``job`` with the
    values ``sent`` (Jenkins gives the others their ``defaults``); empty for a job that
    does not deploy.

    A job deploys when its name says so (``deploy-<service>``), when a parameter's name
    says it picks a place (ENVIRONMENT, TARGET, STAGE, NAMESPACE ...), or when any value
    it would run with names an environment ("prod", "production", "live" ...), whatever
    the parameter is called. The environment is the strictest one named; a place
    parameter whose value is not a known environment ("eu-west", or empty) counts as
    prod, as does a deploy job that names none: the prod rule must not be escaped by a
    spelling or a default opsbot cannot vouch for.
    """
    values = {**(defaults or {}), **sent}
    named = {ENVIRONMENT_NAMES[v.strip().lower()] for k, v in values.items()
             if v and v.strip().lower() in ENVIRONMENT_NAMES and not _NOT_A_PLACE.match(k)}
    catalog = Catalog([job])
    place = environment_parameter(job)
    if not (catalog.deploys(job.full_name) or named):
        return {}
    if place is not None and (values.get(place) or "").strip().lower() not in ENVIRONMENT_NAMES:
        named.add(_STRICTEST)
    if not named:
        named.add(catalog.environment_of(job.full_name) or _STRICTEST)
    environment = max(named & set(ENVIRONMENTS) or {_STRICTEST}, key=ENVIRONMENTS.index)
    reach = {JOB_KIND: "deploy", JOB_ENVIRONMENT: environment}
    service = (values.get("SERVICE") or catalog.service_deployed_by(job.full_name) or "").strip()
    if service:
        reach[JOB_SERVICE] = service.lower()
    return reach


def check_reach(intent: str, decided: Mapping[str, str], job: Job, sent: Mapping[str, str],
                defaults: Mapping[str, str] | None = None) -> None:
    """Refuse a Jenkins call that reaches more than the policy decided on.

    ``decided``: the parameters of the confirmed operation (what the policy and the
    confirmation saw); ``sent`` and ``defaults``: what the job is about to run with. A
    deploy or rollback must deploy to the environment it was decided for; any other
    request that reaches a deploy job must have carried that job's reach. InvalidRequest
    otherwise (nothing is sent; the job or what opsbot would send changed since the
    preview).
    """
    reach = job_reach(job, sent, defaults)
    if not reach:
        return
    environment = reach[JOB_ENVIRONMENT]
    if intent in DEPLOY_INTENTS:
        if decided.get("environment") == environment:
            return
    elif (decided.get(JOB_KIND) == "deploy"
          and decided.get(JOB_ENVIRONMENT) == environment):
        return
    raise InvalidRequest(
        f"{job.full_name} deploys to {environment}, which is not what was confirmed (the job "
        "or what opsbot would send it changed since the preview), so opsbot did not start it. "
        "Ask again for a preview that shows it.", backend="Jenkins")
