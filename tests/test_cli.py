"""The opsbot command line: its commands and its errors."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from opsbot import cli
from opsbot._chat import chat, render
from tests.conftest import free_port

ROOT = Path(__file__).parent.parent


def opsbot(*args: str, cwd: Path = ROOT, env: dict[str, str] | None = None,
           timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "opsbot", *args], cwd=cwd, capture_output=True, text=True,
        timeout=timeout, env={**os.environ, **(env or {})}, stdin=subprocess.DEVNULL,
    )


def test_unknown_command_is_refused_with_usage() -> None:
    result = opsbot("deploy-everything")
    assert result.returncode == 2
    assert "invalid choice: 'deploy-everything'" in result.stderr


def test_bad_option_is_refused() -> None:
    result = opsbot("run", "--port", "eighty")
    assert result.returncode == 2
    assert "--port" in result.stderr


def test_out_of_range_port_is_refused(tmp_path: Path) -> None:
    result = opsbot("run", "--port", "70000")
    assert result.returncode == 1
    assert "not a port" in result.stderr


def test_bad_port_variable_is_named(tmp_path: Path) -> None:
    result = opsbot("run", env={"OPSBOT_PORT": "abc"})
    assert result.returncode == 1
    assert "OPSBOT_PORT='abc' is not a port number" in result.stderr


@pytest.mark.parametrize("command", ["run", "demo"])
def test_a_short_events_token_stops_the_start_with_the_fix(command: str, tmp_path: Path) -> None:
    # The endpoint refuses a token this short (404); announcing it would hide that.
    result = opsbot(command, env={"OPSBOT_EVENTS_TOKEN": "short",
                                  "OPSBOT_STATE_DIR": str(tmp_path)}, timeout=60)
    assert result.returncode == 1
    assert "OPSBOT_EVENTS_TOKEN is 5 characters long; opsbot takes at least 16" in result.stderr
    assert "secrets.token_urlsafe" in result.stderr
    assert "Starting" not in result.stdout


def test_a_short_github_secret_stops_the_start(tmp_path: Path) -> None:
    result = opsbot("run", env={"GITHUB_WEBHOOK_SECRET": "hunter2",
                                "OPSBOT_STATE_DIR": str(tmp_path)}, timeout=60)
    assert result.returncode == 1
    assert "GITHUB_WEBHOOK_SECRET is 7 characters long" in result.stderr


@pytest.mark.parametrize("command", ["run", "demo"])
def test_a_bad_service_catalog_stops_the_start_with_its_place(command: str,
                                                              tmp_path: Path) -> None:
    catalog = tmp_path / "catalog-info.yaml"
    catalog.write_text("apiVersion: backstage.io/v1alpha1\nkind: Component\nmetadata:\n"
                       "  name: checkout\n  annotations:\n"
                       "    github.com/project-slug: checkout-web\n", encoding="utf-8")
    result = opsbot(command, env={"OPSBOT_CATALOG": str(catalog),
                                  "OPSBOT_STATE_DIR": str(tmp_path)}, timeout=60)
    assert result.returncode == 1
    assert (f"{catalog}:6: github.com/project-slug: 'checkout-web' is not owner/repository"
            in result.stderr)
    assert "Starting" not in result.stdout


def test_run_without_a_model_says_to_train(tmp_path: Path) -> None:
    result = opsbot("run", env={"OPSBOT_MODELS": str(tmp_path / "none")})
    assert result.returncode == 1
    assert "no trained model" in result.stderr
    assert "opsbot train" in result.stderr


def test_outside_a_project_says_so(tmp_path: Path) -> None:
    result = opsbot("train", cwd=tmp_path, env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == 1
    assert "is not an opsbot project" in result.stderr


def test_port_in_use_is_reported(tmp_path: Path, trained_model: Path) -> None:
    port = free_port()
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", port))
        holder.listen()
        result = opsbot("run", "--port", str(port), "--actions-port", str(free_port()),
                        env={"OPSBOT_MODELS": str(trained_model.parent)})
    assert result.returncode == 1
    assert f"Port {port} on 127.0.0.1 is in use" in result.stderr


def test_train_with_invalid_data_fails_readably(tmp_path: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(
        ".venv", ".git", "models", ".opsbot", "__pycache__", "tests"))
    (project / "data" / "nlu" / "broken.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: deploy\n  examples: |\n    - ok\n  - : [bad\n'
    )
    result = opsbot("train", cwd=project, env={"OPSBOT_MODELS": str(tmp_path / "models")})
    assert result.returncode == 1
    assert "opsbot train:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "models").exists() or not list((tmp_path / "models").glob("*.tar.gz"))


def test_chat_presses_buttons_by_number(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    sent: list[str] = []

    def fake_send(url: str, sender: str, message: str, timeout: float = 60,
                  token: str | None = None) -> list[dict]:
        sent.append(message)
        if message == "deploy":
            return [{"text": "Sure?", "buttons": [{"title": "Confirm", "payload": "/affirm"},
                                                   {"title": "Cancel", "payload": "/deny"}]}]
        return [{"text": f"got {message}"}]

    monkeypatch.setattr("opsbot._chat.send", fake_send)
    lines = iter(["deploy", "3", "1", "/quit"])
    assert chat("http://x", "alice", read=lambda prompt: next(lines)) == 0
    assert sent == ["deploy", "/affirm"]
    out = capsys.readouterr().out
    assert "[1] Confirm" in out and "There is no button 3" in out and "got /affirm" in out


def test_render_prints_each_line() -> None:
    import io

    out = io.StringIO()
    buttons = render([{"text": "a\nb"}], out)
    assert buttons == [] and out.getvalue() == "opsbot> a\nopsbot> b\n"


def test_parser_lists_the_commands() -> None:
    help_text = cli.build_parser().format_help()
    for command in ("train", "run", "shell", "demo"):
        assert command in help_text


def test_train_writes_a_model_and_reports_it(tmp_path: Path, cache_dir: Path) -> None:
    project = tmp_path / "project"
    shutil.copytree(ROOT, project, ignore=shutil.ignore_patterns(
        ".venv", ".git", "models", ".opsbot", ".rasa", "__pycache__", "tests"))
    result = opsbot("train", cwd=project, env={
        "OPSBOT_MODELS": str(tmp_path / "models"), "OPSBOT_CACHE_DIR": str(cache_dir)})
    assert result.returncode == 0, result.stderr[-2000:]
    models = list((tmp_path / "models").glob("*.tar.gz"))
    assert len(models) == 1
    assert "Model ready in" in result.stdout and str(models[0]) in result.stdout
    # A first training trains every component and says so.
    trained = result.stdout.split("(trained: ", 1)[1].split(";", 1)[0]
    assert "LinearIntentClassifier" in trained and "RulePolicy" in trained


def test_the_demo_trains_in_a_child_process_whose_errors_it_reports(tmp_path: Path) -> None:
    """`opsbot demo` trains its first model in a child process (the supervisor would
    otherwise keep Rasa and torch in memory all along); what stops it reaches the demo."""
    import dataclasses

    from opsbot._training import train_apart
    from opsbot.settings import Settings, SettingsError

    settings = dataclasses.replace(Settings.from_env(tmp_path), models=tmp_path / "models")
    with pytest.raises(SettingsError, match="is not an opsbot project"):
        train_apart(settings, quiet=True)


def test_demo_uses_the_latest_model_only_while_it_is_current(tmp_path: Path) -> None:
    """A model older than data/ (or the domain, config, nlu/) is stale: demo retrains."""
    import dataclasses
    import os

    from opsbot.cli import current_model
    from opsbot.settings import Settings

    project = tmp_path / "project"
    (project / "data").mkdir(parents=True)
    (project / "nlu").mkdir()
    for name in ("domain.yml", "config.yml", "data/nlu.yml", "nlu/component.py"):
        (project / name).write_text("# test\n")
    models = project / "models"
    models.mkdir()
    settings = dataclasses.replace(Settings.from_env(project), models=models)
    assert current_model(settings) is None
    model = models / "20260101-000000-test.tar.gz"
    model.write_bytes(b"")
    assert current_model(settings) == model
    later = model.stat().st_mtime + 10
    os.utime(project / "data" / "nlu.yml", (later, later))
    assert current_model(settings) is None
