"""The Jenkins simulator's seed: the YAML catalogue of users, console logs, jobs and past builds.

Why apart: checking a hand-written catalogue, with an error that names the place and
the fix, is its own job; the result is a ``_Seed`` the state starts from. A build's
console is rendered from the catalogue's templates here too (``_new_build``), for past
and new builds alike.
"""

from __future__ import annotations

import hashlib
import re
import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from simulators._seed import SeedError, check_keys, mapping, parse_span, read_seed, sequence
from simulators.jenkins._model import (
    _BUILD_KEYS,
    _JOB_CLASSES,
    _PARAM_CLASSES,
    _WORKSPACE_ROOT,
    RESULTS,
    ParamValues,
    _Build,
    _Cause,
    _Job,
    _Param,
    _Refused,
)


@dataclass
class _Seed:
    version: str
    executors: int
    users: dict[str, str]  # id -> full name
    templates: dict[str, tuple[str, ...]]  # name -> console lines, includes expanded
    top: list[_Job]
    jobs: dict[str, _Job]
    next_queue_id: int
    running: list[_Build]


def _expand_templates(raw: dict[str, str], where: str) -> dict[str, tuple[str, ...]]:
    """Resolve ``@include name`` lines, so a template can reuse e.g. a git checkout."""

    def expand(name: str, chain: tuple[str, ...]) -> list[str]:
        if name in chain:
            cycle = " -> ".join(chain + (name,))
            raise SeedError(f"{where}: logs.{name} includes itself ({cycle})")
        lines: list[str] = []
        for line in raw[name].rstrip("\n").split("\n"):
            if line.strip().startswith("@include "):
                target = line.strip()[len("@include "):].strip()
                if target not in raw:
                    raise SeedError(f"{where}: logs.{name} includes unknown log {target!r}")
                lines.extend(expand(target, chain + (name,)))
            else:
                lines.append(line)
        return lines

    for name, text in raw.items():
        if not isinstance(text, str):
            raise SeedError(f"{where}: logs.{name} must be a block of text")
    return {name: tuple(expand(name, ())) for name in raw}


def _parse_param(raw: object, where: str) -> _Param:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise SeedError(f"{where}: a parameter needs at least a name, e.g. {{name: BRANCH}}")
    check_keys(raw, {"name", "type", "default", "choices", "description"}, where)
    kind = str(raw.get("type", "string"))
    if kind not in _PARAM_CLASSES:
        raise SeedError(f"{where}: type {kind!r} is not one of {', '.join(_PARAM_CLASSES)}")
    choices = tuple(str(choice) for choice in raw.get("choices") or ())
    default: str | bool
    if kind == "choice":
        if not choices:
            raise SeedError(f"{where}: a choice parameter needs choices: [a, b, ...]")
        default = choices[0]  # Jenkins: the first choice is the default
    elif kind == "boolean":
        default = bool(raw.get("default", False))
    else:
        default = "" if raw.get("default") is None else str(raw["default"])
    return _Param(raw["name"], kind, default, choices, str(raw.get("description") or ""))


