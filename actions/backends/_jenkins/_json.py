"""Reading Jenkins' JSON and error pages: jobs, builds and queue items into the
backend's types, and the HTTP status and message behind a failed call."""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from html import unescape
from typing import Any
from urllib.parse import unquote, urlsplit

import jenkins
import requests

from actions.backends._common import (
    exception_chain,
    tidy,
)
from actions.backends._jenkins._model import _BACKEND, _JOB_FIELDS, OPERATION_PARAMETER, Build, Job
from actions.errors import (
    InvalidRequest,
)


def _defaults_of(data: Mapping[str, Any]) -> dict[str, str]:
    """Each parameter definition's default value ("" for none) in a job's JSON."""
    defaults: dict[str, str] = {}
    for prop in data.get("property") or ():
        for definition in (prop.get("parameterDefinitions") or ()
                           if isinstance(prop, dict) else ()):
            if not isinstance(definition, dict) or not definition.get("name"):
                continue
            default = definition.get("defaultParameterValue") or {}
            defaults[str(definition["name"])] = _param_text(
                default.get("value") if isinstance(default, dict) else None)
    return defaults


def _param_text(value: object) -> str:
    """A parameter value as Jenkins reads it back from a form (booleans are true/false)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _parameter_names(data: Mapping[str, Any]) -> tuple[str, ...]:
    names: list[str] = []
    for prop in data.get("property") or ():
        if isinstance(prop, dict):
            for definition in prop.get("parameterDefinitions") or ():
                if isinstance(definition, dict) and definition.get("name"):
                    names.append(str(definition["name"]))
    return tuple(names)


def _job_from(data: Mapping[str, Any], full_name: str) -> Job:
    last = data.get("lastBuild")
    number = last.get("number") if isinstance(last, dict) else None
    return Job(
        full_name=full_name,
        name=str(data.get("name") or full_name.rsplit("/", 1)[-1]),
        url=str(data.get("url") or ""),
        color=str(data.get("color") or "notbuilt"),
        parameters=_parameter_names(data),
        last_build=int(number) if number is not None else None,
    )


def _build_from(data: Mapping[str, Any], job: str) -> Build:
    started = float(data.get("timestamp") or 0) / 1000
    building = bool(data.get("building"))
    parameters: dict[str, str] = {}
    causes: list[Mapping[str, Any]] = []
    for action in data.get("actions") or ():
        if not isinstance(action, dict):
            continue
        for parameter in action.get("parameters") or ():
            if isinstance(parameter, dict) and parameter.get("name"):
                parameters[str(parameter["name"])] = _param_text(parameter.get("value"))
        causes.extend(cause for cause in action.get("causes") or () if isinstance(cause, dict))
    user = next((cause["userId"] for cause in causes if cause.get("userId")), None)
    description = next((cause["shortDescription"] for cause in causes
                        if cause.get("shortDescription")), None)
    started_by = user if user is not None else description
    operation = parameters.pop(OPERATION_PARAMETER, "") or None
    result = data.get("result")
    return Build(
        job=job,
        number=int(data["number"]),
        url=str(data.get("url") or ""),
        result=str(result) if result is not None else None,
        building=building,
        started_at=datetime.fromtimestamp(started, tz=UTC),
        duration_s=(max(0.0, time.time() - started) if building
                    else float(data.get("duration") or 0) / 1000),
        parameters=parameters,
        started_by=str(started_by) if started_by is not None else None,
        started_by_user=str(user) if user is not None else None,
        operation=operation,
    )


def _job_name(full_name: str) -> str:
    """``"platform/nightly-integration"``; Jenkins' display form ``a » b`` is accepted too."""
    name = "/".join(part.strip() for part in full_name.replace(" » ", "/").split("/"))
    name = name.strip("/")
    if not name:
        raise InvalidRequest("Which Jenkins job? The job name is empty.", backend=_BACKEND)
    return name


def _job_path(full_name: str) -> str:
    """``"a/b"`` -> ``"job/a/job/b"`` (python-jenkins' get_info quotes it)."""
    return "/".join(f"job/{part}" for part in full_name.split("/"))


def _job_from_url(url: str) -> str | None:
    """The full job name in a job or build URL (``.../job/a/job/b/12/`` -> ``a/b``)."""
    parts = [unquote(part) for part in urlsplit(url).path.split("/") if part]
    index = parts.index("job") if "job" in parts else len(parts)
    names: list[str] = []
    while index + 1 < len(parts) and parts[index] == "job":
        names.append(parts[index + 1])
        index += 2
    return "/".join(names) or None


def _jobs_tree(levels: int) -> str:
    """``jobs[FIELDS,jobs[FIELDS,...,jobs]]``: a bare ``jobs`` marks where folders were cut."""
    tree = "jobs"
    for _ in range(levels):
        tree = f"jobs[{_JOB_FIELDS},{tree}]"
    return tree


def _and_list(names: list[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _or_list(names: list[str]) -> str:
    quoted = [f"'{name}'" for name in names]
    return quoted[0] if len(quoted) == 1 else ", ".join(quoted[:-1]) + " or " + quoted[-1]


_STATUS_IN_TEXT = re.compile(r"authentication failed \[(\d{3})\]")


_JAVA_EXCEPTION = re.compile(
    r"\b((?:[a-z]\w*\.)+[A-Z]\w*(?:Exception|Error|Failure)): ([^\n<]+)")


_JETTY_MESSAGE = re.compile(r"HTTP ERROR \d{3} ([^<\n]+)")


_BAD_INPUT_EXCEPTIONS = ("IllegalArgumentException", "IllegalStateException",
                         "Failure", "FormException")


_CRUMB_REFUSAL = "No valid crumb was included in the request"  # CrumbFilter's 403


def _http_status(chain: list[BaseException]) -> tuple[int | None, str]:
    """The HTTP status and response body behind an exception, if any.

    python-jenkins turns many HTTP errors into ``JenkinsException("... does not exist")``
    (a 503 included) but raises them while handling the ``requests.HTTPError``, so the
    real status is still in the chain.
    """
    for exc in chain:
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            return exc.response.status_code, exc.response.text or ""
    for exc in chain:
        if isinstance(exc, jenkins.JenkinsException):
            match = _STATUS_IN_TEXT.search(str(exc))
            if match:
                return int(match.group(1)), str(exc)
    return None, ""


def _error_page(body: str) -> tuple[str | None, str | None]:
    """(Java exception class, message) or (None, Jetty's message) from an error page."""
    text = unescape(body)
    match = _JAVA_EXCEPTION.search(text)
    if match:
        return match.group(1).rsplit(".", 1)[-1], tidy(match.group(2))
    match = _JETTY_MESSAGE.search(text)
    return None, (tidy(match.group(1)) if match else None)


def _crumb_refused(exc: BaseException) -> bool:
    """Whether ``exc`` is Jenkins' crumb filter refusing a POST (403, nothing ran)."""
    status, body = _http_status(exception_chain(exc))
    return status == 403 and _CRUMB_REFUSAL in body


def _logging_id(body: str) -> str:
    """", Logging ID=..." from Jenkins' Oops! page: what its admin looks up in the log."""
    match = re.search(r"Logging ID=([0-9a-fA-F-]{8,64})", body)
    return f", Jenkins log ID {match.group(1)}" if match else ""
