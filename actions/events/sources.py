"""Reading the sources' own webhook formats into :class:`~actions.events._model.Event`.

``parse(source, body, headers)`` takes the raw body of ``POST /webhooks/events/<source>``:

* ``alertmanager``: the Prometheus Alertmanager webhook, payload version "4"
  (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config);
* ``grafana``: a Grafana Alerting webhook contact point, payload version "1"
  (https://grafana.com/docs/grafana/latest/alerting/configure-notifications/manage-contact-points/integrations/webhook-notifier/);
* ``github``: a repository or app webhook; ``X-GitHub-Event`` names the event
  (https://docs.github.com/en/webhooks/webhook-events-and-payloads);
* ``jenkins``: the Notification plugin's JSON (https://plugins.jenkins.io/notification/).
  Where Jenkins is configured the webhook takes only :func:`jenkins_claims` from it (job,
  number, result) and records what Jenkins itself says about that build
  (``actions.events.jenkins_watch``); :func:`parse`'s event, the body's own word, is
  recorded only where it cannot be checked, under a key scoped to the credential that
  let it in (``Event.scoped``).

What is a notification and what is not:

* An Alertmanager or Grafana notification is one event (one message per alert group).
  Its ``key`` hashes the group, its status and each alert's fingerprint, start, end and
  status: a redelivery has the same key, a resolution or a changed group a new one.
* GitHub: ``check_run``, ``check_suite`` and ``workflow_run`` are reported when
  ``completed`` (the other actions, ``created``, ``requested``, ``in_progress``,
  ``rerequested``, say nothing has finished yet: []); ``pull_request`` when ``opened``,
  ``reopened``, ``ready_for_review`` or ``closed`` (merged or not); other actions
  (``synchronize``, ``labeled``, ``edited``, ...) and other events (``ping``, ``push``,
  ...) give []. Failing conclusions (failure, timed_out, action_required,
  startup_failure) are failures; the others (success, neutral, skipped, cancelled,
  stale) are results, which the outbox turns into the recovery of an earlier failure of
  the same group.
* Jenkins: a finished build; a build still running (or the plugin's QUEUED, STARTED and
  FINALIZED phases) gives nothing.

Anything that is not the source's format raises :class:`EventFormatError` with the
reason (the webhook answers 400 with it). Fields the formats do not name are ignored.
Texts are capped (a title at 300 characters, a summary at 2000, links to http(s) URLs)
so that a hostile body cannot make a huge or dangerous message.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from actions.events._model import FAILURE, RECOVERY, RESULT, SOURCES, Event, EventFormatError
from actions.events.render import duration_text

__all__ = [
    "MAX_SUMMARY",
    "MAX_TITLE",
    "github_signature",
    "github_signature_ok",
    "JenkinsClaim",
    "jenkins_build_event",
    "jenkins_claims",
    "normalise_environment",
    "parse",
]

MAX_TITLE = 300
MAX_SUMMARY = 2000
_MAX_NAME = 200  # a service, job, branch, label value ...
_MAX_URL = 2000
_MAX_LABELS = 40
_MAX_LINKS = 8
_MAX_GROUP_KEY = 300  # longer group keys are hashed into the event's group

_ENVIRONMENTS = {
    "prod": "prod", "production": "prod", "prd": "prod", "live": "prod",
    "staging": "staging", "stage": "staging", "stg": "staging",
    "dev": "dev", "development": "dev",
}
_SERVICE_LABELS = ("service", "app", "job", "namespace")
_ENVIRONMENT_LABELS = ("env", "environment", "stage")

# -- small readers ----------------------------------------------------------------------


# C0 and C1 control characters but tab and newline, and the bidirectional overrides:
# ANSI escapes would move the terminal chat's cursor or fake a prompt, U+202E reverses text.
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _cap(text: str, limit: int) -> str:
    text = _CONTROL.sub("", text).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _line(text: str, limit: int = MAX_TITLE) -> str:
    """One line: a title or a name never carries a line break into the chat."""
    return _cap(" ".join(text.split()), limit)


def _digest(*parts: Any) -> str:
    data = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(data.encode("utf-8")).hexdigest()[:32]


def _header(headers: Mapping[str, str], name: str) -> str | None:
    """A header case-insensitively (Sanic, http.server and tests spell them differently)."""
    wanted = name.lower()
    for key, value in headers.items():
        if key.lower() == wanted:
            return value
    return None


def _document(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body)
    except UnicodeDecodeError as exc:
        raise EventFormatError(f"not JSON: the body is not UTF-8 ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise EventFormatError(f"not JSON: {exc.msg} at line {exc.lineno} column "
                               f"{exc.colno}") from None
    except RecursionError:
        raise EventFormatError("not a webhook: the JSON is nested too deeply") from None
    if not isinstance(data, dict):
        raise EventFormatError(f"the body must be a JSON object, not {_kind(data)}")
    return data


def _kind(value: Any) -> str:
    """What a JSON value is, with its article: "a string", "an array", "null"."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _str(data: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> str:
    """A string field ("" when absent or null, unless required)."""
    value = data.get(key)
    if value is None:
        if required:
            raise EventFormatError(f"{where}{key} is missing")
        return ""
    if not isinstance(value, str):
        raise EventFormatError(f"{where}{key} must be a string, not {_kind(value)}")
    if required and not value.strip():
        raise EventFormatError(f"{where}{key} is empty")
    return value


