"""Shared fixtures: one model trained per test session, free ports, the project root."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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
