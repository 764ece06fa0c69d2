"""A local GitHub REST API that PyGithub 2.10 cannot tell from api.github.com, and as unkind.

Why: opsbot's GitHub backend, its tests and the demo need GitHub offline, without an
organisation, a token or an App. This package serves the REST API for what opsbot asks
(pull requests and their reviews, checks and statuses, Actions workflows and runs, merging,
GitHub App authentication), moves check runs and workflow runs on a clock, and can post
the webhooks GitHub would. Each behaviour names its source in GitHub's documentation.

**Endpoints**: ``/user``, ``/users/{login}``, ``/orgs/{org}``, ``/orgs/{org}/repos``,
``/repos/{o}/{r}``; ``.../pulls`` (state, head, base, sort, direction), ``.../pulls/{n}``
(``mergeable`` null on the first read after a push), ``.../pulls/{n}/reviews``,
``.../pulls/{n}/requested_reviewers``, ``PUT .../pulls/{n}/merge`` (405, 409, 422);
``/search/issues`` (``is:pr review-requested:LOGIN`` and friends);
``.../commits/{ref}/check-runs``, ``.../commits/{ref}/status``; ``.../actions/workflows``,
``.../actions/workflows/{id or file}`` (``/runs``, ``POST /dispatches`` with GitHub's 422s),
``.../actions/runs`` (actor, branch, event, status, head_sha), ``.../actions/runs/{id}``,
``/jobs``, ``POST .../rerun-failed-jobs`` (403 while running); ``.../contents/{path}``
(base64); ``/rate_limit``; the App's ``/app``, ``/app/installations/{id}``,
``POST /app/installations/{id}/access_tokens``, ``/repos/{o}/{r}/installation`` and
``/installation/repositories``. Lists page with ``Link`` headers (30 a page, at most 100).

**Unkind on purpose**: 401 ``Bad credentials``; 404 for a repository the token cannot see;
``x-ratelimit-*`` on every answer, a primary limit per token (403, or 429) and a secondary
one (``secondary_limit``, ``fail_next(403|429)``: ``retry-after``); expiring installation
tokens; App JWTs checked like GitHub checks them; the GitHub Enterprise Server prefix
``/api/v3`` (``enterprise=True``).

Seeded (names in ``_model``, the demo in ``_seed``): organisation ``acme`` with a repository
per demo service (``SERVICE_REPOS``; ``checkout`` is ``checkout-web``), people ``alice-gh``,
``bob-gh``, ``carol-gh`` and opsbot's machine user ``opsbot-gh`` (``DEFAULT_TOKEN``), an
outsider (``OUTSIDER_TOKEN``, sees only the public ``search``); PR 42 in checkout-web waits
for bob's review with ``e2e`` failing and no approval; ``e2e.yml`` takes a required choice
input ``suite`` (smoke, full); ``ci.yml`` has no ``workflow_dispatch``.

    with GithubSimulator(clock=clock) as sim:
        gh = Github(auth=Auth.Token(sim.token), base_url=sim.api_url, retry=None)
        pr = gh.get_repo("acme/checkout-web").get_pull(42)

    python -m simulators.github --port 8086   # prints GITHUB_API_URL and the token

The package, one module a concern: ``_model`` (names, limits, records), ``_auth`` (tokens,
JWTs, the App key), ``_state`` (everything that changes, under one lock; merging,
dispatching, re-running), ``_seed`` (the demo; reading workflow files), ``_render`` (the
JSON), ``_app`` (HTTP: prefix, auth, rate limits, routes, pages), ``_webhooks`` (delivery)
and ``_simulator`` (``GithubSimulator``, ``ManualClock`` and ``main``).
"""

from __future__ import annotations

from simulators.github._auth import AppKey, generate_app_key
from simulators.github._model import (
    ALICE,
    APP_ID,
    BOB,
    CAROL,
    CHECKOUT_REPO,
    CI_WORKFLOW,
    DEFAULT_TOKEN,
    E2E_WORKFLOW,
    INSTALLATION_ID,
    OPSBOT,
    OUTSIDER,
    OUTSIDER_TOKEN,
    OWNER,
    REVIEW_PR,
    SERVICE_REPOS,
    RecordedRequest,
)
from simulators.github._simulator import GHES_PREFIX, GithubSimulator, ManualClock, main

__all__ = [
    "ALICE",
    "APP_ID",
    "BOB",
    "CAROL",
    "CHECKOUT_REPO",
    "CI_WORKFLOW",
    "DEFAULT_TOKEN",
    "E2E_WORKFLOW",
    "GHES_PREFIX",
    "INSTALLATION_ID",
    "OPSBOT",
    "OUTSIDER",
    "OUTSIDER_TOKEN",
    "OWNER",
    "REVIEW_PR",
    "SERVICE_REPOS",
    "AppKey",
    "GithubSimulator",
    "ManualClock",
    "RecordedRequest",
    "generate_app_key",
    "main",
]
