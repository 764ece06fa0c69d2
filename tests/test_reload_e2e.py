"""Hot reload: a running opsbot takes a new model under load, and refuses a broken one."""

from __future__ import annotations

import dataclasses
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from opsbot._processes import Stack
from opsbot.cli import CommandError, reload_model
from opsbot.settings import Settings
from tests.conftest import REST_AUTH, ROOT, api, free_port


@pytest.fixture(scope="module")
def served(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    models = tmp_path_factory.mktemp("models")
    shutil.copy(trained_model, models / trained_model.name)
    settings = dataclasses.replace(Settings.from_env(ROOT), port=free_port(),
                                   actions_port=free_port(),
                                   state_dir=tmp_path_factory.mktemp("state"), models=models)
    stack = Stack(settings)
    try:
        stack.start_action_server()
        stack.start_rasa_server(models / trained_model.name)
        stack.wait_ready(timeout=180)
        yield settings
    finally:
        stack.stop()


def _running(settings: Settings) -> str:
    status = requests.get(api(f"http://{settings.host}:{settings.port}/status"), timeout=30).json()
    return Path(status["model_file"]).name


def _reload(settings: Settings, body: dict) -> requests.Response:
    return requests.post(api(f"http://{settings.host}:{settings.port}/webhooks/opsbot/reload"),
                         json=body, timeout=300)


class Stream(threading.Thread):
    """Sends messages one after another until stopped; remembers every failure."""

    def __init__(self, settings: Settings) -> None:
        super().__init__(daemon=True)
        self.url = settings.rest_url
        self.stopped = threading.Event()
        self.sent = 0
        self.failures: list[str] = []

    def run(self) -> None:
        while not self.stopped.is_set():
            self.sent += 1
            text = ("what can you do?", "hi", "what's red in CI?")[self.sent % 3]
            try:
                answer = requests.post(self.url, json={"sender": f"stream-{self.sent}",
                                                       "message": text},
                                       headers=REST_AUTH, timeout=60)
                if answer.status_code != 200 or not answer.json():
                    self.failures.append(
                        f"{self.sent}: HTTP {answer.status_code} {answer.text[:200]}")
            except requests.RequestException as exc:
                self.failures.append(f"{self.sent}: {exc}")


def test_a_new_model_is_taken_without_losing_a_message(served: Settings) -> None:
    old = _running(served)
    new = served.models / f"20990101-000000-reloaded-{old}"
    shutil.copy(served.models / old, new)
    stream = Stream(served)
    stream.start()
    try:
        while stream.sent < 5:
            stream.stopped.wait(0.1)
        assert reload_model(served, new) is True
        sent_at_swap = stream.sent
        while stream.sent < sent_at_swap + 5:
            stream.stopped.wait(0.1)
    finally:
        stream.stopped.set()
        stream.join(timeout=60)
    assert stream.failures == []
    assert _running(served) == new.name
    # Asking again for the running model is a no-op.
    assert _reload(served, {"model": str(new)}).json()["reloaded"] is False


def test_a_broken_model_is_refused_and_the_old_one_stays(served: Settings) -> None:
    before = _running(served)
    broken = served.models / "20990101-000001-broken.tar.gz"
    broken.write_bytes(b"this is not a model archive")
    answer = _reload(served, {"model": str(broken)})
    assert answer.status_code == 422 and "does not load" in answer.json()["error"]
    assert _running(served) == before
    with pytest.raises(CommandError, match="refused the new model"):
        reload_model(served, broken)
    reply = requests.post(served.rest_url, json={"sender": "after-broken", "message": "hi"},
                          headers=REST_AUTH, timeout=60)
    assert reply.status_code == 200 and reply.json()


def test_only_models_from_the_models_directory_are_loaded(served: Settings, tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere.tar.gz"
    shutil.copy(served.models / _running(served), outside)
    answer = _reload(served, {"model": str(outside)})
    assert answer.status_code == 422 and "not in the models directory" in answer.json()["error"]
    assert _reload(served, {"model": 42}).status_code in (400, 422)
