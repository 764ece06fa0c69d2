"""Shared fixtures: one model trained per test session, free ports, the project root."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# The tokens every opsbot the tests start uses (opsbot/_tokens.py), fixed so that tests
# can talk to it; tests of generated tokens and of refusals set their own environment.
TEST_REST_TOKEN = "opsbot-test-rest-token-0123456789"
TEST_API_TOKEN = "opsbot-test-api-token-0123456789"
os.environ["OPSBOT_REST_TOKEN"] = TEST_REST_TOKEN
os.environ["OPSBOT_API_TOKEN"] = TEST_API_TOKEN
os.environ["OPSBOT_ACTIONS_SECRET"] = "opsbot-test-actions-secret-0123456789"
REST_AUTH = {"Authorization": f"Bearer {TEST_REST_TOKEN}"}
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from actions import intents  # noqa: E402 - after the environment above

# As the action server does when it loads actions.ops: every intent's declaration.
intents.install()


@pytest.fixture(autouse=True)
def _no_watcher_after_a_test() -> Iterator[None]:
    """Each test has its own store: the watcher a test started (the actions start it)
    must not scan the next test's, which it would find through the environment."""
    yield
    from actions._watcher import WATCHER

    WATCHER.stop()


def handle(intent: str, turn: Any) -> None:
    """Run the handler of ``intent`` on ``turn``, as action_ops_request does."""
    from actions.registry import kind_of

    kind = kind_of(intent)
    assert kind is not None and kind.handler is not None, f"{intent} has no handler"
    asyncio.run(kind.handler(turn))


def api(url: str) -> str:
    """``url`` of Rasa's HTTP API with the tests' API token."""
    return f"{url}{'&' if '?' in url else '?'}token={TEST_API_TOKEN}"


def rest_say(settings: Any, sender: str, text: str, timeout: float = 60) -> list[dict[str, Any]]:
    """Send ``text`` as ``sender`` through the REST channel of ``settings``' Rasa server."""
    response = requests.post(settings.rest_url, json={"sender": sender, "message": text},
                             headers=REST_AUTH, timeout=timeout)
    response.raise_for_status()
    return list(response.json())


def bot_texts(settings: Any, sender: str) -> list[str]:
    """Everything the bot said in ``sender``'s conversation, completion messages included."""
    base = f"http://{settings.host}:{settings.port}"
    answer = requests.get(api(f"{base}/conversations/{sender}/tracker"), timeout=30)
    answer.raise_for_status()
    return [str(e.get("text") or "") for e in answer.json()["events"] if e["event"] == "bot"]


def team_policy(directory: Path, *names: str) -> Path:
    """The project's policy.yml with ``names`` added as developers (their REST identity is
    their name), written to ``directory``: strangers get nothing, so tests that talk as
    many people name them."""
    import yaml

    data = yaml.safe_load((ROOT / "policy.yml").read_text(encoding="utf-8"))
    for name in names:
        data["people"][name] = {"roles": ["developer"], "identities": {"rest": name}}
    path = directory / "policy.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


_handed_out: set[int] = set()


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def _port_range() -> tuple[int, int]:
    """This test process's share of the ports below the ephemeral range: with pytest-xdist
    each worker picks from its own slice, so two workers never hand out the same port."""
    high = min(_ephemeral_low(), 65536) - 1
    low = min(20000, high - 1000)
    workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT") or 1))
    worker = int((os.environ.get("PYTEST_XDIST_WORKER") or "gw0").removeprefix("gw") or 0)
    size = (high - low + 1) // workers
    return low + worker * size, low + (worker + 1) * size - 1


def free_port() -> int:
    """A loopback port nothing listens on, for a server a test starts later.

    Chosen below the kernel's ephemeral range, where nothing that binds port 0 (a
    simulator) and no outgoing connection can take it in the meantime, and never one this
    session handed out before.
    """
    import random

    low, high = _port_range()
    for _ in range(1000):
        port = random.randint(low, high)
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free loopback port below the ephemeral range")


def wait_until(predicate: Any, what: str, timeout: float = 60.0) -> Any:
    """Poll ``predicate`` until it returns something truthy (returned); AssertionError(what)
    after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(what)


def serve_demo(cwd: Path, env: dict[str, str],
               *args: str) -> tuple[subprocess.Popen[str], list[str], float]:
    """``opsbot demo --serve ARGS`` in ``cwd``: the process, what it printed until it was
    ready, and the seconds that took. Its later output is drained, so it never blocks."""
    return serve_opsbot(cwd, env, "demo", "--serve", *args)


def serve_opsbot(cwd: Path, env: dict[str, str],
                 *args: str) -> tuple[subprocess.Popen[str], list[str], float]:
    """``opsbot ARGS`` (``run``, or ``demo --serve``) in ``cwd``, as :func:`serve_demo` says."""
    started = time.monotonic()
    process = subprocess.Popen([sys.executable, "-m", "opsbot", *args],
                               cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True)
    output: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        output.append(line)
        if "Stop it with Ctrl-C" in line:
            break
    else:
        process.wait()
        pytest.fail(f"opsbot {' '.join(args)} exited early:\n" + "".join(output))
    threading.Thread(target=process.stdout.read, daemon=True).start()
    return process, output, time.monotonic() - started


def start_build(sim: Any, job: str, parameters: dict[str, str]) -> int:
    """A new build of ``job`` in the Jenkins simulator ``sim``, started straight through
    python-jenkins (as someone else would start it); its number."""
    import jenkins

    before = {b.number for b in sim.builds(job)}
    jenkins.Jenkins(sim.url, username=sim.user, password=sim.token).build_job(job, parameters)
    return int(next(b.number for b in sim.builds(job) if b.number not in before))


def button_payload(replies: list[dict[str, Any]], title: str) -> str:
    """The payload of the button titled ``title`` among the bot's ``replies``."""
    import json

    for reply in replies:
        for button in reply.get("buttons") or []:
            if button["title"] == title:
                return str(button["payload"])
    raise AssertionError(f"no {title!r} button in {json.dumps(replies, indent=1)}")


