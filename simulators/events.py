"""Webhook bodies as the event sources send them, and a sender that posts them like they do.

The demo and the tests use these to play Alertmanager, Grafana, GitHub and Jenkins
against ``POST /webhooks/events/<source>``. Each builder follows its vendor's documented
payload:

* :func:`alertmanager_payload`: the Alertmanager webhook, version "4"
  (https://prometheus.io/docs/alerting/latest/configuration/#webhook_config);
* :func:`grafana_payload`: Grafana Alerting's webhook contact point, version "1"
  (https://grafana.com/docs/grafana/latest/alerting/configure-notifications/manage-contact-points/integrations/webhook-notifier/);
* :func:`github_check_run`, :func:`github_workflow_run`, :func:`github_pull_request`: the
  ``check_run``, ``workflow_run`` and ``pull_request`` events
  (https://docs.github.com/en/webhooks/webhook-events-and-payloads), trimmed to the
  fields a receiver reads plus their neighbours;
* :func:`jenkins_notification`: the Jenkins Notification plugin's JSON
  (https://plugins.jenkins.io/notification/).

:func:`post_event` sends one with the real authentication: ``Authorization: Bearer``
(Alertmanager's ``http_config.authorization``, Grafana's "Authorization header"), basic
auth with the token as password (``http_config.basic_auth``, Grafana's username and
password), ``?token=`` for Jenkins (all its plugin can do), and for GitHub the
``X-Hub-Signature-256`` HMAC of the body with ``X-GitHub-Event`` and ``X-GitHub-Delivery``
("Validating webhook deliveries", https://docs.github.com/en/webhooks/using-webhooks/validating-webhook-deliveries).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.error
import urllib.parse
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

__all__ = [
    "alertmanager_payload",
    "github_check_run",
    "github_pull_request",
    "github_workflow_run",
    "grafana_payload",
    "jenkins_notification",
    "post_event",
]

_ZERO_TIME = "0001-01-01T00:00:00Z"  # Go's zero time: what both alert senders send for "not ended"
_SOURCES = ("alertmanager", "grafana", "github", "jenkins")
_USER_AGENTS = {"alertmanager": "Alertmanager/0.27.0", "grafana": "Grafana",
                "github": "GitHub-Hookshot/opsbot-simulator", "jenkins": "Jenkins"}


def _rfc3339(moment: datetime) -> str:
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _fingerprint(labels: dict[str, str]) -> str:
    """16 hex digits from the labels, as Alertmanager's fingerprint is."""
    text = "\xff".join(f"{k}\xff{v}" for k, v in sorted(labels.items()))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def _alert_times(status: str, started_at: datetime | None,
                 ended_at: datetime | None) -> tuple[str, str]:
    now = datetime.now(UTC).replace(microsecond=0)
    start = started_at or now - timedelta(minutes=5)
    if status == "resolved":
        return _rfc3339(start), _rfc3339(ended_at or max(now, start))
    return _rfc3339(start), _ZERO_TIME


def _alert_group(labels: dict[str, str], annotations: dict[str, str], status: str,
                 starts: str, ends: str, fingerprint: str | None,
                 group_key: str | None, group_by: tuple[str, ...]) -> dict[str, Any]:
    """What both alert senders share: the group around one alert."""
    group_labels = {k: labels[k] for k in group_by if k in labels}
    inner = ", ".join(f'{k}="{v}"' for k, v in group_labels.items())
    return {
        "status": status,
        "alerts": [{"status": status, "labels": labels, "annotations": annotations,
                    "startsAt": starts, "endsAt": ends,
                    "fingerprint": fingerprint or _fingerprint(labels)}],
        "groupLabels": group_labels,
        "commonLabels": dict(labels),
        "commonAnnotations": dict(annotations),
        "groupKey": group_key or f"{{}}:{{{inner}}}",
        "truncatedAlerts": 0,
    }