class _SeedLoader:
    """Turns the YAML catalogue into jobs and past builds, relative to ``now``."""

    _JOB_KEYS = frozenset({"name", "type", "description", "parameters", "disabled", "concurrent",
                           "scm", "env", "logs", "jobs", "builds", "first_build"})

    def __init__(self, path: Path, now: float, default_user: str) -> None:
        self.path = path
        self.now = now
        self.default_user = default_user
        self.jobs: dict[str, _Job] = {}
        self.past: list[_Build] = []
        self.users: dict[str, str] = {}
        self.templates: dict[str, tuple[str, ...]] = {}

    def load(self) -> _Seed:
        raw = read_seed(self.path, "Jenkins seed", ("server", "users", "logs", "jobs"))
        where = str(self.path)
        # "x-" keys hold YAML anchors for reuse (as in docker-compose files).
        check_keys({k: v for k, v in raw.items() if not str(k).startswith("x-")},
                   ("server", "users", "logs", "jobs"), where)
        server = mapping(raw.get("server"), f"{where}: server")
        check_keys(server, {"version", "executors", "first_queue_id"}, f"{where}: server")
        users = mapping(raw.get("users"), f"{where}: users")
        self.users = {str(k): str(v) for k, v in users.items()}
        self.templates = _expand_templates(mapping(raw.get("logs"), f"{where}: logs"), where)
        top = [self._job(item, "", f"{where}: jobs[{i}]")
               for i, item in enumerate(sequence(raw.get("jobs"), f"{where}: jobs"))]
        # Queue ids grow with time across all jobs, as in Jenkins.
        next_queue_id = int(server.get("first_queue_id", 1))
        for build in sorted(self.past, key=lambda b: b.started_at):
            build.queue_id = next_queue_id
            next_queue_id += 1
        running = [b for b in self.past if b.building]
        return _Seed(str(server.get("version", "2.452.3")), int(server.get("executors", 4)),
                     self.users, self.templates, top, self.jobs, next_queue_id, running)

    def _job(self, raw: object, parent: str, where: str) -> _Job:
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise SeedError(f"{where}: every job needs a name")
        where = f"{where} ({raw['name']})"
        check_keys(raw, self._JOB_KEYS, where)
        if "/" in raw["name"] or not raw["name"].strip():
            raise SeedError(f"{where}: a name cannot contain '/'; nest jobs in a folder instead")
        full_name = f"{parent}/{raw['name']}" if parent else raw["name"]
        if full_name in self.jobs:
            raise SeedError(f"{where}: a second job called {full_name!r}")
        kind = str(raw.get("type", "freestyle"))
        if kind not in _JOB_CLASSES:
            raise SeedError(f"{where}: type {kind!r} is not one of {', '.join(_JOB_CLASSES)}")
        logs = {str(k): str(v) for k, v in mapping(raw.get("logs"), f"{where}.logs").items()}
        for result, log in logs.items():
            if result not in RESULTS:
                raise SeedError(f"{where}: logs key {result!r} is not one of {', '.join(RESULTS)}")
            if log not in self.templates:
                raise SeedError(f"{where}: logs.{result} names unknown log {log!r}")
        job = _Job(full_name, kind, str(raw.get("description") or ""),
                   tuple(_parse_param(p, f"{where}: parameters[{i}]") for i, p in
                         enumerate(sequence(raw.get("parameters"), f"{where}.parameters"))),
                   bool(raw.get("disabled", False)), bool(raw.get("concurrent", False)),
                   str(raw.get("scm") or ""), logs,
                   {str(k): _seed_text(v)
                    for k, v in mapping(raw.get("env"), f"{where}.env").items()})
        self.jobs[full_name] = job
        if kind == "folder":
            if raw.get("builds") or raw.get("parameters"):
                raise SeedError(f"{where}: a folder has jobs, not builds or parameters")
            job.children = [self._job(child, full_name, f"{where}.jobs[{i}]") for i, child
                            in enumerate(sequence(raw.get("jobs"), f"{where}.jobs"))]
            return job
        if raw.get("jobs"):
            raise SeedError(f"{where}: only a folder (type: folder) can contain jobs")
        job.next_number = int(raw.get("first_build", 1))
        entries = [self._past_build(b, f"{where}.builds[{i}]")
                   for i, b in enumerate(sequence(raw.get("builds"), f"{where}.builds"))]
        for entry in sorted(entries, key=lambda e: -e[0]):  # oldest first; stable
            self._add_past(job, *entry)
        return job

    @staticmethod
    def _past_build(raw: object, where: str) -> tuple[float, dict[str, Any], str]:
        if not isinstance(raw, dict) or "ago" not in raw:
            raise SeedError(f"{where}: a past build needs at least ago: (e.g. ago: 3h)")
        check_keys(raw, _BUILD_KEYS, where)
        return parse_span(raw["ago"], f"{where}.ago"), raw, where

    def _add_past(self, job: _Job, ago: float, raw: dict[str, Any], where: str) -> None:
        duration = parse_span(raw.get("duration", "1m"), f"{where}.duration")
        result = str(raw.get("result", "SUCCESS"))
        if result not in RESULTS:
            raise SeedError(f"{where}: result {result!r} is not one of {', '.join(RESULTS)}")
        number = int(raw.get("number", job.next_number))
        if number < job.next_number:
            raise SeedError(f"{where}: build number {number} is not after #{job.next_number - 1}; "
                            "numbers must grow with time")
        log = raw.get("log")
        if log is not None and log not in self.templates:
            raise SeedError(f"{where}: log {log!r} is not defined under logs:")
        raw_params = mapping(raw.get("params"), f"{where}.params")
        known = {param.name: param for param in job.params}
        unknown = sorted(set(raw_params) - set(known))
        if unknown:
            raise SeedError(f"{where}: {job.full_name} has no parameter(s) {', '.join(unknown)}")
        try:
            params = tuple((param, param.coerce(None if param.name not in raw_params
                                                else _seed_text(raw_params[param.name])))
                           for param in job.params)
        except _Refused as exc:
            raise SeedError(f"{where}: {exc.message}") from exc
        cause = self._cause(raw.get("by", "scm"), where)
        started = self.now - ago
        build = _new_build(job, number, 0, params, cause, started, duration, result,
                           log, self.templates)
        if build.started_at + duration <= self.now:
            build.result = result
        job.builds.append(build)
        job.next_number = number + 1
        self.past.append(build)

    def _cause(self, by: object, where: str) -> _Cause:
        text = str(by)
        if text in ("timer", "scm"):
            return _Cause(text)
        match = re.fullmatch(r"upstream:(.+)#(\d+)", text)
        if match:
            return _Cause("upstream", upstream_job=match[1], upstream_build=int(match[2]))
        if text not in self.users and text != self.default_user:
            raise SeedError(f"{where}: by: {text!r} is not a user under users: "
                            "(or timer, scm, upstream:JOB#N)")
        return _Cause("user", text, self.users.get(text, text))