def _int(data: Mapping[str, Any], key: str, where: str) -> int | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise EventFormatError(f"{where}{key} must be a whole number, not {_kind(value)}")
    return value


def _number(data: Mapping[str, Any], key: str, where: str) -> int:
    value = _int(data, key, where)
    if value is None:
        raise EventFormatError(f"{where}{key} is missing")
    return value


def _object(data: Mapping[str, Any], key: str, where: str,
            *, required: bool = False) -> dict[str, Any]:
    value = data.get(key)
    if value is None:
        if required:
            raise EventFormatError(f"{where}{key} is missing")
        return {}
    if not isinstance(value, dict):
        raise EventFormatError(f"{where}{key} must be an object, not {_kind(value)}")
    return value


def _list(data: Mapping[str, Any], key: str, where: str, *, required: bool = False) -> list[Any]:
    value = data.get(key)
    if value is None:
        if required:
            raise EventFormatError(f"{where}{key} is missing")
        return []
    if not isinstance(value, list):
        raise EventFormatError(f"{where}{key} must be an array, not {_kind(value)}")
    return value


def _labels(data: Mapping[str, Any], key: str, where: str,
            *, required: bool = False) -> dict[str, str]:
    """A map of string keys to string values (labels, annotations)."""
    if required and data.get(key) is None:
        raise EventFormatError(f"{where} has no {key}")
    found = _object(data, key, where + ".")
    for name, value in found.items():
        if not isinstance(value, str):
            raise EventFormatError(f"{where}.{key}.{name} must be a string, not "
                                   f"{_kind(value)}")
    return found


def _time(value: str, where: str) -> datetime | None:
    """An RFC 3339 time; Go's zero time ("0001-01-01T00:00:00Z") means unset."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise EventFormatError(f"{where} is not an RFC 3339 time: {_line(value, 60)!r}") from None
    if moment.year <= 1:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _url(value: Any) -> str | None:
    """Only a plain http(s) URL becomes a link."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    if not value or len(value) > _MAX_URL or any(c.isspace() for c in value) \
            or _CONTROL.search(value):
        return None
    return value if value.lower().startswith(("https://", "http://")) else None


def _links(candidates: Iterable[tuple[str, Any]]) -> tuple[tuple[str, str], ...]:
    links: list[tuple[str, str]] = []
    seen: set[str] = set()
    for label, raw in candidates:
        url = _url(raw)
        if url and url not in seen:
            seen.add(url)
            links.append((label, url))
    return tuple(links[:_MAX_LINKS])


def _capped_labels(labels: Mapping[str, str]) -> dict[str, str]:
    return {_line(k, 100): _line(v, _MAX_NAME)
            for k, v in list(labels.items())[:_MAX_LABELS] if k and v}