def alertmanager_payload(service: str = "payments", environment: str = "prod",
                         status: str = "firing", alertname: str = "HighErrorRate",
                         severity: str = "critical", started_at: datetime | None = None,
                         ended_at: datetime | None = None, group_key: str | None = None,
                         external_url: str = "http://alertmanager.local:9093",
                         fingerprint: str | None = None) -> dict[str, Any]:
    """An Alertmanager notification of one group with one alert (``status`` firing or
    resolved; a resolved one ends ``ended_at``, or now)."""
    starts, ends = _alert_times(status, started_at, ended_at)
    labels = {"alertname": alertname, "env": environment, "instance": f"{service}-0:8080",
              "job": f"{service}-api", "service": service, "severity": severity}
    annotations = {
        "summary": f"{service} is failing more than 5% of requests",
        "description": f"5xx responses of {service} on {environment} are above 5% of all "
                       "requests for the last 10 minutes.",
        "runbook_url": f"https://runbooks.example.org/{service}/{alertname}",
    }
    group = _alert_group(labels, annotations, status, starts, ends, fingerprint, group_key,
                         ("alertname", "service"))
    group["alerts"][0]["generatorURL"] = (
        "http://prometheus.local:9090/graph?g0.expr="
        + urllib.parse.quote_plus(f'job:errors:ratio5m{{service="{service}"}} > 0.05')
        + "&g0.tab=1")
    return {"version": "4", "receiver": "opsbot", "externalURL": external_url, **group}


def grafana_payload(service: str = "checkout", environment: str = "staging",
                    status: str = "firing", alertname: str = "High latency",
                    severity: str = "warning", started_at: datetime | None = None,
                    ended_at: datetime | None = None, group_key: str | None = None,
                    external_url: str = "http://grafana.local:3000/",
                    fingerprint: str | None = None, org_id: int = 1) -> dict[str, Any]:
    """A Grafana Alerting notification of one group with one alert, with the deprecated
    ``title``, ``state`` and ``message`` Grafana still sends."""
    starts, ends = _alert_times(status, started_at, ended_at)
    base = external_url.rstrip("/")
    labels = {"alertname": alertname, "app": service, "environment": environment,
              "grafana_folder": service.capitalize(), "severity": severity}
    annotations = {
        "summary": f"{service} p99 latency above 1s",
        "description": f"p99 latency of {service} on {environment} is 2.4s (threshold 1s).",
        "runbook_url": f"https://runbooks.example.org/{service}/latency",
    }
    group = _alert_group(labels, annotations, status, starts, ends, fingerprint, group_key,
                         ("alertname", "grafana_folder"))
    dashboard = f"{base}/d/{service}-overview?orgId={org_id}"
    group["alerts"][0].update({
        "generatorURL": f"{base}/alerting/grafana/{service}-latency/view?orgId={org_id}",
        "silenceURL": f"{base}/alerting/silence/new?alertmanager=grafana&matcher="
                      + urllib.parse.quote_plus(f"alertname={alertname}") + f"&orgId={org_id}",
        "dashboardURL": dashboard,
        "panelURL": f"{dashboard}&viewPanel=4",
        "values": {"B": 2.41 if status == "firing" else 0.62, "C": 1 if status == "firing" else 0},
    })
    word = "FIRING:1" if status == "firing" else "RESOLVED"
    return {"receiver": "opsbot", "orgId": org_id, "externalURL": base + "/", "version": "1",
            **group,
        "title": f"[{word}] {alertname} ({service} {environment} {severity})",
        "state": "alerting" if status == "firing" else "ok",
        "message": f"**{'Firing' if status == 'firing' else 'Resolved'}**\n\n"
                   f"Labels:\n - alertname = {alertname}\n - app = {service}\n"}


def _sha(*parts: Any) -> str:
    return hashlib.sha1(json.dumps(parts).encode("utf-8")).hexdigest()


def _repository(repo: str) -> dict[str, Any]:
    owner, _, name = repo.partition("/")
    return {"id": int(_sha(repo)[:8], 16), "name": name, "full_name": repo, "private": False,
            "owner": {"login": owner, "type": "Organization",
                      "html_url": f"https://github.com/{owner}"},
            "html_url": f"https://github.com/{repo}", "fork": False,
            "url": f"https://api.github.com/repos/{repo}", "default_branch": "main"}


def _pr_reference(repo: str, number: int, branch: str, sha: str) -> dict[str, Any]:
    """A pull request as check and workflow events list it (API URLs, no html_url)."""
    api = f"https://api.github.com/repos/{repo}"
    return {"url": f"{api}/pulls/{number}", "id": 279147437 + number, "number": number,
            "head": {"ref": branch, "sha": sha, "repo": {"url": api, "name": repo.split("/")[-1]}},
            "base": {"ref": "main", "sha": _sha(repo, "main"),
                     "repo": {"url": api, "name": repo.split("/")[-1]}}}