def _seed_text(value: object) -> str:
    """YAML reads ``true`` and ``2.4`` as non-strings; Jenkins parameters are text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


_FALLBACK_BODIES = {
    "SUCCESS": ("Building in workspace ${WORKSPACE}", "+ ./ci/build.sh",
                "Build step 'Execute shell' marked build as success"),
    "UNSTABLE": ("Building in workspace ${WORKSPACE}", "+ ./ci/build.sh",
                 "Build step 'Publish JUnit test result report' changed build result to UNSTABLE"),
    "FAILURE": ("Building in workspace ${WORKSPACE}", "+ ./ci/build.sh",
                "Build step 'Execute shell' marked build as failure"),
    "ABORTED": ("Building in workspace ${WORKSPACE}", "+ ./ci/build.sh",
                "Build timed out (after 30 minutes). Marking the build as aborted.",
                "Build was aborted"),
    "NOT_BUILT": ("Skipped: nothing to build",),
}


def _new_build(job: _Job, number: int, queue_id: int, params: ParamValues, cause: _Cause,
               started_at: float, seconds: float, result: str, log: str | None,
               templates: dict[str, tuple[str, ...]]) -> _Build:
    """A build with its console body rendered from the job's template for ``result``."""
    commit = hashlib.sha1(f"{job.full_name}#{number}".encode()).hexdigest() if job.scm else ""
    name = log or job.logs.get(result)
    lines = templates[name] if name else _FALLBACK_BODIES[result]
    values = dict(job.env)
    values.update((param.name, _seed_text(value)) for param, value in params)
    values.update(
        JOB_NAME=job.full_name, JOB_BASE_NAME=job.name, BUILD_NUMBER=str(number),
        BUILD_ID=str(number), BUILD_TAG=f"jenkins-{job.full_name.replace('/', '-')}-{number}",
        WORKSPACE=f"{_WORKSPACE_ROOT}/{job.full_name}", GIT_URL=job.scm,
        GIT_COMMIT=commit, GIT_SHORT=commit[:8],
    )
    body = tuple(string.Template(line).safe_substitute(values) for line in lines)
    return _Build(job, number, queue_id, params, cause, started_at, seconds, result, body,
                  commit, ends_at=started_at + seconds)