@contextlib.contextmanager
def chat_stack(model: Path, state: Path, chat: Any, *, port: int | None = None,
               rasa_env: dict[str, str] | None = None,
               actions_env: dict[str, str] | None = None) -> Iterator[Any]:
    """A Jenkins simulator, the action server and a Rasa server whose connector talks to ``chat``.

    ``chat`` is a started simulator whose ``env()`` configures the connector; yields the
    Jenkins simulator. ``actions_env`` adds to the action server's environment (another
    backend's simulator). Everything is stopped afterwards, ``chat`` included.
    """
    from opsbot._processes import Stack
    from opsbot.settings import Settings
    from simulators.jenkins import JenkinsSimulator

    settings = dataclasses.replace(Settings.from_env(ROOT), port=port or free_port(),
                                   actions_port=free_port(), state_dir=state)
    jenkins = JenkinsSimulator(queue_delay=0.1, build_seconds=1.0)
    jenkins.start()
    stack = Stack(settings)
    try:
        stack.start_action_server({**jenkins.env(), "OPSBOT_WATCH_POLL": "0.2",
                                   **(actions_env or {})})
        stack.start_rasa_server(model, {**chat.env(), **(rasa_env or {})})
        stack.wait_ready(timeout=180)
        yield jenkins
    finally:
        stack.stop()
        chat.stop()
        jenkins.stop()


def copy_project(root: Path, model: Path) -> Path:
    """A copy of the project in ``root`` that a test may write to (config, data/, the model;
    the code and the operation files linked), for ``opsbot demo`` there; its models dir."""
    for name in ("domain.yml", "config.yml", "credentials.yml", "endpoints.yml", "policy.yml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "data", root / "data")
    for package in ("actions", "nlu", "connectors", "simulators", "opsbot", "operations"):
        (root / package).symlink_to(ROOT / package)
    models = root / "models"
    models.mkdir()
    shutil.copy(model, models / model.name)
    return models


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the session (CI starts with an empty one)."""
    path = Path(os.environ.get("OPSBOT_TEST_CACHE_DIR") or tmp_path_factory.mktemp("cache"))
    os.environ["OPSBOT_CACHE_DIR"] = str(path)
    return path


@pytest.fixture(scope="session")
def trained_model(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Path:
    """The project's model (NLU and dialogue), trained once per test session from data/."""
    from opsbot.cli import train_model
    from opsbot.settings import Settings

    models = tmp_path_factory.mktemp("models")
    settings = dataclasses.replace(Settings.from_env(ROOT), models=models, cache_dir=cache_dir)
    return train_model(settings, quiet=True)


class Parser:
    """Parses texts with a loaded model (Rasa's Agent, no server)."""

    def __init__(self, model: Path) -> None:
        from rasa.core.agent import Agent

        self.loop = asyncio.new_event_loop()
        self.agent = Agent.load(str(model))

    def parse(self, text: str) -> dict[str, Any]:
        return self.loop.run_until_complete(self.agent.parse_message(text))


@pytest.fixture(scope="session")
def parser(trained_model: Path) -> Iterator[Parser]:
    instance = Parser(trained_model)
    yield instance
    instance.loop.close()


def _server_from_script(variable: str, script_name: str, scheme: str) -> str:
    """A test server's URL: ``variable``, else what ``scripts/<script_name>`` prints.

    Without either, the tests that need it are skipped, except in CI (or with
    OPSBOT_REQUIRE_POSTGRES=1, which .ci/run sets), where that is a failure.
    """
    url = os.environ.get(variable, "").strip()
    if url:
        return url
    script = ROOT / "scripts" / script_name
    try:
        done = subprocess.run(
            ["bash", str(script)], capture_output=True, text=True, timeout=900,
            stdin=subprocess.DEVNULL, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        reason = f"scripts/{script_name} could not run: {exc}"
    else:
        urls = [line for line in done.stdout.splitlines() if line.startswith(scheme)]
        if done.returncode == 0 and urls:
            return urls[-1]
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        reason = f"scripts/{script_name} exited {done.returncode}: {tail}"
    reason = f"no server for the tests ({reason}); set {variable}"
    required = os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")
    if required or os.environ.get("OPSBOT_REQUIRE_POSTGRES") == "1":
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A Redis URL for tests: OPSBOT_TEST_REDIS_URL, else scripts/redis.sh's server."""
    return _server_from_script("OPSBOT_TEST_REDIS_URL", "redis.sh", "redis://")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """A PostgreSQL URL for tests: OPSBOT_TEST_POSTGRES_URL, else scripts/postgres.sh's server."""
    return _server_from_script("OPSBOT_TEST_POSTGRES_URL", "postgres.sh", "postgresql://")