_SENDER = {"login": "octocat", "id": 583231, "type": "User",
           "html_url": "https://github.com/octocat"}
_ACTIONS_APP = {"id": 15368, "slug": "github-actions", "name": "GitHub Actions",
                "owner": {"login": "github", "id": 9919},
                "html_url": "https://github.com/apps/github-actions"}


def github_check_run(repo: str = "acme/checkout", name: str = "unit tests",
                     conclusion: str | None = "failure", pr: int | None = 42,
                     branch: str = "feature/login", sha: str | None = None,
                     action: str = "completed") -> dict[str, Any]:
    """A ``check_run`` event (``conclusion`` None with an action other than completed)."""
    sha = sha or _sha(repo, branch)
    run_id = int(_sha(repo, name, sha)[:7], 16)
    prs = [_pr_reference(repo, pr, branch, sha)] if pr is not None else []
    done = action == "completed"
    failed = conclusion not in (None, "success", "neutral", "skipped")
    return {
        "action": action,
        "check_run": {
            "id": run_id, "name": name, "head_sha": sha, "external_id": "",
            "url": f"https://api.github.com/repos/{repo}/check-runs/{run_id}",
            "html_url": f"https://github.com/{repo}/runs/{run_id}",
            "details_url": f"https://github.com/{repo}/actions/runs/{run_id}",
            "status": "completed" if done else "in_progress",
            "conclusion": conclusion if done else None,
            "started_at": "2024-05-14T08:11:05Z",
            "completed_at": "2024-05-14T08:14:35Z" if done else None,
            "output": {"title": ("1 test failed" if failed else "All tests passed") if done
                       else None,
                       "summary": "tests/test_login.py::test_session_expiry FAILED" if failed
                       and done else None,
                       "text": None, "annotations_count": 0},
            "check_suite": {"id": run_id + 1, "head_branch": branch, "head_sha": sha,
                            "status": "completed" if done else "in_progress",
                            "conclusion": conclusion if done else None,
                            "pull_requests": prs, "app": _ACTIONS_APP},
            "app": _ACTIONS_APP, "pull_requests": prs,
        },
        "repository": _repository(repo), "sender": _SENDER,
    }


def github_workflow_run(repo: str = "acme/checkout", name: str = "CI",
                        conclusion: str | None = "failure", branch: str = "main",
                        run_number: int = 311, sha: str | None = None, pr: int | None = None,
                        action: str = "completed") -> dict[str, Any]:
    """A ``workflow_run`` event of a push (or of ``pr``) on ``branch``."""
    sha = sha or _sha(repo, branch, run_number)
    run_id = 9081000 + run_number
    done = action == "completed"
    return {
        "action": action,
        "workflow_run": {
            "id": run_id, "name": name, "head_branch": branch, "head_sha": sha,
            "path": ".github/workflows/ci.yml", "display_title": f"Run {run_number} of {name}",
            "run_number": run_number, "event": "pull_request" if pr is not None else "push",
            "status": "completed" if done else "in_progress",
            "conclusion": conclusion if done else None, "workflow_id": 161335,
            "url": f"https://api.github.com/repos/{repo}/actions/runs/{run_id}",
            "html_url": f"https://github.com/{repo}/actions/runs/{run_id}",
            "pull_requests": [_pr_reference(repo, pr, branch, sha)] if pr is not None else [],
            "created_at": "2024-05-14T08:20:00Z", "updated_at": "2024-05-14T08:26:41Z",
            "run_attempt": 1, "run_started_at": "2024-05-14T08:20:00Z", "actor": _SENDER,
        },
        "workflow": {"id": 161335, "name": name, "path": ".github/workflows/ci.yml",
                     "state": "active"},
        "repository": _repository(repo), "sender": _SENDER,
    }


