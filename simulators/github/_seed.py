"""The demo GitHub: organisation ``acme``, a repository per demo service, their workflows,
pull requests, checks and statuses, with times relative to the clock at start.

Why apart: what the demo shows is one job, and reading a workflow file (its triggers, its
``workflow_dispatch`` inputs, its jobs) is what makes the contents endpoint and the
dispatch checks agree.

State of the demo at start-up (names in ``_model``):
  red on main:   billing (build), search (unit tests), inventory (build)
  checkout-web:  PR 42 (alice) waits for bob's review, ``e2e`` failed, no approval;
                 PR 43 (bob) approved and green; PR 44 (carol) conflicts; PR 45 a draft;
                 PR 40 merged, PR 41 closed
  payments:      PR 7 (bob) green, waits for alice's approval
  search:        public; every other repository is private (the outsider gets 404)
"""

from __future__ import annotations

from typing import Any

import yaml

from simulators.github._model import (
    ALICE,
    BOB,
    CAROL,
    CHECKOUT_REPO,
    CI_WORKFLOW,
    E2E_WORKFLOW,
    OPSBOT,
    OUTSIDER,
    OWNER,
    REVIEW_PR,
    SERVICE_REPOS,
    _Input,
    _Pull,
    _Repo,
    _Review,
    _Status,
    _User,
    _Workflow,
    sha_of,
)
from simulators.github._state import _State

CI_YAML = """\
name: CI
on:
  push:
    branches: [main]
  pull_request:
jobs:
  build:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: make build
  unit:
    name: unit tests
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: make test
  lint:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: make lint
"""

E2E_YAML = """\
name: E2E
on:
  pull_request:
  workflow_dispatch:
    inputs:
      suite:
        description: Which end-to-end suite to run
        required: true
        type: choice
        options: [smoke, full]
      browser:
        description: Browser to drive
        required: false
        default: chromium
        type: string
      debug:
        description: Keep traces of every test
        required: false
        default: false
        type: boolean
jobs:
  e2e:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - run: make e2e SUITE=${{ inputs.suite || 'smoke' }}
"""

_HOUR = 3600.0
_RED = {"billing": {"build": "failure"}, "search": {"unit tests": "failure"},
        "inventory": {"build": "failure"}}
_PUBLIC = {"search"}


def parse_workflow(text: str, path: str, workflow_id: int, created: float) -> _Workflow:
    """A workflow file as Actions reads it: triggers, dispatch inputs, job names.

    YAML 1.1 reads a bare ``on`` key as True, so both spellings are looked up
    (docs.github.com/en/actions/writing-workflows/workflow-syntax-for-github-actions).
    """
    data: dict[Any, Any] = yaml.safe_load(text) or {}
    on = data.get("on", data.get(True)) or {}
    if isinstance(on, str):
        on = {on: None}
    elif isinstance(on, list):
        on = {name: None for name in on}
    dispatch = on.get("workflow_dispatch") or {}
    inputs = {}
    for name, spec in (dispatch.get("inputs") or {}).items():
        spec = spec or {}
        default = spec.get("default")
        inputs[name] = _Input(
            name, bool(spec.get("required", False)),
            None if default is None else str(default).lower() if isinstance(default, bool)
            else str(default),
            str(spec.get("type", "string")), tuple(str(o) for o in spec.get("options") or ()))
    jobs = tuple(str((job or {}).get("name", key)) for key, job in (data.get("jobs") or {}).items())
    return _Workflow(workflow_id, str(data.get("name", path)), path, text, frozenset(on),
                     inputs, jobs, created)


def seed(state: _State) -> None:
    """Fill ``state`` with the demo world; nothing it starts sends a webhook."""
    now = state.now()
    people = ((OPSBOT, "opsbot"), (ALICE, "Alice Chen"), (BOB, "Bob Martins"),
              (CAROL, "Carol Diaz"), (OUTSIDER, "Mallory Outsider"))
    for number, (login, name) in enumerate(people):
        state.users[login] = _User(login, 1001 + number, name)
    state.users[OWNER] = _User(OWNER, 900, "Acme Corp", "Organization")
    state.members.update({OPSBOT, ALICE, BOB, CAROL})
    for number, (service, name) in enumerate(SERVICE_REPOS.items()):
        repo = state.add_repo(_Repo(OWNER, name, 7000 + number, f"The {service} service",
                                    service not in _PUBLIC, now - 400 * 24 * _HOUR))
        repo.branches["main"] = sha_of(repo.full_name, "main", 0)
        for file, text in ((CI_WORKFLOW, CI_YAML), (E2E_WORKFLOW, E2E_YAML)):
            path = f".github/workflows/{file}"
            repo.files[path] = text
            repo.workflows.append(parse_workflow(text, path, state.new_id(), repo.created))
        repo.files["README.md"] = f"# {name}\n\nThe {service} service of Acme.\n"
        ci = state.workflow(repo, CI_WORKFLOW)
        state.start_run(repo, ci, "push", "main", repo.branches["main"], ALICE,
                        conclusions=_RED.get(service, {}), created=now - 2 * _HOUR)
        if service in _RED:
            repo.statuses[repo.branches["main"]] = [_Status(
                state.new_id(), "ci/jenkins", "failure", "Build failed", now - 2 * _HOUR)]
    _seed_checkout(state, now)
    _seed_payments(state, now)
    state.tick(emit=False)


