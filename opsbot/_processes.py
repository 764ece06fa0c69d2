"""Starting, watching and stopping opsbot's servers (Rasa server, action server, simulators)
and, on demand, its trainer."""

from __future__ import annotations

import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import yaml

from opsbot import _replicas
from opsbot._private import UMASK, open_private, private_dir, secure_state_dir, write_private
from opsbot._tokens import ACTIONS_SECRET, API_TOKEN, REST_TOKEN, forget_tokens, run_tokens
from opsbot._trainer import PORT_FILE
from opsbot.settings import Settings


class StartupError(RuntimeError):
    """A server could not be started; the message says why and what to do."""


def port_in_use(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return True
    return False


def _die_with_parent() -> None:  # pragma: no cover - runs in the child
    """Ask Linux to SIGTERM the child if opsbot itself dies, so nothing is left behind."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def stop_process(process: subprocess.Popen[Any], grace: float = 30.0) -> None:
    """SIGTERM ``process``, then SIGKILL it if it is still there after ``grace`` seconds."""
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def http_get_json(url: str, timeout: float = 2.0) -> object | None:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return json.loads(response.read().decode() or "null")
    except (urllib.error.URLError, OSError, ValueError):
        return None


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes]


# The chat connectors `opsbot run` switches on from the environment: credentials.yml
# section -> (key, variable) pairs, the first being the one that must be set.
CONNECTOR_SETTINGS: dict[str, tuple[tuple[str, str], ...]] = {
    "connectors.telegram.TelegramInput": (
        ("token", "TELEGRAM_TOKEN"), ("mode", "TELEGRAM_MODE"),
        ("webhook_url", "TELEGRAM_WEBHOOK_URL"), ("webhook_secret", "TELEGRAM_WEBHOOK_SECRET"),
        ("api_url", "TELEGRAM_API_URL"),
    ),
    "connectors.teams.TeamsInput": (
        ("app_id", "TEAMS_APP_ID"), ("app_password", "TEAMS_APP_PASSWORD"),
        ("tenant_id", "TEAMS_TENANT_ID"), ("app_type", "TEAMS_APP_TYPE"),
        ("openid_metadata_url", "TEAMS_OPENID_METADATA_URL"),
        ("token_issuer", "TEAMS_TOKEN_ISSUER"), ("authority_url", "TEAMS_AUTHORITY_URL"),
    ),
    "connectors.slack.SlackInput": (
        ("bot_token", "SLACK_BOT_TOKEN"), ("app_token", "SLACK_APP_TOKEN"),
        ("signing_secret", "SLACK_SIGNING_SECRET"), ("mode", "SLACK_MODE"),
        ("api_url", "SLACK_API_URL"), ("allowed_channels", "SLACK_ALLOWED_CHANNELS"),
    ),
}


# The endpoint `opsbot train --reload` calls; always part of a run's credentials.
RELOAD_CHANNEL = "connectors.reload.ModelReload"
# The event webhooks and their courier (POST /webhooks/events/<source>); always added: a
# source is off until its token variable is set.
EVENTS_CHANNEL = "connectors.events.EventsInput"
# The REST channel with a bearer token; a run adds it when it has a REST token.
REST_CHANNEL = "connectors.rest.RestInput"


def _one_thread_math() -> dict[str, str]:
    """The servers' numeric libraries (OpenBLAS, OpenMP, torch) on one thread each.

    A turn multiplies small matrices (one message's features); with a thread pool per
    core, the pool's threads spin between them, and that spinning was half the Rasa
    server's CPU per message under load (``python -m bench.profile``). Concurrency comes
    from the many conversations instead. Training (the warm trainer, ``opsbot train``)
    keeps every core. A variable set in the environment wins.
    """
    return {name: os.environ.get(name) or "1"
            for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


@dataclass
class Stack:
    """The processes behind one `opsbot run` / `opsbot demo`."""

    settings: Settings
    children: list[Child] = field(default_factory=list)
    # Whether the REST channel is on without OPSBOT_REST_TOKEN (``opsbot demo``: a token
    # is generated for the terminal chat).
    rest: bool = False
    trainer: TrainerOnDemand | None = None
    _tokens: dict[str, str] | None = None

    @property
    def tokens(self) -> dict[str, str]:
        """This run's API token, action-server secret and (when on) REST token."""
        if self._tokens is None:
            self._tokens = run_tokens(self.settings.state_dir, rest=self.rest)
        return self._tokens

    def api_query(self) -> str:
        """``?token=...`` for Rasa's HTTP API."""
        return "?token=" + urllib.parse.quote(self.tokens[API_TOKEN], safe="")

    @property
    def log_dir(self) -> Path:
        return self.settings.state_dir / "logs"

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(self.settings.project), env.get("PYTHONPATH", "")) if p
        )
        env.setdefault("HF_HUB_OFFLINE", "1")
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        env.setdefault("PYTHONWARNINGS", "ignore")  # the pinned libraries' deprecation noise
        env.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")
        env.setdefault("PYTHONUNBUFFERED", "1")  # a server's log is complete when it stops
        env["OPSBOT_CACHE_DIR"] = str(self.settings.cache_dir)
        env["OPSBOT_STATE_DIR"] = str(self.settings.state_dir)
        env["OPSBOT_MODELS"] = str(self.settings.models)
        env["OPSBOT_PROJECT"] = str(self.settings.project)
        env.update(self.tokens)
        if REST_TOKEN not in self.tokens:
            env.pop(REST_TOKEN, None)
        return env

    def start(self, name: str, command: list[str], extra_env: dict[str, str] | None = None,
              pass_fds: tuple[int, ...] = ()) -> Child:
        secure_state_dir(self.settings.state_dir)  # 0700, and what earlier runs left: 0600
        log_path = private_dir(self.log_dir) / f"{name}.log"
        log = open_private(log_path)
        process = subprocess.Popen(
            command,
            cwd=self.settings.project,
            env={**self._env(), **(extra_env or {})},
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            pass_fds=pass_fds,
            preexec_fn=_die_with_parent,
            umask=UMASK,  # what the servers create in the state dir is theirs only
        )
        child = Child(name, process, log_path, log)
        self.children.append(child)
        return child

    def runtime_endpoints(self, env: Mapping[str, str] | None = None) -> Path:
        """endpoints.yml for this run: the action server's URL and secret (by reference),
        the tracker store and, with OPSBOT_REDIS_URL, Rasa's Redis lock store
        (``opsbot._replicas``)."""
        env = os.environ if env is None else env
        private_dir(self.settings.state_dir)
        path = self.settings.state_dir / "endpoints.yml"
        try:
            stores: dict[str, Any] = {
                "tracker_store": _replicas.tracker_store(env, self.settings.state_dir)}
            lock_store = _replicas.lock_store(env)
        except _replicas.ReplicaError as exc:
            raise StartupError(str(exc)) from None
        if lock_store is not None:
            stores["lock_store"] = lock_store
        write_private(path,
            "# Written by opsbot for this run; edit endpoints.yml instead. Secrets are read\n"
            "# from the environment, never written here.\n"
            f"action_endpoint:\n  url: \"{self.settings.actions_url}\"\n"
            # unquoted: Rasa replaces ${VAR} only in plain YAML scalars
            f"  headers:\n    X-Opsbot-Secret: ${{{ACTIONS_SECRET}}}\n"
            # opsbot's actions never read the domain: do not send it with every call
            "  enable_selective_domain: true\n"
            + yaml.safe_dump(stores, sort_keys=False, default_flow_style=False),
            encoding="utf-8",
        )
        return path

    def start_action_server(self, extra_env: dict[str, str] | None = None) -> Child:
        """The action server, told where the Rasa server (for notifications) and the store are."""
        s = self.settings
        env = {
            "OPSBOT_RASA_URL": f"http://{s.host}:{s.port}",
            "OPSBOT_STATE_DIR": str(s.state_dir),
            **_one_thread_math(),
            **(extra_env or {}),
        }
        return self.start(
            "actions",
            [sys.executable, "-m", "opsbot._action_server", "--actions", "actions",
             "--host", s.actions_host, "--port", str(s.actions_port)],
            env,
        )

    def runtime_credentials(self, env: dict[str, str]) -> Path:
        """credentials.yml for this run: the project's, plus the chat connectors ``env`` enables.

        A connector whose variables are set (TELEGRAM_TOKEN, TEAMS_APP_ID) is added with
        ``${VAR}`` placeholders, so no secret is written to disk, unless the project's
        credentials.yml configures it already.
        """
        private_dir(self.settings.state_dir)
        project = (self.settings.project / "credentials.yml").read_text(encoding="utf-8")
        try:
            configured = yaml.safe_load(project) or {}
        except yaml.YAMLError as exc:
            raise StartupError(f"credentials.yml is not valid YAML: {exc}") from None
        if isinstance(configured, dict) and "rest" in configured:
            raise StartupError(
                "credentials.yml enables Rasa's own `rest:` channel, which believes any sender "
                f"it is sent. Remove it: opsbot adds its REST channel ({REST_CHANNEL}, "
                f"behind {REST_TOKEN}) when that variable is set.")
        sections = []
        for section, variables in CONNECTOR_SETTINGS.items():
            required = variables[0][1]
            if not isinstance(configured, dict) or section in configured or not env.get(required):
                continue
            lines = [f"{section}:"]
            lines += [f"  {key}: ${{{variable}}}" for key, variable in variables
                      if env.get(variable)]
            sections.append("\n".join(lines))
        if isinstance(configured, dict) and RELOAD_CHANNEL not in configured:
            sections.append(f"{RELOAD_CHANNEL}:")  # POST /webhooks/opsbot/reload
        if isinstance(configured, dict) and EVENTS_CHANNEL not in configured:
            sections.append(f"{EVENTS_CHANNEL}:")  # POST /webhooks/events/<source>
        if isinstance(configured, dict) and REST_CHANNEL not in configured \
                and (env.get(REST_TOKEN) or REST_TOKEN in self.tokens):
            sections.append(f"{REST_CHANNEL}:\n  token: ${{{REST_TOKEN}}}")
        path = self.settings.state_dir / "credentials.yml"
        write_private(path,
            "# Written by opsbot for this run from credentials.yml and the environment; edit\n"
            "# credentials.yml instead.\n" + project.rstrip() + "\n"
            + "".join(f"\n{section}\n" for section in sections),
            encoding="utf-8",
        )
        return path

    def start_rasa_server(self, model: Path, extra_env: dict[str, str] | None = None) -> Child:
        s = self.settings
        env = {**self._env(), **(extra_env or {})}
        try:
            replica_env = _replicas.environment(env)
        except _replicas.ReplicaError as exc:
            raise StartupError(str(exc)) from None
        return self.start(
            "rasa",
            [
                sys.executable, "-m", "opsbot._rasa_server", "run", "--enable-api",
                "--interface", s.host, "--port", str(s.port),
                "--model", str(model), "--endpoints", str(self.runtime_endpoints(env)),
                "--credentials", str(self.runtime_credentials(env)),
            ],
            {**_one_thread_math(), **(extra_env or {}), **replica_env},
        )

    def check_ports(self) -> None:
        s = self.settings
        for what, host, port, variable in (
            ("Rasa server", s.host, s.port, "OPSBOT_PORT / --port"),
            ("action server", s.actions_host, s.actions_port,
             "OPSBOT_ACTIONS_PORT / --actions-port"),
        ):
            if port_in_use(host, port):
                raise StartupError(
                    f"Port {port} on {host} is in use, so the {what} cannot start. "
                    f"Stop whatever holds it (another opsbot or rasa?) or choose another port "
                    f"with {variable}."
                )

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until the action server is healthy and the Rasa server has loaded its model."""
        s = self.settings
        deadline = time.monotonic() + timeout
        checks = {
            "actions": f"http://{s.actions_host}:{s.actions_port}/health",
            "rasa": f"http://{s.host}:{s.port}/status{self.api_query()}",
        }
        pending = {c.name for c in self.children if c.name in checks}
        while pending:
            for child in self.children:
                code = child.process.poll()
                if code is not None:
                    raise StartupError(
                        f"The {child.name} server exited with code {code} while starting. "
                        f"Its log: {child.log_path}\n{self.tail(child)}"
                    )
            for name in list(pending):
                answer = http_get_json(checks[name])
                if isinstance(answer, dict) and (
                    answer.get("status") == "ok" or answer.get("model_id")
                    or answer.get("model_file")
                ):
                    pending.discard(name)
            if pending and time.monotonic() > deadline:
                raise StartupError(
                    f"{', '.join(sorted(pending))} did not become ready within {timeout:.0f}s. "
                    f"Logs are in {self.log_dir}."
                )
            if pending:
                time.sleep(0.5)

    @staticmethod
    def tail(child: Child, lines: int = 15) -> str:
        try:
            text = child.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def start_trainer(self, extra_env: dict[str, str] | None = None) -> TrainerOnDemand:
        """The trainer (opsbot/_trainer.py) for fast retrains: its port now, the process
        when a retrain connects (with OPSBOT_TRAINER_IDLE_SECONDS=0, also now)."""
        self.trainer = TrainerOnDemand(self, extra_env)
        self.trainer.start(now=self.settings.trainer_idle_seconds == 0)
        return self.trainer

    def any_exited(self) -> Child | None:
        """A server that stopped. Not the trainer: it exits when idle, starts again on
        demand, and ``opsbot train`` works without it."""
        return next((c for c in list(self.children)
                     if c.name != "trainer" and c.process.poll() is not None), None)

    def forget(self, child: Child) -> None:
        """Drop a child that has exited (a trainer that went idle)."""
        if child in self.children:
            self.children.remove(child)
        child.log.close()

    def stop(self, grace: float = 10.0) -> None:
        """SIGTERM every child's process group, then SIGKILL what is left after ``grace``."""
        if self.trainer is not None:
            self.trainer.stop()
        for child in reversed(self.children):
            if child.process.poll() is None:
                try:
                    os.killpg(child.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + grace
        for child in self.children:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                child.process.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(child.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                child.process.wait()
            # A process group can outlive its leader (workers it forked): clear it too.
            try:
                os.killpg(child.process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            child.log.close()
        self.children.clear()
        if self._tokens is not None:
            forget_tokens(self.settings.state_dir, self._tokens)


class TrainerOnDemand:
    """The trainer's port, held by the supervisor: a retrain that connects starts the
    trainer (opsbot/_trainer.py) on the same socket; it exits when idle and the next
    retrain starts it again.

    The socket stays open here all along, so a connection made while a trainer starts or
    exits waits in its backlog instead of being refused. When a trainer fails (exits with
    an error), the connections waiting for it are closed: ``opsbot train`` then trains in
    its own process. The next retrain starts a new one.
    """

    def __init__(self, stack: Stack, extra_env: dict[str, str] | None = None) -> None:
        self.stack = stack
        self.extra_env = dict(extra_env or {})
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=32)
        self.port = int(self.listener.getsockname()[1])
        self.child: Child | None = None
        self.started = 0  # trainers started so far
        self.exits: list[int] = []  # their exit codes
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="opsbot-trainer-port",
                                        daemon=True)

    @property
    def port_file(self) -> Path:
        return self.stack.settings.state_dir / PORT_FILE

    def start(self, now: bool = False) -> None:
        """Write the port file and watch the port (``now``: start a trainer at once)."""
        write_private(private_dir(self.stack.settings.state_dir) / PORT_FILE, str(self.port))
        self._now = now
        self._thread.start()

    def _run(self) -> None:
        # The trainer is started from this thread, which lives until stop(): Linux sends
        # the PR_SET_PDEATHSIG signal when the thread that started a child ends.
        now = self._now
        while not self._stopping.is_set():
            if self.child is not None:
                code = self.child.process.poll()
                if code is None:
                    self._stopping.wait(0.5)
                    continue
                self._ended(self.child, code)
            if now or select.select([self.listener], [], [], 0.5)[0]:
                now = False
                if not self._stopping.is_set():
                    self._start_trainer()

    def _start_trainer(self) -> None:
        fd = self.listener.fileno()
        idle = {"OPSBOT_TRAINER_IDLE_SECONDS": f"{self.stack.settings.trainer_idle_seconds:g}"}
        self.child = self.stack.start(
            "trainer", [sys.executable, "-m", "opsbot._trainer", "--listen-fd", str(fd)],
            {**idle, **self.extra_env}, pass_fds=(fd,))
        self.started += 1

    def _ended(self, child: Child, code: int) -> None:
        self.child = None
        self.exits.append(code)
        self.stack.forget(child)
        if code != 0 and not self._stopping.is_set():
            self._refuse_waiting()

    def _refuse_waiting(self) -> None:
        self.listener.setblocking(False)
        try:
            while True:
                connection, _ = self.listener.accept()
                connection.close()
        except OSError:  # BlockingIOError: none left
            pass
        finally:
            self.listener.setblocking(True)

    def stop(self) -> None:
        """Stop watching and close the port (the trainer, if running, is the stack's to stop)."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()
        self.listener.close()
        try:
            self.port_file.unlink()
        except OSError:
            pass
