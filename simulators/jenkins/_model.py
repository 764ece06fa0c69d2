"""The Jenkins simulator's model: jobs, parameters, causes, builds and queue items.

Why apart: the seed, the state, the renderer and the HTTP face all speak of these; they
are mutated only under ``_State.lock``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

DEFAULT_SEED = Path(__file__).resolve().parent.parent / "data" / "jenkins.yml"
# A fixed token keeps the demo reproducible; it is shaped like a real one (34 hex digits).
DEFAULT_TOKEN = "11e5c1f0d5a4b3c2d1e0f9a8b7c6d5e4f3"
RESULTS = ("SUCCESS", "UNSTABLE", "FAILURE", "NOT_BUILT", "ABORTED")

_COLORS = {"SUCCESS": "blue", "UNSTABLE": "yellow", "FAILURE": "red",
           "NOT_BUILT": "notbuilt", "ABORTED": "aborted"}
_JOB_CLASSES = {
    "freestyle": "hudson.model.FreeStyleProject",
    "pipeline": "org.jenkinsci.plugins.workflow.job.WorkflowJob",
    "folder": "com.cloudbees.hudson.plugins.folder.Folder",
}
_BUILD_CLASSES = {
    "freestyle": "hudson.model.FreeStyleBuild",
    "pipeline": "org.jenkinsci.plugins.workflow.job.WorkflowRun",
}
_PARAM_CLASSES = {  # kind -> (definition class, value class)
    "string": ("hudson.model.StringParameterDefinition", "hudson.model.StringParameterValue"),
    "choice": ("hudson.model.ChoiceParameterDefinition", "hudson.model.StringParameterValue"),
    "boolean": ("hudson.model.BooleanParameterDefinition", "hudson.model.BooleanParameterValue"),
    "text": ("hudson.model.TextParameterDefinition", "hudson.model.TextParameterValue"),
    "password": ("hudson.model.PasswordParameterDefinition",
                 "hudson.model.PasswordParameterValue"),
}
_PERMALINKS = ("lastBuild", "lastCompletedBuild", "lastSuccessfulBuild", "lastStableBuild",
               "lastFailedBuild", "lastUnstableBuild", "lastUnsuccessfulBuild")
_QUEUE_RETENTION = 300.0  # Jenkins forgets a left queue item after five minutes
_CRUMB_FIELD = "Jenkins-Crumb"
_WORKSPACE_ROOT = "/var/jenkins_home/workspace"
_BUILD_KEYS = frozenset({"ago", "duration", "result", "by", "params", "log", "number"})


@dataclass(frozen=True)
class BuildSnapshot:
    """A copy of one build's state, for tests and the demo (never shared with the server)."""

    job: str
    number: int
    result: str | None
    building: bool
    parameters: dict[str, str | bool]
    cause: str  # e.g. "Started by user Alice Chen"
    user_id: str | None  # who started it, for builds started by a user
    started_at: float  # epoch seconds
    duration: float  # seconds, so far if still building
    queue_id: int
    console: str
    stop_requested_at: float | None = None  # epoch seconds; it may still be building


@dataclass(frozen=True)
class RecordedRequest:
    """One request the simulator answered, for tests that assert on the wire."""

    method: str
    target: str  # path and query as sent
    status: int
    user: str | None  # the authenticated user, None for anonymous or refused credentials
    crumb: str | None  # the Jenkins-Crumb header, if one was sent
    auth: str | None = None  # how the user signed in: "token" or "password"; None: anonymous


@dataclass(frozen=True)
class _Param:
    """A job parameter definition."""

    name: str
    kind: str
    default: str | bool
    choices: tuple[str, ...] = ()
    description: str = ""

    def coerce(self, raw: str | None) -> str | bool:
        """The value Jenkins would record for ``raw`` (None: not submitted, so the default)."""
        if raw is None:
            return self.default
        if self.kind == "boolean":
            return raw.strip().lower() == "true"  # Java's Boolean.valueOf
        if self.kind == "choice" and raw not in self.choices:
            raise _Refused(500, f"Illegal choice for parameter {self.name}: {raw}",
                           java="java.lang.IllegalArgumentException")
        return raw

    def definition_json(self) -> dict[str, Any]:
        definition, _ = _PARAM_CLASSES[self.kind]
        data: dict[str, Any] = {
            "_class": definition,
            "defaultParameterValue": self.value_json(self.default),
            "description": self.description or None,
            "name": self.name,
            "type": definition.rsplit(".", 1)[1],
        }
        if self.kind == "choice":
            data["choices"] = list(self.choices)
        return data

    def value_json(self, value: str | bool) -> dict[str, Any]:
        data: dict[str, Any] = {"_class": _PARAM_CLASSES[self.kind][1], "name": self.name}
        if self.kind != "password":  # Jenkins never exports a password's value
            data["value"] = value
        return data


