"""OPSBOT_TRACKER_URL, OPSBOT_REDIS_URL and OPSBOT_WORKERS as the runtime endpoints.yml
and the Rasa server's environment get them (opsbot._replicas)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from opsbot import _replicas
from opsbot._processes import Stack, StartupError
from opsbot.settings import Settings
from tests.conftest import ROOT

PG = "postgresql://opsbot:s3cr%40t@db.internal:5433/opsbot?options=-csearch_path%3Dx"


def test_without_variables_everything_stays_on_sqlite_in_one_process(tmp_path: Path) -> None:
    assert _replicas.tracker_store({}, tmp_path) == {
        "type": _replicas.TRACKER_STORE, "dialect": "sqlite", "db": str(tmp_path / "tracker.db")}
    assert _replicas.lock_store({}) is None
    assert _replicas.workers({}) == 1
    assert _replicas.environment({}) == {"SANIC_WORKERS": "1"}
    # an SQLite store keeps the tracker in its own file, as before
    assert _replicas.tracker_store({"OPSBOT_DB_URL": "sqlite:////x/opsbot.db"}, tmp_path)[
        "db"] == str(tmp_path / "tracker.db")


def test_the_tracker_store_follows_the_store_database_and_names_its_password(
        tmp_path: Path) -> None:
    section = _replicas.tracker_store({"OPSBOT_DB_URL": PG}, tmp_path)
    assert section == {"type": _replicas.TRACKER_STORE, "dialect": "postgresql",
                       "url": "db.internal", "db": "opsbot", "port": 5433, "username": "opsbot",
                       "password": "${OPSBOT_TRACKER_PASSWORD}",
                       "query": {"options": "-csearch_path=x"}}
    assert _replicas.environment({"OPSBOT_DB_URL": PG})["OPSBOT_TRACKER_PASSWORD"] == "s3cr@t"
    other = _replicas.tracker_store({"OPSBOT_DB_URL": PG, "OPSBOT_TRACKER_URL":
                                     "postgresql://t@other/rasa"}, tmp_path)
    assert other["url"] == "other" and other["db"] == "rasa" and "password" not in other
    with pytest.raises(_replicas.ReplicaError, match="host and a database"):
        _replicas.tracker_store({"OPSBOT_TRACKER_URL": "postgresql:///nohost"}, tmp_path)


def test_redis_turns_on_the_lock_store() -> None:
    env = {"OPSBOT_REDIS_URL": "rediss://:p%40ss@redis.internal:6390/2"}
    assert _replicas.lock_store(env) == {
        "type": "redis", "url": "redis.internal", "port": 6390, "db": 2,
        "key_prefix": "opsbot", "password": "${OPSBOT_REDIS_PASSWORD}", "use_ssl": True}
    assert _replicas.environment(env)["OPSBOT_REDIS_PASSWORD"] == "p@ss"
    assert _replicas.lock_store({"OPSBOT_REDIS_URL": "redis://localhost"})["port"] == 6379
    for bad in ("http://redis:6379", "redis://host:6379/zero", "localhost:6379"):
        with pytest.raises(_replicas.ReplicaError, match="OPSBOT_REDIS_URL"):
            _replicas.lock_store({"OPSBOT_REDIS_URL": bad})


def test_workers_need_redis() -> None:
    with pytest.raises(_replicas.ReplicaError, match="needs OPSBOT_REDIS_URL"):
        _replicas.workers({"OPSBOT_WORKERS": "2"})
    for bad in ("two", "0", "100"):
        with pytest.raises(_replicas.ReplicaError, match="OPSBOT_WORKERS"):
            _replicas.workers({"OPSBOT_WORKERS": bad, "OPSBOT_REDIS_URL": "redis://r"})
    env = {"OPSBOT_WORKERS": "3", "OPSBOT_REDIS_URL": "redis://r"}
    assert _replicas.environment(env)["SANIC_WORKERS"] == "3"


def test_the_runtime_endpoints_hold_no_password_and_rasa_reads_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from rasa.utils.endpoints import read_endpoint_config

    settings = dataclasses.replace(Settings.from_env(ROOT), state_dir=tmp_path)
    stack = Stack(settings)
    path = stack.runtime_endpoints({"OPSBOT_DB_URL": PG,
                                    "OPSBOT_REDIS_URL": "redis://:hunter2@r:6380/0"})
    text = path.read_text(encoding="utf-8")
    assert "s3cr" not in text and "hunter2" not in text
    data = yaml.safe_load(text)
    assert data["lock_store"]["url"] == "r" and data["tracker_store"]["dialect"] == "postgresql"
    monkeypatch.setenv("OPSBOT_TRACKER_PASSWORD", "s3cr@t")  # what the Rasa server gets
    monkeypatch.setenv("OPSBOT_REDIS_PASSWORD", "hunter2")
    tracker = read_endpoint_config(str(path), "tracker_store")
    lock = read_endpoint_config(str(path), "lock_store")
    assert tracker is not None and tracker.kwargs["password"] == "s3cr@t"
    assert lock is not None and lock.kwargs["password"] == "hunter2"
    with pytest.raises(StartupError, match="OPSBOT_REDIS_URL"):
        stack.runtime_endpoints({"OPSBOT_REDIS_URL": "http://nope"})