def github_pull_request(repo: str = "acme/checkout", number: int = 42,
                        action: str = "opened", title: str = "Login: time out idle sessions",
                        branch: str = "feature/login", base: str = "main",
                        merged: bool = False, user: str = "maria") -> dict[str, Any]:
    """A ``pull_request`` event; ``action`` closed with ``merged`` is a merge."""
    closed = action == "closed"
    author = {"login": user, "id": 583231, "type": "User"}
    return {
        "action": action, "number": number,
        "pull_request": {
            "url": f"https://api.github.com/repos/{repo}/pulls/{number}",
            "id": 279147437 + number, "html_url": f"https://github.com/{repo}/pull/{number}",
            "number": number, "state": "closed" if closed else "open", "locked": False,
            "title": title, "user": author, "body": f"{title}.\n\nFixes OPS-123.",
            "created_at": "2024-05-14T08:10:51Z", "updated_at": "2024-05-14T08:10:51Z",
            "closed_at": "2024-05-14T09:30:00Z" if closed else None,
            "merged_at": "2024-05-14T09:30:00Z" if closed and merged else None,
            "draft": False, "merged": closed and merged,
            "head": {"label": f"{repo.split('/')[0]}:{branch}", "ref": branch,
                     "sha": _sha(repo, branch)},
            "base": {"label": f"{repo.split('/')[0]}:{base}", "ref": base,
                     "sha": _sha(repo, base)},
        },
        "repository": _repository(repo), "sender": author,
    }


def jenkins_notification(job: str = "payments-deploy", number: int = 413,
                         status: str | None = "FAILURE", phase: str = "COMPLETED",
                         base_url: str = "http://jenkins.local:8080",
                         parameters: dict[str, str] | None = None, log: str = "",
                         timestamp_ms: int = 1715676000000,
                         duration_ms: int = 133000) -> dict[str, Any]:
    """The Notification plugin's JSON for a build of ``job`` (a folder job as
    "folder/name") in ``phase``."""
    path = "".join(f"job/{part}/" for part in job.split("/"))
    return {
        "name": job.rsplit("/", 1)[-1], "display_name": job.rsplit("/", 1)[-1], "url": path,
        "build": {
            "full_url": f"{base_url.rstrip('/')}/{path}{number}/", "number": number,
            "queue_id": 1000 + number, "timestamp": timestamp_ms,
            "duration": duration_ms if phase != "STARTED" else 0,
            "phase": phase, "status": status, "url": f"{path}{number}/",
            "scm": {"url": "https://github.com/acme/payments.git", "branch": "origin/main",
                    "commit": _sha(job, number), "changes": [], "culprits": []},
            "parameters": dict(parameters or {}), "log": log, "notes": "", "artifacts": {},
        },
    }


def _github_event_of(payload: dict[str, Any]) -> str:
    for name in ("check_run", "check_suite", "workflow_run", "pull_request"):
        if name in payload:
            return name
    return "ping" if "zen" in payload else "push"


def post_event(base_url: str, source: str, payload: dict[str, Any] | bytes, *,
               token: str | None = None, secret: str | None = None,
               delivery: str | None = None, event: str | None = None, basic: bool = False,
               timeout: float = 10) -> tuple[int, str]:
    """POST ``payload`` to ``{base_url}/webhooks/events/{source}`` as its sender would;
    (status, body text), for error statuses too.

    ``token``: Bearer (or, with ``basic``, the basic-auth password; for Jenkins without
    ``basic``, the ``?token=`` query). GitHub: ``secret`` signs the body; ``event`` (else
    guessed from the payload) and ``delivery`` (else a new uuid4) fill the headers.
    """
    if source not in _SOURCES:
        raise ValueError(f"no event source {source!r}; one of {', '.join(_SOURCES)}")
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
    url = f"{base_url.rstrip('/')}/webhooks/events/{source}"
    headers = {"Content-Type": "application/json", "User-Agent": _USER_AGENTS[source]}
    if token is not None:
        if basic:
            pair = base64.b64encode(f"{source}:{token}".encode()).decode("ascii")
            headers["Authorization"] = f"Basic {pair}"
        elif source == "jenkins":
            url += "?" + urllib.parse.urlencode({"token": token})
        else:
            headers["Authorization"] = f"Bearer {token}"
    if source == "github":
        guessed = _github_event_of(payload) if isinstance(payload, dict) else "push"
        headers["X-GitHub-Event"] = event or guessed
        headers["X-GitHub-Delivery"] = delivery or str(uuid.uuid4())
        headers["X-GitHub-Hook-ID"] = "109948940"
        if secret is not None:
            digest = hmac.new(secret.encode("utf-8"), body, hashlib.sha256).hexdigest()
            headers["X-Hub-Signature-256"] = f"sha256={digest}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            return int(answer.status), answer.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        with exc:
            return int(exc.code), exc.read().decode("utf-8", "replace")