@dataclass(frozen=True)
class _Cause:
    """Why a build ran: a user, a timer, an SCM change or an upstream build."""

    kind: str
    user_id: str = ""
    user_name: str = ""
    upstream_job: str = ""
    upstream_build: int = 0

    def short(self) -> str:
        if self.kind == "user":
            return f"Started by user {self.user_name}"
        if self.kind == "timer":
            return "Started by timer"
        if self.kind == "scm":
            return "Started by an SCM change"
        return (f'Started by upstream project "{self.upstream_job}" '
                f"build number {self.upstream_build}")

    def to_json(self) -> dict[str, Any]:
        if self.kind == "user":
            return {"_class": "hudson.model.Cause$UserIdCause", "shortDescription": self.short(),
                    "userId": self.user_id, "userName": self.user_name}
        if self.kind == "timer":
            return {"_class": "hudson.triggers.TimerTrigger$TimerTriggerCause",
                    "shortDescription": self.short()}
        if self.kind == "scm":
            return {"_class": "hudson.triggers.SCMTrigger$SCMTriggerCause",
                    "shortDescription": self.short()}
        return {"_class": "hudson.model.Cause$UpstreamCause", "shortDescription": self.short(),
                "upstreamBuild": self.upstream_build, "upstreamProject": self.upstream_job,
                "upstreamUrl": _job_path(self.upstream_job)}


ParamValues = tuple[tuple[_Param, str | bool], ...]


@dataclass(eq=False)
class _Job:
    """A job or a folder, addressed by its full name ("platform/nightly-integration")."""

    full_name: str
    kind: str
    description: str = ""
    params: tuple[_Param, ...] = ()
    disabled: bool = False
    concurrent: bool = False
    scm: str = ""
    logs: dict[str, str] = field(default_factory=dict)  # result -> template name
    env: dict[str, str] = field(default_factory=dict)  # extra variables for its console logs
    children: list[_Job] = field(default_factory=list)
    builds: list[_Build] = field(default_factory=list)  # oldest first
    next_number: int = 1
    forced: deque[tuple[str, str | None]] = field(default_factory=deque)  # (result, log)
    # How its builds take a stop (JenkinsSimulator.set_stop): seconds until it takes effect
    # (None: the simulator's stop_seconds) and the result then (None: the stop is ignored).
    stop_seconds: float | None = None
    stop_result: str | None = "ABORTED"

    @property
    def name(self) -> str:
        return self.full_name.rsplit("/", 1)[-1]

    @property
    def is_folder(self) -> bool:
        return self.kind == "folder"

    @property
    def path(self) -> str:
        return _job_path(self.full_name)

    @property
    def display(self) -> str:
        return self.full_name.replace("/", " » ")


@dataclass(eq=False)
class _Build:
    """One build; ``result`` stays None while it runs."""

    job: _Job
    number: int
    queue_id: int
    params: ParamValues
    cause: _Cause
    started_at: float
    planned_seconds: float
    planned_result: str
    body: tuple[str, ...]  # console lines between the cause and "Finished:"
    commit: str = ""
    ends_at: float = 0.0
    result: str | None = None
    aborted_by: str | None = None  # display name of who pressed stop
    stop_requested_at: float | None = None  # when stop was pressed (the build may run on)
    stop_line: int = 0  # how many body lines the console had then
    stop_obeyed: bool = True  # False: the build ignored the stop and ran its course

    @property
    def building(self) -> bool:
        return self.result is None

    @property
    def parameters(self) -> dict[str, str | bool]:
        return {param.name: value for param, value in self.params}


@dataclass(eq=False)
class _QueueItem:
    """A requested build waiting for its quiet period, its job or an executor."""

    id: int
    job: _Job
    params: ParamValues
    cause: _Cause
    queued_at: float
    ready_at: float
    build: _Build | None = None
    cancelled: bool = False
    left_at: float | None = None


class _Refused(Exception):
    """Jenkins answers this request with an error status."""

    def __init__(self, status: int, message: str, *, java: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.java = java  # the Java exception class behind a 500 "Oops!" page


def _job_path(full_name: str) -> str:
    """``"a/b"`` -> ``"job/a/job/b/"``, each name percent-encoded as Jenkins does."""
    return "".join(f"job/{quote(part)}/" for part in full_name.split("/"))