def normalise_environment(value: str | None) -> str | None:
    """dev, staging or prod for the usual spellings ("production", "stage"); None if empty."""
    if not value or not value.strip():
        return None
    return _ENVIRONMENTS.get(value.strip().lower(), _line(value.lower(), _MAX_NAME))


# -- Alertmanager and Grafana -----------------------------------------------------------


def _first_label(layers: Sequence[Mapping[str, str]], names: Sequence[str]) -> str | None:
    # The better-named label wins whichever layer has it; within a name the common
    # labels (true of the whole group) come before the first alert's.
    for name in names:
        for labels in layers:
            value = labels.get(name, "").strip()
            if value:
                return value
    return None


def _environment_of(layers: Sequence[Mapping[str, str]]) -> str | None:
    named = _first_label(layers, _ENVIRONMENT_LABELS)
    if named:
        return normalise_environment(named)
    # A namespace says the environment only when it is spelt like one.
    namespace = _first_label(layers, ("namespace",))
    return _ENVIRONMENTS.get(namespace.lower()) if namespace else None


def _alerts(source: str, data: Mapping[str, Any], version: str) -> Event:
    """One Alertmanager (version 4) or Grafana (version 1) notification."""
    got = data.get("version")
    if got is None:
        raise EventFormatError(f"{source} payload has no version (expected \"{version}\")")
    if got != version:
        raise EventFormatError(f"{source} payload version {str(got)!r} is not {version}")
    group_key = _str(data, "groupKey", "", required=True)
    status = _str(data, "status", "", required=True)
    if status not in ("firing", "resolved"):
        raise EventFormatError(f"status {_line(status, 40)!r} is not firing or resolved")
    org = _number(data, "orgId", "") if source == "grafana" else None
    alerts = _list(data, "alerts", "", required=True)
    if not alerts:
        raise EventFormatError("alerts is empty: a notification carries at least one alert")
    truncated = _int(data, "truncatedAlerts", "") or 0
    common = _labels(data, "commonLabels", "payload")
    grouping = _labels(data, "groupLabels", "payload")
    common_notes = _labels(data, "commonAnnotations", "payload")
    external = _str(data, "externalURL", "")

    parsed: list[dict[str, Any]] = []
    for index, alert in enumerate(alerts):
        where = f"alerts[{index}]"
        if not isinstance(alert, dict):
            raise EventFormatError(f"{where} must be an object, not {_kind(alert)}")
        alert_status = _str(alert, "status", where + ".", required=True)
        if alert_status not in ("firing", "resolved"):
            raise EventFormatError(f"{where}.status {_line(alert_status, 40)!r} is not firing "
                                   "or resolved")
        starts = _str(alert, "startsAt", where + ".", required=True)
        ends = _str(alert, "endsAt", where + ".")
        labels = _labels(alert, "labels", where, required=True)
        parsed.append({
            "status": alert_status, "labels": labels,
            "annotations": _labels(alert, "annotations", where),
            "starts": starts, "ends": ends,
            "started_at": _time(starts, where + ".startsAt"),
            "ended_at": _time(ends, where + ".endsAt"),
            "fingerprint": _str(alert, "fingerprint", where + ".")
            or _digest(sorted(labels.items())),
            "urls": {key: _str(alert, key, where + ".") for key in
                     ("generatorURL", "silenceURL", "dashboardURL", "panelURL", "imageURL")},
        })

    first = parsed[0]
    layers = (common, grouping, first["labels"])
    notes = (common_notes, first["annotations"])
    service = _first_label(layers, _SERVICE_LABELS)
    alertname = _first_label(layers, ("alertname",))
    summary_note = _first_label(notes, ("summary",))
    title = summary_note or alertname or (f"alert for {service}" if service else "alert")
    if not common_notes.get("summary") and len(parsed) > 1:
        title += f" (and {len(parsed) - 1} more)"
    starts_list = [a["started_at"] for a in parsed if a["started_at"]]
    ends_list = [a["ended_at"] for a in parsed if a["ended_at"]]
    links = _links([
        ("Source", first["urls"]["generatorURL"]),
        ("Dashboard", first["urls"]["dashboardURL"]),
        ("Panel", first["urls"]["panelURL"]),
        ("Runbook", _first_label(notes, ("runbook_url",))),
        ("Dashboard", _first_label(notes, ("dashboard_url",))),
        ("Silence", first["urls"]["silenceURL"] if status == "firing" else None),
        ("Grafana" if source == "grafana" else "Alertmanager", external),
    ])
    labels = dict(common) if len(parsed) > 1 else {**common, **first["labels"]}
    if alertname:
        labels.setdefault("alertname", alertname)
    scope = group_key if len(group_key) <= _MAX_GROUP_KEY else "sha256:" + _digest(group_key)
    group = f"grafana:{org}:{scope}" if source == "grafana" else f"alertmanager:{scope}"
    identity = sorted((a["fingerprint"], a["starts"], a["ends"], a["status"]) for a in parsed)
    return Event(
        source=source,
        key=f"{source}:{_digest(group, status, identity)}",
        group=group,
        kind=FAILURE if status == "firing" else RECOVERY,
        status=status,
        title=_line(title),
        summary=_cap(_first_label(notes, ("description", "message")) or "", MAX_SUMMARY),
        service=_line(service, _MAX_NAME) if service else None,
        environment=_environment_of(layers),
        severity=_line(s.lower(), _MAX_NAME) if (s := _first_label(layers, ("severity",)))
        else None,
        started_at=min(starts_list) if starts_list else None,
        ended_at=max(ends_list) if status == "resolved" and ends_list else None,
        links=links,
        labels=_capped_labels(labels),
        count=len(parsed) + max(truncated, 0),
    )


