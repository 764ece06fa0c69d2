"""``/simulate`` in the demo chat, and ``opsbot demo --events``: realistic events, sent the
way their senders send them.

A simulated Alertmanager posts an error-rate alert (and later its resolution) to
``/webhooks/events/alertmanager`` with the bearer token, a simulated Grafana the same to
``/webhooks/events/grafana``, and a simulated GitHub posts failed (or green) checks of a
pull request to ``/webhooks/events/github``, signed with ``X-Hub-Signature-256``: the
real endpoints, the real checks. The payloads come from ``simulators.events``.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TextIO

from simulators.events import (
    alertmanager_payload,
    github_check_run,
    github_workflow_run,
    grafana_payload,
    post_event,
)

__all__ = ["HELP", "RandomEvents", "Simulator"]

HELP = """/simulate alert [service] [env]    Alertmanager: an error-rate alert (payments prod)
/simulate resolve [service] [env]  Alertmanager: that alert resolved
/simulate grafana [service] [env]  Grafana: a latency alert (checkout staging)
/simulate checks [owner/repo]      GitHub: the checks of PR #42 failed (acme/checkout)
/simulate green [owner/repo]       GitHub: the same checks passed"""


class Simulator:
    """Fires events at one opsbot (``base_url``: its Rasa server) as the vendors would."""

    def __init__(self, base_url: str, token: str | None, secret: str | None) -> None:
        self.base_url, self.token, self.secret = base_url, token, secret
        self._started: dict[tuple[str, str, str], datetime] = {}

    def command(self, line: str) -> str:
        """Run one ``/simulate ...`` line; what happened, for the chat."""
        words = line.split()[1:]
        if not words or words[0] in ("help", "?"):
            return HELP
        what, args = words[0].lower(), words[1:]
        if what in ("alert", "resolve", "resolved"):
            service, env = (args + ["payments", "prod"][len(args):])[:2]
            return self.alert("alertmanager", service, env, resolved=what != "alert")
        if what == "grafana":
            service, env = (args + ["checkout", "staging"][len(args):])[:2]
            resolved = len(args) > 2 and args[2] in ("resolve", "resolved")
            return self.alert("grafana", service, env, resolved=resolved)
        if what in ("checks", "check", "green"):
            repo = args[0] if args else "acme/checkout"
            if "/" not in repo:
                repo = f"acme/{repo}"
            return self.checks(repo, passed=what == "green")
        return f"Unknown: {line}\n{HELP}"

    def alert(self, source: str, service: str, env: str, *, resolved: bool = False) -> str:
        if not self.token:
            return "The alert sources are off: OPSBOT_EVENTS_TOKEN is not set."
        key = (source, service, env)
        now = datetime.now(UTC)
        started = self._started.get(key) or now - timedelta(minutes=3)
        build = alertmanager_payload if source == "alertmanager" else grafana_payload
        if resolved:
            payload = build(service=service, environment=env, status="resolved",
                            started_at=started, ended_at=now)
            self._started.pop(key, None)
        else:
            self._started[key] = started
            payload = build(service=service, environment=env, status="firing",
                            started_at=started)
        status, body = post_event(self.base_url, source, payload, token=self.token)
        name = "Alertmanager" if source == "alertmanager" else "Grafana"
        word = "resolved" if resolved else "firing"
        return f"({name} posted a {word} alert for {service} on {env}: HTTP {status} {body})"

    def checks(self, repo: str, *, passed: bool = False) -> str:
        if not self.secret:
            return "GitHub events are off: GITHUB_WEBHOOK_SECRET is not set."
        conclusion = "success" if passed else "failure"
        answers = []
        for payload, event in (
            (github_check_run(repo=repo, name="unit tests", conclusion=conclusion, pr=42),
             "check_run"),
            (github_workflow_run(repo=repo, name="CI", conclusion=conclusion, pr=42),
             "workflow_run"),
        ):
            status, _ = post_event(self.base_url, "github", payload, secret=self.secret,
                                   event=event)
            answers.append(f"{event} HTTP {status}")
        return f"(GitHub posted {conclusion} checks of {repo} PR #42: {', '.join(answers)})"


class RandomEvents(threading.Thread):
    """``opsbot demo --events``: now and then an alert, its resolution, failed checks."""

    def __init__(self, simulator: Simulator, out: TextIO | None = None,
                 every: tuple[float, float] = (45.0, 120.0),
                 choice: Callable[[list[str]], str] = random.choice) -> None:
        super().__init__(name="opsbot-demo-events", daemon=True)
        self.simulator, self.out, self.every, self.choice = simulator, out, every, choice
        self.stopped = threading.Event()

    def run(self) -> None:
        firing: list[str] = []
        while not self.stopped.wait(random.uniform(*self.every)):
            options = ["alert payments prod", "alert billing prod", "checks acme/checkout"]
            if firing:
                options += [f"resolve {firing[0]}"] * 2
            pick = self.choice(options)
            try:
                said = self.simulator.command(f"/simulate {pick}")
            except OSError as exc:
                said = f"(the demo's event simulator could not post: {exc})"
            if pick.startswith("alert "):
                target = pick.split(" ", 1)[1]
                if target not in firing:
                    firing.append(target)
            elif pick.startswith("resolve "):
                firing.remove(pick.split(" ", 1)[1])
            if self.out is not None:
                self.out.write(f"\n{said}\n")
                self.out.flush()
