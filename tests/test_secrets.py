"""Secrets never reach a log or a file others can read (actions/_redact.py, opsbot/_private.py).

The unit tests log through real handlers; the end-to-end tests run the Telegram
connector, in polling and in webhook mode, through the real Rasa and action servers
against the Telegram simulator with a recognisable token, then grep every byte under
the state dir for it.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import stat
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from actions import _redact
from actions._redact import MASK, SecretFilter, add_secret, install, is_secret_name, mask
from opsbot._private import open_private, private_dir, secure_state_dir, write_private
from simulators.telegram import ALICE, TelegramSimulator
from tests.conftest import chat_stack, free_port, wait_until

TOKEN = "123456:SECRET-TOKEN-recognisable-xyz"
# What must never show: the token, its secret half, and their URL-encoded forms.
LEAKS = [TOKEN, TOKEN.split(":", 1)[1], urllib.parse.quote(TOKEN, safe=""), "123456%3aSECRET"]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture()
def log() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger whose handler is created after install(), like Rasa's and sanic's."""
    install()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(f"opsbot.test.secrets.{time.monotonic_ns()}")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield logger, out
    logger.removeHandler(handler)


@pytest.fixture()
def token(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("OPSBOT_TEST_SECRETS_TOKEN", TOKEN)
    return TOKEN


def _clean(text: str) -> bool:
    return not any(leak in text for leak in LEAKS)


# -- the filter -----------------------------------------------------------------------


def test_secret_names() -> None:
    for name in ("TELEGRAM_TOKEN", "TEAMS_APP_PASSWORD", "TELEGRAM_WEBHOOK_SECRET",
                 "GITHUB_WEBHOOK_SECRET", "OPSBOT_ACTIONS_SECRET", "JENKINS_TOKEN", "JIRA_TOKEN",
                 "OPSBOT_EVENTS_TOKEN", "SOME_API_KEY", "db_password"):
        assert is_secret_name(name), name
    for name in ("TELEGRAM_API_URL", "JENKINS_USER", "OPSBOT_PORT", "TOKENS"):
        assert not is_secret_name(name), name


def test_a_token_in_the_message_and_in_the_args(log: tuple[logging.Logger, io.StringIO],
                                                token: str) -> None:
    logger, out = log
    logger.info(f"the token is {token}")
    logger.info("the token is %s, again %r", token, token)
    logger.info("as a mapping: %(token)s", {"token": token})
    text = out.getvalue()
    assert _clean(text), text
    assert text.count(MASK) == 4


def test_a_token_in_a_url_plain_and_url_encoded(log: tuple[logging.Logger, io.StringIO],
                                                token: str) -> None:
    logger, out = log
    quoted = urllib.parse.quote(token, safe="")
    logger.info('HTTP Request: POST %s "HTTP/1.1 200 OK"',
                f"https://api.telegram.org/bot{token}/getUpdates")
    logger.info("GET /status?token=%s and ?t=%s", quoted, quoted.replace("%3A", "%3a"))
    logger.info("form: token=%s", urllib.parse.quote_plus(token))
    text = out.getvalue()
    assert _clean(text), text
    assert "https://api.telegram.org/bot**********/getUpdates" in text


def test_a_token_in_an_exception_and_its_traceback(log: tuple[logging.Logger, io.StringIO],
                                                   token: str) -> None:
    logger, out = log

    def call_the_api(secret: str) -> None:
        raise ConnectionError(f"cannot reach https://api.telegram.org/bot{secret}/getMe")

    try:
        call_the_api(token)
    except ConnectionError:
        logger.exception("polling failed")
    logger.warning("with a stack", stack_info=True, extra={"url": f"/bot{token}/x"})
    text = out.getvalue()
    assert _clean(text), text
    assert "ConnectionError: cannot reach https://api.telegram.org/bot**********/getMe" in text


def test_extra_fields_such_as_sanics_access_log(token: str) -> None:
    install()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(request)s %(message)s %(status)d"))
    access = logging.getLogger("opsbot.test.secrets.access")
    access.addHandler(handler)
    access.propagate = False
    try:
        access.warning("", extra={"request": f"GET http://x/status?token={token}", "status": 200})
    finally:
        access.removeHandler(handler)
    assert out.getvalue().strip() == "GET http://x/status?token=**********  200"


def test_root_handlers_and_third_party_loggers(token: str) -> None:
    root = logging.getLogger()
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    root.addHandler(handler)
    level = root.level
    root.setLevel(logging.INFO)
    try:
        install()
        assert any(isinstance(f, SecretFilter) for f in handler.filters)
        for name in ("urllib3.connectionpool", "sanic.root", "rasa.core.run"):
            logging.getLogger(name).warning("%s://%s:443 \"GET /bot%s/getMe\"", "https",
                                            "api.telegram.org", token)
        record = logging.makeLogRecord({"msg": f"made elsewhere {token}", "levelno": 30,
                                        "levelname": "WARNING"})
        handler.handle(record)  # not from the factory: the handler's filter masks it
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    text = out.getvalue()
    assert _clean(text), text
    assert text.count(MASK) == 4
    assert logging.getLogger("httpx").getEffectiveLevel() >= logging.WARNING
    assert not logging.getLogger("httpx").isEnabledFor(logging.INFO)


def test_database_passwords_basic_credentials_and_short_values(
        log: tuple[logging.Logger, io.StringIO], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_DB_URL", "postgresql://opsbot:p%40ss-w0rd!@db:5432/opsbot")
    monkeypatch.setenv("OPSBOT_REDIS_URL", "redis://:redis-Secret-1@cache:6379/0")
    monkeypatch.setenv("JENKINS_USER", "opsbot")
    monkeypatch.setenv("JENKINS_TOKEN", "jenkins-api-token-0042")
    monkeypatch.setenv("OPSBOT_TEST_SHORT_TOKEN", "abc12")
    logger, out = log
    logger.info("store at %s (%s)", os.environ["OPSBOT_DB_URL"], "p@ss-w0rd!")
    logger.info("redis at redis://:redis-Secret-1@cache:6379/0")
    logger.info("Authorization: Basic %s", base64.b64encode(b"opsbot:jenkins-api-token-0042"))
    logger.info("a short value stays: abc12")
    text = out.getvalue()
    for leak in ("p%40ss-w0rd!", "p@ss-w0rd!", "redis-Secret-1", "b3BzYm90Omp"):
        assert leak not in text, text
    assert "postgresql://opsbot:**********@db:5432/opsbot (**********)" in text
    assert "a short value stays: abc12" in text


def test_added_secrets_and_text_without_secrets(log: tuple[logging.Logger, io.StringIO]) -> None:
    add_secret("from-credentials-yml-0123", None, "")
    logger, out = log
    logger.info("token %s", "from-credentials-yml-0123")
    logger.info("%d builds of %s", 3, "payments")  # nothing to mask: args are kept
    assert out.getvalue() == "INFO token **********\nINFO 3 builds of payments\n"
    assert mask("nothing secret here") == "nothing secret here"


def test_a_connector_setting_is_masked(log: tuple[logging.Logger, io.StringIO]) -> None:
    from connectors._common import setting

    assert setting({"token": "777:literal-token-in-credentials"}, "token",
                   "TELEGRAM_TOKEN") == "777:literal-token-in-credentials"
    logger, out = log
    logger.info("bot777:literal-token-in-credentials")
    assert out.getvalue() == "INFO bot**********\n"


def test_uncaught_exceptions_are_masked(token: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        raise RuntimeError(f"token {token}")
    except RuntimeError as exc:
        _redact._excepthook(type(exc), exc, exc.__traceback__)
    thread = threading.current_thread()
    error = RuntimeError(f"in a thread {token}")
    _redact._thread_excepthook(threading.ExceptHookArgs(
        (type(error), error, None, thread)))
    err = capsys.readouterr().err
    assert _clean(err), err
    assert "RuntimeError: token **********" in err
    assert f"Exception in thread {thread.name}" in err


def test_a_formatting_error_does_not_print_the_secret(token: str,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    install()
    logger = logging.getLogger("opsbot.test.secrets.bad")
    handler = logging.StreamHandler(sys.stderr)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("%d is not a number: %s", "x", token)
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "--- Logging error ---" in err
    assert _clean(err), err


@pytest.mark.parametrize(("typed", "kept"), [
    ("use ghp_" + "a1B2" * 9 + " for it", "use ********** for it"),
    ("aws AKIAABCDEFGHIJKLMNOP please", "aws ********** please"),
    ("auth: Bearer abc.def-ghi_jkl", "auth: Bearer **********"),
    ("jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dozjgNryP4J3jVmNHl0w5N", "jwt **********"),
    ("jenkins token 11a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7", "jenkins token **********"),
    ("log in with password: hunter22", "log in with password: **********"),
    ("renew the TLS cert on checkout", "renew the TLS cert on checkout"),
    ("https://ci.example/job/payments-deploy/1234/console",
     "https://ci.example/job/payments-deploy/1234/console"),
    ("revert 3f2a9c1 on payments-deploy-2024-staging-blue-green",
     "revert 3f2a9c1 on payments-deploy-2024-staging-blue-green"),
])
def test_redact_masks_what_looks_like_a_pasted_credential(typed: str, kept: str) -> None:
    assert _redact.redact(typed) == kept


def test_redact_masks_the_configured_secrets_too(token: str) -> None:
    assert _redact.redact(f"my token is {token}") == f"my token is {MASK}"


# -- file modes -----------------------------------------------------------------------


def test_private_files_and_directories(tmp_path: Path) -> None:
    state = tmp_path / "a" / ".opsbot"
    private_dir(state / "logs")
    assert _mode(tmp_path / "a") == 0o700 and _mode(state) == 0o700
    assert _mode(state / "logs") == 0o700
    path = write_private(state / "endpoints.yml", "a: 1\n")
    assert path.read_text() == "a: 1\n" and _mode(path) == 0o600
    with open_private(state / "logs" / "rasa.log") as file:
        file.write(b"one\n")
    with open_private(state / "logs" / "rasa.log") as file:
        file.write(b"two\n")
    assert (state / "logs" / "rasa.log").read_bytes() == b"one\ntwo\n"
    assert _mode(state / "logs" / "rasa.log") == 0o600


def test_looser_modes_are_tightened(tmp_path: Path) -> None:
    state = tmp_path / "state"
    (state / "cache").mkdir(parents=True)
    state.chmod(0o755)
    (state / "cache").chmod(0o775)
    old = state / "cache" / "embeddings.sqlite"
    old.write_bytes(b"x")
    old.chmod(0o664)
    script = state / "hook.sh"
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)
    outside = tmp_path / "outside.txt"
    outside.write_text("not ours to change")
    outside.chmod(0o644)
    (state / "link").symlink_to(outside)
    log = state / "old.log"
    log.write_bytes(b"")
    log.chmod(0o644)
    write_private(state / "credentials.yml", "x")  # an existing file, written again
    (state / "credentials.yml").chmod(0o644)
    write_private(state / "credentials.yml", "y")
    assert _mode(state / "credentials.yml") == 0o600

    secure_state_dir(state)
    assert _mode(state) == 0o700 and _mode(state / "cache") == 0o700
    assert _mode(old) == 0o600 and _mode(log) == 0o600
    assert _mode(script) == 0o700  # only group and other lose permissions
    assert _mode(outside) == 0o644  # a symlink is not followed


def test_the_stack_writes_private_state(tmp_path: Path, project_root: Path) -> None:
    import dataclasses

    from opsbot._processes import Stack
    from opsbot.settings import Settings

    state = tmp_path / "state"
    state.mkdir(mode=0o755)
    state.chmod(0o755)
    (state / "tracker.db").write_bytes(b"")
    (state / "tracker.db").chmod(0o644)
    settings = dataclasses.replace(Settings.from_env(project_root), state_dir=state,
                                   port=free_port(), actions_port=free_port())
    stack = Stack(settings)
    made = state / "made-by-a-server"
    try:
        child = stack.start("probe", [sys.executable, "-c", (
            "import os, sys; os.makedirs(sys.argv[1] + '-dir');"
            " open(sys.argv[1], 'w').write('x'); print('ready')"), str(made)])
        child.process.wait(timeout=60)
        endpoints = stack.runtime_endpoints()
        credentials = stack.runtime_credentials({"TELEGRAM_TOKEN": TOKEN})
    finally:
        stack.stop()
    assert _mode(state) == 0o700 and _mode(state / "logs") == 0o700
    assert _mode(state / "logs" / "probe.log") == 0o600
    assert b"ready" in (state / "logs" / "probe.log").read_bytes()
    assert _mode(made) == 0o600 and _mode(Path(f"{made}-dir")) == 0o700
    assert _mode(state / "tracker.db") == 0o600
    assert _mode(endpoints) == 0o600 and _mode(credentials) == 0o600
    assert TOKEN not in credentials.read_text()  # ${TELEGRAM_TOKEN}, never the value
    for path in state.rglob("*"):
        assert not _mode(path) & 0o077, path


# -- end to end: the Telegram connector with a recognisable token ---------------------


def _leaks_under(state: Path) -> list[str]:
    needles = [leak.encode() for leak in LEAKS]
    found = []
    for path in sorted(state.rglob("*")):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            found += [f"{path}: {needle!r}" for needle in needles if needle in data]
    return found


def _converse(telegram: TelegramSimulator) -> None:
    """A few messages: a deploy, confirmed, that runs to its end (the watcher's message)."""
    telegram.send_text(ALICE, "help")
    telegram.wait_for_bot_message(ALICE, timeout=60)
    telegram.send_text(ALICE, "deploy payments 2.4.1 to staging")
    preview = telegram.wait_for_bot_message(ALICE, contains="Deploy payments 2.4.1 to staging",
                                            timeout=60)
    telegram.press(ALICE, ALICE, int(preview["message_id"]), title="Confirm")
    telegram.wait_for_bot_message(ALICE, contains="is live on staging",
                                  after=int(preview["message_id"]), timeout=90)


def _check_state(state: Path, caplog: pytest.LogCaptureFixture) -> None:
    logs = {p.name: p.read_bytes() for p in (state / "logs").glob("*.log")}
    assert {"rasa.log", "actions.log"} <= set(logs), logs.keys()
    assert b"Rasa server is up and running" in logs["rasa.log"]  # INFO lines are there
    assert b"connectors.telegram" in logs["rasa.log"]
    assert b"HTTP Request:" not in logs["rasa.log"]  # httpx is at WARNING
    assert _leaks_under(state) == []
    assert _clean(caplog.text)
    for path in [state, *state.rglob("*")]:
        if not path.is_symlink():
            assert not _mode(path) & 0o077, f"{path} is {oct(_mode(path))}"


@pytest.fixture()
def production_logging(monkeypatch: pytest.MonkeyPatch) -> None:
    """The servers log at INFO, as in production (training in this process set LOG_LEVEL
    to WARNING), unbuffered, so that the logs are complete when the servers are stopped."""
    monkeypatch.setenv("LOG_LEVEL", "INFO")
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")


@pytest.mark.slow
@pytest.mark.usefixtures("production_logging")
def test_polling_never_writes_the_token(trained_model: Path, tmp_path: Path,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    state = tmp_path / "state"
    telegram = TelegramSimulator(token=TOKEN)
    telegram.start()
    with chat_stack(trained_model, state, telegram, rasa_env={"TELEGRAM_POLL_TIMEOUT": "2"}):
        wait_until(lambda: telegram.waiting_polls() > 0, "the connector never polled getUpdates")
        _converse(telegram)
        time.sleep(3)  # a few more polls, each an httpx request with the token in its URL
    _check_state(state, caplog)


@pytest.mark.slow
@pytest.mark.usefixtures("production_logging")
def test_webhook_mode_never_writes_the_token(trained_model: Path, tmp_path: Path,
                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    state = tmp_path / "state"
    port = free_port()
    # The public https URL Telegram accepts; the simulator routes it to the local port,
    # as the reverse proxy in front of a real bot does.
    hook = "https://opsbot.example.com:8443/webhooks/telegram/webhook"
    telegram = TelegramSimulator(token=TOKEN,
                                 routes={"https://opsbot.example.com:8443": f"http://127.0.0.1:{port}"})
    telegram.start()
    webhook = {"TELEGRAM_MODE": "webhook", "TELEGRAM_WEBHOOK_URL": hook,
               "TELEGRAM_WEBHOOK_SECRET": "webhook-Secret-recognisable-42"}
    with chat_stack(trained_model, state, telegram, port=port, rasa_env=webhook):
        wait_until(lambda: telegram.webhook_info().get("url") == hook, "setWebhook was not called")
        _converse(telegram)
    _check_state(state, caplog)
    assert not [p for p in state.rglob("*") if p.is_file()
                and b"webhook-Secret-recognisable-42" in p.read_bytes()]
    assert os.environ.get("TELEGRAM_TOKEN") != TOKEN  # the servers got it, not this process