# -- GitHub -----------------------------------------------------------------------------

_GITHUB_FAILING = frozenset({"failure", "timed_out", "action_required", "startup_failure"})
_GITHUB_WORDS = {
    "failure": "failed", "timed_out": "timed out", "action_required": "needs action",
    "startup_failure": "failed to start", "success": "passed", "neutral": "finished (neutral)",
    "skipped": "was skipped", "cancelled": "was cancelled", "stale": "went stale",
}
_PR_ACTIONS = frozenset({"opened", "reopened", "closed", "ready_for_review"})


def github_signature(secret: str, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value GitHub sends for ``body``: "sha256=<hex>"."""
    digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def github_signature_ok(secret: str, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is GitHub's HMAC-SHA256 of the raw ``body``, compared in constant
    time (docs.github.com: "Validating webhook deliveries"). No secret: never."""
    if not secret or not header:
        return False
    return hmac.compare_digest(github_signature(secret, body).encode("ascii"),
                               header.strip().encode("utf-8", "replace"))


def _pr_numbers(pull_requests: list[Any], where: str) -> list[int]:
    numbers: list[int] = []
    for index, pr in enumerate(pull_requests):
        if not isinstance(pr, dict):
            raise EventFormatError(f"{where}[{index}] must be an object, not {_kind(pr)}")
        numbers.append(_number(pr, "number", f"{where}[{index}]."))
    return numbers


class _Repo:
    """What every GitHub event names: the repository."""

    def __init__(self, data: Mapping[str, Any]) -> None:
        repository = _object(data, "repository", "", required=True)
        self.full_name = _line(_str(repository, "full_name", "repository.", required=True),
                               _MAX_NAME)
        self.name = _line(_str(repository, "name", "repository.")
                          or self.full_name.rsplit("/", 1)[-1], _MAX_NAME)
        self.html_url = (_url(repository.get("html_url"))
                         or f"https://github.com/{self.full_name}").rstrip("/")

    def pr_url(self, number: int) -> str:
        return f"{self.html_url}/pull/{number}"

    def where(self, prs: Sequence[int], branch: str) -> str:
        """ "acme/checkout PR #42 (feature/x)" """
        text = self.full_name + (f" PR #{prs[0]}" if prs else "")
        return text + (f" ({branch})" if branch else "")


def _github_keys(headers: Mapping[str, str], body: bytes) -> tuple[str, tuple[str, ...]]:
    """The key (``X-GitHub-Delivery``, which a redelivery repeats) and the body's digest as
    an alias: a signed body replayed under a new delivery id is dropped too."""
    digest = "github:sha256:" + _digest(body.decode("utf-8", "replace"))
    delivery = (_header(headers, "X-GitHub-Delivery") or "").strip()
    if delivery:
        return "github:" + _line(delivery, 100), (digest,)
    return digest, ()


def _github_event(key: str, group: str, conclusion: str, title: str, repo: _Repo, *,
                  summary: str = "", started: str = "", ended: str = "",
                  links: Iterable[tuple[str, Any]] = (), labels: Mapping[str, Any],
                  status: str | None = None) -> Event:
    return Event(
        source="github", key=key, group=group,
        kind=FAILURE if conclusion in _GITHUB_FAILING else RESULT,
        status=_line(status or conclusion, 40), title=_line(title),
        summary=_cap(summary, MAX_SUMMARY),
        service=repo.name, repo=repo.full_name,
        started_at=_time(started, "started_at"), ended_at=_time(ended, "completed_at"),
        links=_links(links),
        labels=_capped_labels({k: str(v) for k, v in labels.items() if v not in (None, "")}),
    )


@dataclass(frozen=True)
class _Finished:
    """What a completed check run, check suite and workflow run all say."""

    thing: dict[str, Any]
    conclusion: str
    repo: _Repo
    sha: str
    branch: str
    prs: list[int]

    @property
    def word(self) -> str:
        return _GITHUB_WORDS.get(self.conclusion, self.conclusion)

    @property
    def scope(self) -> str:
        """The branch (else the commit): a later green run there is the recovery."""
        return self.branch or self.sha[:40]

    def where(self) -> str:
        return self.repo.where(self.prs, self.branch)

    def event(self, key: str, group: str, title: str, *, links: list[tuple[str, Any]],
              labels: Mapping[str, Any], started: str, ended: str,
              summary: str = "") -> Event:
        pr = self.prs[0] if self.prs else None
        if pr is not None:
            links = [*links, ("Pull request", self.repo.pr_url(pr))]
        return _github_event(
            key, group, self.conclusion, title, self.repo, summary=summary, started=started,
            ended=ended, links=links,
            labels={**labels, "branch": self.branch, "sha": self.sha, "pr": pr,
                    "conclusion": self.conclusion})


def _finished(data: Mapping[str, Any], name: str, branch_in: str | None = None) -> _Finished | None:
    """The completed ``name`` object (None when it has not finished yet)."""
    action = _str(data, "action", "", required=True)
    thing = _object(data, name, "", required=True)
    if action != "completed":
        return None
    where = name + "."
    conclusion = _str(thing, "conclusion", where)
    if not conclusion:
        raise EventFormatError(f"{name}.conclusion is missing for a completed {name}")
    holder = _object(thing, branch_in, where) if branch_in else thing
    branch = _str(holder, "head_branch", where + (f"{branch_in}." if branch_in else ""))
    return _Finished(thing, conclusion, _Repo(data), _str(thing, "head_sha", where),
                     _line(branch, _MAX_NAME),
                     _pr_numbers(_list(thing, "pull_requests", where), where + "pull_requests"))


def _check_run(data: Mapping[str, Any], key: str) -> list[Event]:
    done = _finished(data, "check_run", branch_in="check_suite")
    if done is None:
        return []
    run = done.thing
    name = _line(_str(run, "name", "check_run.", required=True), _MAX_NAME)
    output = _object(run, "output", "check_run.")
    summary = "\n".join(t for t in (_str(output, "title", "check_run.output."),
                                    _str(output, "summary", "check_run.output.")) if t.strip())
    # A later run of the same check on the same PR (or branch, or commit) recovers it.
    scope = f"#{done.prs[0]}" if done.prs else done.scope
    return [done.event(
        key, f"github:{done.repo.full_name}:check:{name}:{scope}",
        f"check '{name}' {done.word} on {done.where()}", summary=summary,
        started=_str(run, "started_at", "check_run."),
        ended=_str(run, "completed_at", "check_run."),
        links=[("Run", run.get("html_url") or run.get("details_url"))],
        labels={"check": name})]


def _check_suite(data: Mapping[str, Any], key: str) -> list[Event]:
    done = _finished(data, "check_suite")
    if done is None:
        return []
    suite = done.thing
    app = _object(suite, "app", "check_suite.")
    slug = _line(_str(app, "slug", "check_suite.app.") or "checks", _MAX_NAME)
    app_name = _line(_str(app, "name", "check_suite.app.") or slug, _MAX_NAME)
    checks = f"{done.repo.html_url}/commit/{done.sha}/checks" if done.sha else None
    return [done.event(
        key, f"github:{done.repo.full_name}:suite:{slug}:{done.scope}",
        f"{app_name} checks {done.word} on {done.where()}",
        started=_str(suite, "created_at", "check_suite."),
        ended=_str(suite, "updated_at", "check_suite."),
        links=[("Checks", checks)], labels={"app": slug})]


def _workflow_run(data: Mapping[str, Any], key: str) -> list[Event]:
    done = _finished(data, "workflow_run")
    if done is None:
        return []
    run = done.thing
    workflow = _object(data, "workflow", "")
    name = _line(_str(run, "name", "workflow_run.") or _str(workflow, "name", "workflow.")
                 or "workflow", _MAX_NAME)
    number = _int(run, "run_number", "workflow_run.")
    numbered = f"'{name}' #{number}" if number is not None else f"'{name}'"
    return [done.event(
        key, f"github:{done.repo.full_name}:workflow:{name}:{done.scope}",
        f"workflow {numbered} {done.word} on {done.where()}",
        summary=_str(run, "display_title", "workflow_run."),
        started=_str(run, "run_started_at", "workflow_run.")
        or _str(run, "created_at", "workflow_run."),
        ended=_str(run, "updated_at", "workflow_run."),
        links=[("Run", run.get("html_url"))],
        labels={"workflow": name, "run_number": number})]


def _pull_request(data: Mapping[str, Any], key: str) -> list[Event]:
    action = _str(data, "action", "", required=True)
    pr = _object(data, "pull_request", "", required=True)
    if action not in _PR_ACTIONS:
        return []
    repo = _Repo(data)
    number = _int(pr, "number", "pull_request.") or _number(data, "number", "")
    merged = pr.get("merged") is True
    status = "merged" if action == "closed" and merged else action
    words = {"opened": "opened", "reopened": "reopened", "ready_for_review": "ready for review",
             "closed": "closed without merging", "merged": "merged"}
    head = _object(pr, "head", "pull_request.")
    base = _object(pr, "base", "pull_request.")
    branch = _line(_str(head, "ref", "pull_request.head."), _MAX_NAME)
    into = _line(_str(base, "ref", "pull_request.base."), _MAX_NAME)
    user = _object(pr, "user", "pull_request.")
    login = _str(user, "login", "pull_request.user.")
    by = f" by {login}" if login else ""
    draft = " (draft)" if pr.get("draft") is True and action == "opened" else ""
    branches = f" ({branch} → {into})" if branch and into else ""
    title = _line(_str(pr, "title", "pull_request."), 120)
    return [_github_event(
        key, f"github:{repo.full_name}:pr:{number}", "success",
        f"PR #{number} '{title}'{draft} {words[status]}{by} on {repo.full_name}{branches}",
        repo, summary=_str(pr, "body", "pull_request."),
        started=_str(pr, "created_at", "pull_request."),
        ended=_str(pr, "merged_at" if merged else "closed_at", "pull_request.")
        if action == "closed" else "",
        links=[("Pull request", pr.get("html_url") or repo.pr_url(number))],
        labels={"pr": number, "branch": branch, "base": into, "action": status,
                "author": login}, status=status)]


def _github(body: bytes, headers: Mapping[str, str]) -> list[Event]:
    name = (_header(headers, "X-GitHub-Event") or "").strip()
    if not name:
        raise EventFormatError("missing X-GitHub-Event header (GitHub names the event in it)")
    data = _document(body)
    readers = {"check_run": _check_run, "check_suite": _check_suite,
               "workflow_run": _workflow_run, "pull_request": _pull_request}
    reader = readers.get(name)
    if reader is None:
        return []  # ping and events opsbot does not report
    key, aliases = _github_keys(headers, body)
    return [dataclasses.replace(event, aliases=aliases) for event in reader(data, key)]


# -- Jenkins ----------------------------------------------------------------------------

_JENKINS_WORDS = {"SUCCESS": "succeeded", "FAILURE": "failed", "UNSTABLE": "is unstable",
                  "ABORTED": "was aborted", "NOT_BUILT": "was not built"}
_JENKINS_PHASES = ("QUEUED", "STARTED", "COMPLETED", "FINALIZED")
_SECRET_NAME = re.compile(r"pass|secret|token|credential|key", re.IGNORECASE)


def _jenkins_path(job: str) -> str:
    return "/".join(f"job/{part}" for part in job.split("/") if part)


def _jenkins_event(job: str, number: int, result: str, *, url: str | None,
                   started_ms: Any, duration_ms: Any, parameters: Mapping[str, str],
                   previous: str | None, summary: str,
                   extra: Mapping[str, str] | None = None) -> Event:
    job = _line(job, _MAX_NAME)
    result = result.strip().upper()
    lowered = {name.lower(): value for name, value in parameters.items()}
    service = lowered.get("service") or job.rsplit("/", 1)[-1].split("-", 1)[0]
    environment = normalise_environment(lowered.get("env") or lowered.get("environment"))
    started = ended = None
    if isinstance(started_ms, int | float) and not isinstance(started_ms, bool) and started_ms > 0:
        started = datetime.fromtimestamp(started_ms / 1000, UTC)
        if isinstance(duration_ms, int | float) and duration_ms > 0:
            ended = started + timedelta(milliseconds=duration_ms)
    lasted = f" in {duration_text((ended - started).total_seconds())}" \
        if started and ended else ""
    word = _JENKINS_WORDS.get(result, f"finished: {result}")
    again = ""
    if previous and previous.upper() != result and result == "SUCCESS":
        again = f" (the build before: {previous.upper()})"
    labels = {name: value for name, value in parameters.items()
              if not _SECRET_NAME.search(name)}
    labels.update(extra or {})
    labels.update({"build_number": str(number), "result": result})
    if previous:
        labels["previous_result"] = previous.upper()
    return Event(
        source="jenkins", key=f"jenkins:{job}#{number}", group=f"jenkins:{job}",
        kind=FAILURE if result in ("FAILURE", "UNSTABLE") else RESULT,
        status=_line(result.lower(), 40),
        title=_line(f"{job} #{number} {word}{lasted}{again}"),
        summary=_cap(summary, MAX_SUMMARY), service=_line(service, _MAX_NAME),
        environment=environment, job=job, started_at=started, ended_at=ended,
        links=_links([("Console", url.rstrip("/") + "/console" if url else None)]),
        labels=_capped_labels(labels),
    )


def _parameter_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None or isinstance(value, dict | list) else str(value)


def jenkins_build_event(job: str, build: Mapping[str, Any], previous_result: str | None,
                        summary: str = "", url_base: str | None = None) -> Event | None:
    """The event for a build the Jenkins watcher polled (python-jenkins' ``get_build_info``).

    None while it is still building. ``previous_result``: the job's build before (a
    success after a failure says so). ``summary``: what the failure report found.
    ``url_base``: the Jenkins address people open, when it differs from the build's own
    ``url`` (the watcher reaching Jenkins through an internal name).
    """
    number = build.get("number")
    if isinstance(number, bool) or not isinstance(number, int):
        raise EventFormatError(f"the build of {job} has no number")
    result = build.get("result")
    if build.get("building") is True or result is None:
        return None
    if not isinstance(result, str) or not result.strip():
        raise EventFormatError(f"{job} #{number}: result must be a string, not {_kind(result)}")
    parameters: dict[str, str] = {}
    for action in build.get("actions") or ():
        if not isinstance(action, dict):
            continue
        for parameter in action.get("parameters") or ():
            if not isinstance(parameter, dict) or not isinstance(parameter.get("name"), str):
                continue
            if "Password" in str(parameter.get("_class") or ""):
                continue  # never carried into a chat
            text = _parameter_text(parameter.get("value"))
            if text:
                parameters[parameter["name"]] = text
    url = _url(build.get("url"))
    if url_base:
        url = f"{url_base.rstrip('/')}/{_jenkins_path(job)}/{number}/"
    return _jenkins_event(job, number, result, url=url, started_ms=build.get("timestamp"),
                          duration_ms=build.get("duration"), parameters=parameters,
                          previous=previous_result, summary=summary)


@dataclass(frozen=True)
class JenkinsClaim:
    """What a Notification plugin body says: build ``number`` of ``job`` ended ``result``.

    Only a claim: the body and the ``?token=`` that let it in can be forged, so where
    Jenkins is configured opsbot asks Jenkins about the build before anything counts
    (``actions.events.jenkins_watch.JenkinsWatch.confirm``).
    """

    job: str  # the full name, "platform/nightly-integration"
    number: int
    result: str  # upper case: SUCCESS, FAILURE, UNSTABLE, ABORTED, NOT_BUILT


def _jenkins_claim(data: Mapping[str, Any]) -> JenkinsClaim | None:
    name = _str(data, "name", "", required=True)
    build = _object(data, "build", "", required=True)
    number = _number(build, "number", "build.")
    phase = _str(build, "phase", "build.", required=True)
    if phase not in _JENKINS_PHASES:
        raise EventFormatError(f"build.phase {_line(phase, 40)!r} is not one of "
                               f"{', '.join(_JENKINS_PHASES)}")
    if phase != "COMPLETED":
        return None
    status = _str(build, "status", "build.", required=True)
    # The job's url ("job/platform/job/nightly/") gives the full name the watcher uses.
    parts = [p for p in _str(data, "url", "").split("/") if p]
    full = "/".join(parts[1::2]) if len(parts) >= 2 and set(parts[0::2]) == {"job"} else name
    return JenkinsClaim(_line(full, _MAX_NAME), number, _line(status.upper(), 40))


def jenkins_claims(body: bytes) -> list[JenkinsClaim]:
    """The finished build a Notification plugin body names ([] for its QUEUED, STARTED and
    FINALIZED phases); EventFormatError, as :func:`parse`, when it is not that format."""
    claim = _jenkins_claim(_document(body))
    return [claim] if claim is not None else []


def _jenkins(body: bytes) -> list[Event]:
    """The Notification plugin: {"name", "url", "build": {"number", "phase", "status", ...}}."""
    data = _document(body)
    claim = _jenkins_claim(data)
    if claim is None:
        return []
    build = _object(data, "build", "")
    full, number, status = claim.job, claim.number, claim.result
    parameters = {str(k): _parameter_text(v)
                  for k, v in _object(build, "parameters", "build.").items()}
    scm = _object(build, "scm", "build.")
    extra = {"branch": _str(scm, "branch", "build.scm."),
             "commit": _str(scm, "commit", "build.scm.")}
    log = _str(build, "log", "build.")
    return [_jenkins_event(
        full, number, status, url=_url(build.get("full_url")),
        started_ms=build.get("timestamp"), duration_ms=build.get("duration"),
        parameters={k: v for k, v in parameters.items() if v}, previous=None,
        summary=log[-MAX_SUMMARY:], extra={k: v for k, v in extra.items() if v})]


# -- the entry point --------------------------------------------------------------------


def parse(source: str, body: bytes, headers: Mapping[str, str]) -> list[Event]:
    """The events in one webhook body from ``source``; [] when it reports nothing.

    EventFormatError (with the reason) when the body is not that source's format.
    """
    if source == "alertmanager":
        return [_alerts(source, _document(body), "4")]
    if source == "grafana":
        return [_alerts(source, _document(body), "1")]
    if source == "github":
        return _github(body, headers)
    if source == "jenkins":
        return _jenkins(body)
    raise EventFormatError(f"no event source {source!r}; opsbot reads {', '.join(SOURCES)}")
