"""What the Jenkins backend returns (jobs, builds, queue states, failure reports) and
the facts of Jenkins' API it is built on (permalinks, the tree queries, colours)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

logger = logging.getLogger(__name__)


_BACKEND = "Jenkins"
"""The ``backend`` every error from this module carries."""


PERMALINKS = ("lastBuild", "lastSuccessfulBuild", "lastFailedBuild", "lastCompletedBuild",
              "lastStableBuild", "lastUnstableBuild", "lastUnsuccessfulBuild")
"""The build permalinks Jenkins keeps for every job (see :meth:`JenkinsBackend.last_build`)."""


OPERATION_PARAMETER = "OPSBOT_OPERATION"
"""The build parameter that carries opsbot's operation id, on jobs that declare it.

Jenkins drops parameters a job does not declare, so only such jobs get it; with it,
opsbot finds the build it started even when Jenkins' answer to the start was lost.
"""


_T = TypeVar("_T")


_FOLDER_LEVELS = 6  # folder levels fetched per request; deeper folders cost one more each


_JOB_FIELDS = "name,url,color,lastBuild[number],property[parameterDefinitions[name]]"


_BUILD_FIELDS = ("number,url,result,building,timestamp,duration,"
                 "actions[parameters[name,value],causes[userId,shortDescription]]")


_QUEUE_FIELDS = ("items[id,inQueueSince,task[url],"
                 "actions[parameters[name,value],causes[userId]]]")


_DEFAULTS_TREE = "property[parameterDefinitions[name,defaultParameterValue[value]]]"


_CHOICES_TREE = "property[parameterDefinitions[name,choices]]"


_STATUS_BY_COLOR = {
    "blue": "success", "green": "success", "red": "failure", "yellow": "unstable",
    "aborted": "aborted", "disabled": "disabled", "notbuilt": "not_built",
    "grey": "not_built", "nobuilt": "not_built",
}


_FALLBACK_SUMMARY = {
    "ABORTED": "aborted, and the log does not say why",
    "UNSTABLE": "marked unstable (usually failing tests or a quality gate)",
    "FAILURE": "failed without a recognisable error message in the log",
    "NOT_BUILT": "not built",
}


@dataclass(frozen=True)
class Job:
    """A Jenkins job (never a folder), as listed or looked up."""

    full_name: str
    name: str
    url: str
    color: str
    parameters: tuple[str, ...]
    last_build: int | None

    @property
    def status(self) -> str:
        """The last completed build's outcome: success, failure, unstable, aborted,
        not_built or disabled."""
        return _STATUS_BY_COLOR.get(self.color.removesuffix("_anime"), "not_built")

    @property
    def building(self) -> bool:
        """True while a build of this job runs (Jenkins' blinking ``_anime`` colours)."""
        return self.color.endswith("_anime")


@dataclass(frozen=True)
class Build:
    """One build of a job, with its parameters and who (or what) started it."""

    job: str
    number: int
    url: str
    result: str | None
    building: bool
    started_at: datetime
    duration_s: float
    parameters: dict[str, str]
    started_by: str | None
    started_by_user: str | None = None  # the Jenkins user id of the cause, if a user
    operation: str | None = None  # OPSBOT_OPERATION: the opsbot operation that started it


@dataclass(frozen=True)
class Sightings:
    """Builds and queue items that may be the one a lost start request made."""

    builds: tuple[Build, ...]
    queued: tuple[int, ...]  # queue ids of matching items still waiting

    @property
    def count(self) -> int:
        return len(self.builds) + len(self.queued)


@dataclass(frozen=True)
class QueueState:
    """Where a requested build is: still waiting (``why``), started, or cancelled."""

    queue_id: int
    build_number: int | None
    cancelled: bool
    why: str | None


@dataclass(frozen=True)
class FailureReport:
    """Why a build failed: the stage, the few error lines that matter, and a summary."""

    job: str
    number: int
    result: str
    url: str
    stage: str | None
    error_lines: tuple[str, ...]
    summary: str
