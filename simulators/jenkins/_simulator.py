"""``JenkinsSimulator``, the Jenkins simulator's public face, and ``python -m simulators.jenkins``.

Why apart: tests and the demo drive Jenkins from here (builds as snapshots, the next
outcome, slow stops, a restart that drops the web sessions); the rest is private.
"""

from __future__ import annotations

import argparse
import difflib
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from simulators._base import SimulatorBase, add_address_arguments, check_account, run_main
from simulators._seed import SeedError
from simulators.jenkins._app import _App
from simulators.jenkins._model import (
    DEFAULT_SEED,
    DEFAULT_TOKEN,
    RESULTS,
    BuildSnapshot,
    RecordedRequest,
    _Job,
)
from simulators.jenkins._seed import _SeedLoader
from simulators.jenkins._state import _State


class JenkinsSimulator(SimulatorBase[RecordedRequest]):
    """A Jenkins HTTP server in a thread, seeded from YAML, with helpers for tests and demos.

    ``queue_delay`` is each build's quiet period in the queue and ``build_seconds`` how
    long a triggered build runs (seconds). ``port=0`` picks a free port; read ``url``
    after ``start()``. ``clock`` (epoch seconds) lets a test drive time itself.
    ``password`` lets ``user`` also sign in with a password instead of the API token
    (its POSTs then need a crumb from their web session); ``stop_seconds`` is how long a
    stopped build takes to reach an abort point (``set_stop`` sets it per job).
    """

    def __init__(
        self,
        seed_path: str | Path | None = None,
        user: str = "opsbot",
        token: str = DEFAULT_TOKEN,
        queue_delay: float = 0.2,
        build_seconds: float = 1.0,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        clock: Callable[[], float] = time.time,
        show_stack_trace: bool = False,
        password: str | None = None,
        stop_seconds: float = 0.0,
    ) -> None:
        check_account(user, token, user_kind="Jenkins user id", client="python-jenkins")
        if queue_delay < 0 or build_seconds < 0 or stop_seconds < 0:
            raise ValueError("queue_delay, build_seconds and stop_seconds must be >= 0 seconds")
        if password is not None and (not password or password == token):
            raise ValueError("password must be non-empty and differ from the API token")
        self.seed_path = Path(seed_path) if seed_path is not None else DEFAULT_SEED
        self.user = user
        self.token = token
        self.password = password
        seed = _SeedLoader(self.seed_path, clock(), user).load()
        self._state = _State(seed, queue_delay=queue_delay, build_seconds=build_seconds,
                             clock=clock, stop_seconds=stop_seconds)
        app = _App(self._state, user, token, lambda: self.url, password)
        app.show_stack_trace = show_stack_trace  # -Djenkins.model.Jenkins.SHOW_STACK_TRACE
        self._app = app
        super().__init__(
            app, faults=self._state.faults, requests=self._state.log,
            host=host, port=port, name="jenkins-simulator", server_name="Jetty(10.0.20)",
        )

    def __repr__(self) -> str:
        return f"JenkinsSimulator({self._location()}, user={self.user!r}, token='**********')"

    def restart(self) -> None:
        """Restart Jenkins as its HTTP clients see it: every web session is gone, and with
        it every crumb issued in one; builds, the queue and the crumb salt stay.

        Jetty keeps sessions in memory, and since Jenkins 2.176.2 (SECURITY-626) the
        default crumb issuer binds a crumb to the web session it was issued in
        (``DefaultCrumbIssuer.issueCrumb`` digests ``req.getSession().getId()``; see
        https://www.jenkins.io/doc/book/security/csrf-protection/ and CloudBees' "CSRF
        Protection Explained"). So a password client's next POST with its old crumb gets
        403 "No valid crumb was included in the request" (``CrumbFilter``), while an API
        token client passes (``ApiCrumbExclusion``). ``X-Jenkins-Session`` changes.
        """
        with self._state.lock:
            self._app.restart()

    # -- lifecycle (url, port, start, stop, with: SimulatorBase) -------------------

    @property
    def version(self) -> str:
        """The Jenkins version the server reports in ``X-Jenkins``."""
        return self._state.seed.version

    def describe(self) -> str:
        """One line for the demo banner (the token is the simulator's own, not a secret)."""
        return f"Jenkins {self.version} at {self.url} (user {self.user}, token {self.token})"

    def env(self) -> dict[str, str]:
        """JENKINS_URL, JENKINS_USER and JENKINS_TOKEN for opsbot's action server."""
        return {"JENKINS_URL": self.url, "JENKINS_USER": self.user, "JENKINS_TOKEN": self.token}

    # -- inspection (and request_log: SimulatorBase) -------------------------------

    def job_names(self) -> list[str]:
        """Full names of every job and folder, e.g. ``platform/nightly-integration``."""
        with self._state.lock:
            return sorted(self._state.jobs)

    def builds(self, job: str) -> list[BuildSnapshot]:
        """Every build of ``job``, oldest first, with parameters, cause and console."""
        with self._state.lock:
            now = self._state.now()
            return [self._state.snapshot(b, now) for b in self._job(job).builds]

    def build(self, job: str, number: int) -> BuildSnapshot:
        """One build of ``job``; KeyError if there is no such build."""
        for snapshot in self.builds(job):
            if snapshot.number == number:
                return snapshot
        raise KeyError(f"{job} has no build #{number}")

    # -- steering (and fail_next, delay_next, respond_delay: SimulatorBase) --------

    def set_outcome(self, job: str, result: str, *, log: str | None = None) -> None:
        """Make the next build of ``job`` end with ``result`` (queued: calls stack up).

        ``log`` names a console template from the seed's ``logs:`` (default: the job's
        own template for that result).
        """
        if result not in RESULTS:
            raise ValueError(f"result must be one of {', '.join(RESULTS)}, got {result!r}")
        with self._state.lock:
            target = self._job(job)
            if target.is_folder:
                raise ValueError(f"{job} is a folder; folders have no builds")
            if log is not None and log not in self._state.seed.templates:
                known = ", ".join(sorted(self._state.seed.templates))
                raise ValueError(f"no log template {log!r} in {self.seed_path}; known: {known}")
            target.forced.append((result, log))

    def set_stop(self, job: str, *, seconds: float = 0.0, result: str | None = "ABORTED") -> None:
        """How ``job``'s builds take a stop from now on: ``seconds`` until it takes effect,
        and the result they end with then; ``result=None``: they ignore it and run their
        course (a step that does not answer the interrupt).

        Stopping is asynchronous in Jenkins: ``POST .../stop`` answers 302 at once
        (``Executor.doStop`` interrupts the executor and returns
        ``forwardToPreviousPage()``), and the build, ``building: true`` meanwhile, ends
        when it reaches an abort point; a pipeline gets the interrupt on a timer thread
        and offers to terminate its steps after 15 s (workflow-job's
        ``WorkflowRun.sleep()`` and ``printLater``), and one that catches the
        interruption (``catchError``, ``try``/``catch``) may end SUCCESS or FAILURE.
        """
        if seconds < 0:
            raise ValueError(f"seconds must be >= 0, got {seconds}")
        if result is not None and result not in RESULTS:
            raise ValueError(f"result must be one of {', '.join(RESULTS)} or None, "
                             f"got {result!r}")
        with self._state.lock:
            target = self._job(job)
            if target.is_folder:
                raise ValueError(f"{job} is a folder; folders have no builds")
            target.stop_seconds, target.stop_result = seconds, result

    def _job(self, name: str) -> _Job:
        job = self._state.jobs.get(name)
        if job is None:
            close = difflib.get_close_matches(name, self._state.jobs, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise KeyError(f"no job called {name!r} in {self.seed_path}{hint}")
        return job


def main(argv: Sequence[str] | None = None) -> int:
    """Run the simulator in the foreground until SIGINT or SIGTERM."""
    parser = argparse.ArgumentParser(
        prog="python -m simulators.jenkins",
        description="A local Jenkins for opsbot: python-jenkins talks to it like to the real one.",
    )
    add_address_arguments(parser, 8080)
    parser.add_argument("--seed", type=Path, default=DEFAULT_SEED, help="jobs and history (YAML)")
    parser.add_argument("--user", default="opsbot", help="the one user that may log in")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="that user's API token")
    parser.add_argument("--password", default=None,
                        help="that user's password too (its POSTs need a session's crumb)")
    parser.add_argument("--queue-delay", type=float, default=1.0,
                        help="seconds a build waits in the queue (default 1)")
    parser.add_argument("--build-seconds", type=float, default=10.0,
                        help="seconds a triggered build runs (default 10)")
    args = parser.parse_args(argv)

    def banner(simulator: JenkinsSimulator) -> list[str]:
        return [f"Jenkins simulator (Jenkins {simulator.version}) at {simulator.url}",
                f"  user:  {simulator.user}",
                f"  token: {simulator.token}",
                f"  jobs:  {len(simulator.job_names())} from {simulator.seed_path}"]

    return run_main(lambda: JenkinsSimulator(args.seed, args.user, args.token, args.queue_delay,
                                             args.build_seconds, args.host, args.port,
                                             password=args.password),
                    banner, seed_error=SeedError, cannot=f"listen on {args.host}:{args.port}")