def _open_pull(sim: _State, repo: _Repo, number: int, title: str, author: str, branch: str,
               ago: float, **fields: Any) -> _Pull:
    created = sim.now() - ago
    fields.setdefault("body", f"{title}.")
    pull = _Pull(number, title, author, branch, sha_of(repo.full_name, branch, 0), "main",
                 created, created, **fields)
    repo.pulls[number] = pull
    repo.next_number = max(repo.next_number, number + 1)
    if pull.state == "open":
        repo.branches[branch] = pull.head_sha
    return pull


def _seed_checkout(state: _State, now: float) -> None:
    repo = state.repos[CHECKOUT_REPO]
    repo.required_checks = ("build", "e2e")
    repo.required_approvals = 1
    ci, e2e = state.workflow(repo, CI_WORKFLOW), state.workflow(repo, E2E_WORKFLOW)
    closed: dict[str, Any] = {"state": "closed"}
    _open_pull(state, repo, 40, "Fix VAT rounding on invoices", BOB, "fix/vat-rounding",
               9 * 24 * _HOUR, merged=True, merged_by=ALICE, merged_at=now - 8 * 24 * _HOUR,
               merge_commit_sha=sha_of(repo.full_name, 40, "merge"), **closed)
    _open_pull(state, repo, 41, "Try a one-page payment form", CAROL, "spike/one-page",
               7 * 24 * _HOUR, **closed)
    review = _open_pull(state, repo, REVIEW_PR, "Login: time out idle sessions", ALICE,
                        "feature/login", 5 * _HOUR, requested=[BOB],
                        body="Idle sessions expire after 30 minutes.\n\nFixes OPS-123.")
    green = _open_pull(state, repo, 43, "Checkout: show the delivery estimate", BOB,
                       "feature/delivery-estimate", 4 * _HOUR)
    green.reviews.append(_Review(state.new_id(), ALICE, "APPROVED", green.head_sha,
                                 now - 3 * _HOUR, "Looks good."))
    _open_pull(state, repo, 44, "Bump stripe-sdk to 12.1", CAROL, "deps/stripe-12",
               3 * _HOUR, requested=[ALICE], conflicts=True)
    _open_pull(state, repo, 45, "WIP: new cart", ALICE, "feature/new-cart", 2 * _HOUR,
               draft=True, requested=[BOB])
    for pull in (review, green, repo.pulls[44], repo.pulls[45]):
        state.start_run(repo, ci, "pull_request", pull.head_ref, pull.head_sha, pull.author,
                        conclusions={}, created=now - _HOUR)
        state.start_run(repo, e2e, "pull_request", pull.head_ref, pull.head_sha, pull.author,
                        conclusions={"e2e": "failure"} if pull is review else {},
                        created=now - _HOUR)
        repo.statuses[pull.head_sha] = [_Status(state.new_id(), "ci/jenkins", "success",
                                                "Build #87 succeeded", now - _HOUR)]
    review.reviews.append(_Review(state.new_id(), CAROL, "COMMENTED", review.head_sha,
                                  now - 2 * _HOUR, "Should 30 minutes be configurable?"))


def _seed_payments(state: _State, now: float) -> None:
    repo = state.repos[f"{OWNER}/{SERVICE_REPOS['payments']}"]
    repo.required_checks = ("build",)
    repo.required_approvals = 1
    pull = _open_pull(state, repo, 7, "Retry idempotent refunds", BOB, "feature/refund-retry",
                      6 * _HOUR, requested=[ALICE])
    for flow in (state.workflow(repo, CI_WORKFLOW), state.workflow(repo, E2E_WORKFLOW)):
        state.start_run(repo, flow, "pull_request", pull.head_ref, pull.head_sha, BOB,
                        conclusions={}, created=now - 5 * _HOUR)
