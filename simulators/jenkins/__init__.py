"""A local Jenkins that python-jenkins 1.8.3 cannot tell from the real one.

Why: opsbot's Jenkins backend, its tests and ``opsbot demo`` need a Jenkins with
realistic jobs, history and failures, on any machine, offline. This package serves
the REST API that python-jenkins calls: ``/api/json`` with ``tree``/``depth``, jobs
and folders (``job/a/job/b``), ``build`` / ``buildWithParameters`` -> 201 + queue
``Location``, queue items that turn into builds, build JSON with parameters and
causes, ``consoleText`` (growing while the build runs), ``stop``, ``/me``,
``/whoAmI``, ``/computer`` (for ``get_running_builds``), the crumb issuer, Basic auth
with an API token or a password, and the error pages and status codes Jenkins
answers with.

Crumbs are bound to the web session (JSESSIONID) for password logins, and API-token
requests need none (``restart`` drops the sessions); a stop takes effect when the build
reaches an abort point, not when ``POST stop`` answers (``set_stop``). Each method's
docstring names its source.

An exception inside a request gets Jenkins' "Oops!" page (500), which names neither the
exception nor its message: only "A problem occurred while processing the request" and a
logging id (``core/src/main/resources/jenkins/model/Jenkins/oops.jelly``: the stack
trace is printed only when ``Jenkins.shouldShowStackTrace()``, i.e. the
``jenkins.model.Jenkins.SHOW_STACK_TRACE`` system property, is set;
``show_stack_trace=True`` here). So a client cannot learn from the page why a bad
choice value was refused; it has to check the job's parameter definitions itself.

Builds progress on the clock, not on a background thread: whenever the state is
read it is first brought up to date, under one lock, by replaying queue and build
events in time order. So a build's timing never depends on who polls it or when.

    with JenkinsSimulator() as sim:
        server = jenkins.Jenkins(sim.url, username=sim.user, password=sim.token, timeout=5)
        queue_id = server.build_job("deploy-payments", {"VERSION": "2.4.1", "ENVIRONMENT": "prod"})

    python -m simulators.jenkins --port 8080     # prints the URL and credentials

The package, one module a concern: ``_model`` (jobs, builds, queue items), ``_seed``
(the YAML catalogue), ``_tree`` (the ``tree`` query parameter), ``_state`` (the rules,
under one lock), ``_render`` (Jenkins' JSON), ``_app`` (HTTP, auth, crumbs, error pages)
and ``_simulator`` (``JenkinsSimulator`` and ``main``).
"""

from __future__ import annotations

from simulators._seed import SeedError
from simulators.jenkins._model import (
    DEFAULT_SEED,
    DEFAULT_TOKEN,
    RESULTS,
    BuildSnapshot,
    RecordedRequest,
)
from simulators.jenkins._simulator import JenkinsSimulator, main

__all__ = [
    "DEFAULT_SEED",
    "DEFAULT_TOKEN",
    "RESULTS",
    "BuildSnapshot",
    "JenkinsSimulator",
    "RecordedRequest",
    "SeedError",
    "main",
]
