"""The trainer on demand: the supervisor holds its port, a retrain starts it, it exits
when idle, the next retrain starts it again, and an idle exit is not a crash."""

from __future__ import annotations

import dataclasses
import json
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from opsbot._processes import Stack
from opsbot._trainer import PORT_FILE, Idle, train_remotely
from opsbot.settings import Settings, SettingsError
from tests.conftest import ROOT, wait_until


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_idle_counts_from_the_end_of_the_last_work() -> None:
    clock = Clock()
    idle = Idle(120.0, clock)
    assert not idle.expired()
    idle.begin()  # the warm-up
    clock.now += 500
    assert not idle.expired(), "busy is never idle"
    idle.end()
    clock.now += 119
    assert not idle.expired()
    clock.now += 1
    assert idle.expired()
    idle.begin()  # a retrain connects
    assert not idle.expired()
    idle.end()
    assert not idle.expired()


def test_zero_seconds_is_never_idle_unless_told() -> None:
    clock = Clock()
    idle = Idle(0.0, clock)
    clock.now += 10 ** 6
    assert not idle.expired()
    idle.begin()
    idle.expire()
    assert not idle.expired(), "the work under way ends first"
    idle.end()
    assert idle.expired()


@pytest.mark.parametrize(("value", "expected"), [("", 120.0), ("0", 0.0), ("30", 30.0),
                                                 ("2.5", 2.5)])
def test_the_idle_timeout_setting(monkeypatch: pytest.MonkeyPatch, value: str,
                                  expected: float) -> None:
    monkeypatch.setenv("OPSBOT_TRAINER_IDLE_SECONDS", value)
    assert Settings.from_env(ROOT).trainer_idle_seconds == expected


@pytest.mark.parametrize("value", ["-1", "soon", "nan", "inf"])
def test_a_bad_idle_timeout_says_how_to_fix_it(monkeypatch: pytest.MonkeyPatch,
                                               value: str) -> None:
    monkeypatch.setenv("OPSBOT_TRAINER_IDLE_SECONDS", value)
    with pytest.raises(SettingsError, match="OPSBOT_TRAINER_IDLE_SECONDS"):
        Settings.from_env(ROOT)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    settings = dataclasses.replace(Settings.from_env(ROOT), state_dir=tmp_path / "state",
                                   trainer_idle_seconds=1.0)
    running = Stack(settings)
    try:
        yield running
    finally:
        running.stop()


def _ask(port: int) -> dict[str, Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=120) as answer:
        return dict(json.loads(answer.read()))


def test_a_retrain_starts_the_trainer_which_exits_when_idle_and_starts_again(
        stack: Stack) -> None:
    trainer = stack.start_trainer()
    port = int((stack.settings.state_dir / PORT_FILE).read_text())
    assert port == trainer.port
    assert trainer.started == 0 and trainer.child is None, "nothing runs until asked"

    assert _ask(port)["status"] == "ok"  # answered by a trainer started for this request
    assert trainer.started == 1
    first = trainer.child
    assert first is not None and first in stack.children

    # It warms up, then exits after a second without work ...
    wait_until(lambda: trainer.exits, "the trainer never went idle", timeout=300)
    assert trainer.exits == [0]
    assert first not in stack.children
    # ... which is no crash: `opsbot run` and `opsbot demo` go on serving.
    assert stack.any_exited() is None
    assert "exiting (the next retrain starts it again)" in first.log_path.read_text()

    assert _ask(port)["status"] == "ok"  # the next retrain starts it again, on the same port
    assert trainer.started == 2
    assert trainer.child is not None and trainer.child.process.pid != first.process.pid

    stack.stop()
    assert not (stack.settings.state_dir / PORT_FILE).exists()


def test_a_trainer_that_fails_to_start_sends_opsbot_train_back_to_training_itself(
        stack: Stack) -> None:
    # The trainer reads its settings first: a bad one ends it with an error at once.
    trainer = stack.start_trainer({"OPSBOT_TRAINER_IDLE_SECONDS": "soon"})
    started: list[bool] = []
    assert train_remotely(stack.settings.state_dir, False, on_start=started.append) is None
    assert started == []
    wait_until(lambda: trainer.exits, "the trainer did not fail", timeout=120)
    assert trainer.exits[0] != 0
    assert stack.any_exited() is None, "a failed trainer does not stop the servers"


def test_with_zero_seconds_the_trainer_starts_with_the_servers(tmp_path: Path) -> None:
    settings = dataclasses.replace(Settings.from_env(ROOT), state_dir=tmp_path / "state",
                                   trainer_idle_seconds=0.0)
    stack = Stack(settings)
    try:
        trainer = stack.start_trainer({"OPSBOT_TRAINER_IDLE_SECONDS": "soon"})
        wait_until(lambda: trainer.started, "the trainer was not started at once", timeout=30)
    finally:
        stack.stop()


def test_a_trainer_without_tensorflow_is_replaced_when_the_config_needs_it(
        tmp_path: Path) -> None:
    """The trainer that started without TensorFlow answers `retry`; `opsbot train` asks
    again, and the next trainer (on the same port) trains."""
    answers = [(503, {"retry": True, "error": "restarting"}),
               (200, {"model": "/m.tar.gz", "seconds": 1.0, "trained": [], "restored": []})]
    posts: list[int] = []

    class Trainer(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._send(200, {"status": "ok", "warm": False})

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            posts.append(1)
            self._send(*answers[len(posts) - 1])

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trainer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    (tmp_path / PORT_FILE).write_text(str(server.server_address[1]))
    warm: list[bool] = []
    try:
        answer = train_remotely(tmp_path, False, on_start=warm.append)
    finally:
        server.shutdown()
    assert answer is not None and answer["model"] == "/m.tar.gz"
    assert len(posts) == 2 and warm == [False]


def test_opsbot_train_says_when_the_trainer_is_starting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    from opsbot import cli

    def starting(state_dir: Path, force: bool, on_start: Any = None) -> dict[str, Any]:
        on_start(False)
        return {"model": str(tmp_path / "m.tar.gz"), "seconds": 2.0, "trained": ["A"],
                "restored": []}

    monkeypatch.setattr("opsbot._trainer.train_remotely", starting)
    settings = dataclasses.replace(Settings.from_env(ROOT), state_dir=tmp_path,
                                   trainer_idle_seconds=120.0)
    assert cli.train_fast(settings) == tmp_path / "m.tar.gz"
    printed = capsys.readouterr().out
    assert printed.startswith("Training in the running opsbot's trainer, which was idle and "
                              "is starting (it exits after 120 s without a retrain) ...")
    assert "by the running opsbot's trainer" in printed

