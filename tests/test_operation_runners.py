"""What an operation runs: the exact argv or request, and running it.

Every spec comes from a YAML file the test writes and ``load_file`` checks; commands are
small Python scripts the test writes next to it. Nothing here reaches the network:
requests go to an ``httpx.MockTransport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from actions.errors import BackendUnavailable, OpsbotError, OutcomeUnknown
from actions.operations._runners import (
    MASK,
    CommandResult,
    HttpResult,
    Prepared,
    mask,
    prepare,
    run_command,
    send_http,
)
from actions.operations._spec import HttpRun, OperationSpec, load_file

# The scripts' '#!/usr/bin/env python3' finds this Python first.
PATH = f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin"
TOKEN = "cdn-s3cret/token+value"
ENV = {"PATH": PATH, "CDN_URL": "http://cdn.test", "CDN_TOKEN": TOKEN, "SECRET": "hunter2-secret"}

HEAD = """\
name: test_op
description: A test operation
examples:
  - run the test operation
  - please run the test operation
  - can you run the test operation
  - start the test operation now
  - I need the test operation
risk: change
"""


def operation(folder: Path, parameters: str, run: str,
              env: dict[str, str] | None = None) -> OperationSpec:
    """The spec of an operation file with these ``parameters:`` and ``run:`` sections."""
    path = folder / "test_op.yml"
    path.write_text(HEAD + "parameters:\n" + textwrap.indent(textwrap.dedent(parameters), "  ")
                    + "run:\n" + textwrap.indent(textwrap.dedent(run), "  "), encoding="utf-8")
    spec, errors = load_file(path, env=ENV if env is None else env, check_env=False)
    assert errors == [], [str(e) for e in errors]
    assert spec is not None
    return spec


def script(folder: Path, name: str, body: str) -> Path:
    path = folder / name
    path.write_text("#!/usr/bin/env python3\n" + textwrap.dedent(body), encoding="utf-8")
    path.chmod(0o755)
    return path


def prepared_for(spec: OperationSpec, values: dict[str, str]) -> Prepared:
    return prepare(spec, values, requester="alice", operation_id="op-1", env=ENV)


def run(prepared: Prepared, timeout: float = 30, limit: int = 64 * 1024) -> CommandResult:
    return run_command(prepared, timeout, limit)


ARGV_SCRIPT = """\
import json, sys
from pathlib import Path
Path(__file__).with_name("argv.json").write_text(json.dumps(sys.argv[1:]))
"""


# -- commands: values are whole arguments, never a shell ---------------------------------------


@pytest.mark.parametrize("value", [
    "; rm -rf /",
    "$(id)",
    "`id`",
    "\"quoted\" 'single'",
    "a b  c",
    "line one\nline two",
    "${HOME}",
    "{service}",
    "back\\slash | pipe > redirect & amp",
])
def test_a_value_arrives_byte_for_byte_as_one_argument(tmp_path: Path, value: str) -> None:
    script(tmp_path, "argv.py", ARGV_SCRIPT)
    spec = operation(tmp_path, "note: {type: text, max_length: 500}\n",
                     'command: [./argv.py, "{note}", "--x={note}"]\n')
    prepared = prepared_for(spec, {"note": value})
    assert prepared.argv == (str(tmp_path / "argv.py"), value, f"--x={value}")
    result = run(prepared)
    assert result.succeeded, result
    assert json.loads((tmp_path / "argv.json").read_text()) == [value, f"--x={value}"]


def test_a_value_that_looks_like_an_option_is_refused_as_a_whole_argument(
        tmp_path: Path) -> None:
    script(tmp_path, "argv.py", ARGV_SCRIPT)
    spec = operation(tmp_path, "note: {type: text}\n", 'command: [./argv.py, "{note}"]\n')
    with pytest.raises(OpsbotError) as caught:
        prepared_for(spec, {"note": "--upload-pack=touch /tmp/x"})
    assert str(caught.value).startswith("note cannot start with '-': at the start of an "
                                        "argument it would be read as an option.")
    prefix = operation(tmp_path, "host: {type: text}\n",
                       'command: [./argv.py, "{host}.corp.example", uptime]\n')
    with pytest.raises(OpsbotError, match="host cannot start with '-'"):
        prepared_for(prefix, {"host": "-oProxyCommand=touch${IFS}/tmp/pwn"})
    number = operation(tmp_path, "n: {type: integer}\n", 'command: [./argv.py, "{n}"]\n')
    with pytest.raises(OpsbotError, match="n cannot start with '-'"):
        prepared_for(number, {"n": "-5"})
    inside = operation(tmp_path, "note: {type: text}\n", 'command: [./argv.py, "--x={note}"]\n')
    assert prepared_for(inside, {"note": "-5"}).argv[1:] == ("--x=-5",)


def test_a_dropped_optional_argument_leaves_each_value_checked_against_its_own_template(
        tmp_path: Path) -> None:
    spec = operation(tmp_path, "reason: {type: text, required: false}\nhost: {type: text}\n",
                     'command: [echo, "--reason={reason}", "{host}"]\n')
    with pytest.raises(OpsbotError, match="host cannot start with '-'"):
        prepared_for(spec, {"host": "-oProxyCommand=touch${IFS}/tmp/pwn"})
    dashed = operation(tmp_path, "first: {type: text, required: false}\nnote: {type: text}\n",
                       'command: [echo, "{first}", "--", "{note}"]\n')
    assert prepared_for(dashed, {"note": "--help"}).argv == ("echo", "--", "--help")


def test_after_a_double_dash_a_value_may_start_with_a_dash(tmp_path: Path) -> None:
    script(tmp_path, "argv.py", ARGV_SCRIPT)
    spec = operation(tmp_path, "note: {type: text}\n", 'command: [./argv.py, "--", "{note}"]\n')
    assert run(prepared_for(spec, {"note": "--help"})).succeeded
    assert json.loads((tmp_path / "argv.json").read_text()) == ["--", "--help"]


def test_nothing_else_runs(tmp_path: Path) -> None:
    script(tmp_path, "argv.py", ARGV_SCRIPT)
    spec = operation(tmp_path, "note: {type: text, max_length: 500}\n",
                     'command: [./argv.py, "{note}"]\n')
    markers = [tmp_path / f"marker{i}" for i in range(4)]
    values = [f"x; touch {markers[0]}", f"$(touch {markers[1]})", f"`touch {markers[2]}`",
              f"x && touch {markers[3]}"]
    for value in values:
        assert run(prepared_for(spec, {"note": value})).succeeded
        assert json.loads((tmp_path / "argv.json").read_text()) == [value]
    assert [m for m in markers if m.exists()] == []


def test_a_typed_variable_is_not_expanded_in_argv_or_env(tmp_path: Path) -> None:
    script(tmp_path, "show.py", """\
        import json, os, sys
        print(json.dumps({"argv": sys.argv[1:], "NOTE": os.environ.get("NOTE"),
                          "TOKEN": os.environ.get("TOKEN")}))
    """)
    spec = operation(tmp_path, "note: {type: text}\n", """\
        command: [./show.py, "{note}"]
        env: {NOTE: "{note}", TOKEN: "${SECRET}"}
    """)
    prepared = prepared_for(spec, {"note": "${SECRET}"})
    assert prepared.env["NOTE"] == "${SECRET}"
    assert prepared.env["TOKEN"] == ENV["SECRET"]  # the file's own reference is read
    shown = json.loads(run(prepared).output)
    assert shown == {"argv": ["${SECRET}"], "NOTE": "${SECRET}", "TOKEN": ENV["SECRET"]}


def test_a_typed_variable_is_not_expanded_in_a_request(tmp_path: Path) -> None:
    spec = operation(tmp_path, "note: {type: text}\n", """\
        http:
          url: "${CDN_URL}/purge/{note}?why={note}"
          headers: {X-Note: "{note}", Authorization: "Bearer ${CDN_TOKEN}"}
          json: {note: "{note}", nested: ["{note}", {deeper: "x {note}"}]}
    """)
    prepared = prepared_for(spec, {"note": "${SECRET}"})
    assert prepared.url == "http://cdn.test/purge/%24%7BSECRET%7D?why=%24%7BSECRET%7D"
    assert prepared.headers["X-Note"] == "${SECRET}"
    assert json.loads(prepared.content or b"") == {
        "note": "${SECRET}", "nested": ["${SECRET}", {"deeper": "x ${SECRET}"}]}
    everything = prepared.url + json.dumps(dict(prepared.headers)) + (prepared.content or
                                                                       b"").decode()
    assert ENV["SECRET"] not in everything
    assert prepared.secrets == frozenset({TOKEN})


def test_the_environment_is_path_and_the_declared_variables(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOT_TEST_LEAK", "leaked")
    spec = operation(tmp_path, "service: {type: service}\n", """\
        command: [env]
        env: {OPSBOT_REQUESTER: "{requester}", OPSBOT_OPERATION: "{operation_id}",
              SERVICE: "{service}", TOKEN: "${SECRET}"}
    """)
    result = run(prepared_for(spec, {"service": "payments"}))
    assert result.succeeded, result
    variables = dict(line.split("=", 1) for line in result.output.splitlines())
    assert variables == {"PATH": PATH, "OPSBOT_REQUESTER": "alice", "OPSBOT_OPERATION": "op-1",
                         "SERVICE": "payments", "TOKEN": ENV["SECRET"]}


def test_requester_and_operation_id_in_argv(tmp_path: Path) -> None:
    spec = operation(tmp_path, "service: {type: service}\n",
                     'command: [echo, "by={requester}", "{operation_id}", "{{literal}}"]\n')
    prepared = prepared_for(spec, {"service": "payments"})
    assert prepared.argv == ("echo", "by=alice", "op-1", "{literal}")
    assert run(prepared).output == "by=alice op-1 {literal}\n"


def test_an_optional_value_not_given_drops_what_uses_it(tmp_path: Path) -> None:
    spec = operation(tmp_path, """\
        service: {type: service}
        reason: {type: text, required: false}
    """, """\
        command: [echo, "{service}", "--reason={reason}", "{reason}"]
        env: {REASON: "{reason}", SERVICE: "{service}"}
    """)
    without = prepared_for(spec, {"service": "payments"})
    assert without.argv == ("echo", "payments")
    assert dict(without.env) == {"PATH": PATH, "SERVICE": "payments"}
    empty = prepared_for(spec, {"service": "payments", "reason": ""})
    assert empty.argv == ("echo", "payments")
    given = prepared_for(spec, {"service": "payments", "reason": "flaky"})
    assert given.argv == ("echo", "payments", "--reason=flaky", "flaky")
    assert given.env["REASON"] == "flaky"


def test_an_optional_value_not_given_drops_json_keys_and_headers(tmp_path: Path) -> None:
    spec = operation(tmp_path, """\
        service: {type: service}
        reason: {type: text, required: false}
    """, """\
        http:
          url: "https://cdn.example/purge/{service}"
          headers: {X-Reason: "{reason}", X-Service: "{service}"}
          json: {service: "{service}", reason: "{reason}", tags: ["{reason}", fixed]}
    """)
    without = prepared_for(spec, {"service": "payments"})
    assert dict(without.headers) == {"X-Service": "payments", "Content-Type": "application/json"}
    assert json.loads(without.content or b"") == {"service": "payments", "tags": ["fixed"]}
    given = prepared_for(spec, {"service": "payments", "reason": "stale"})
    assert given.headers["X-Reason"] == "stale"
    assert json.loads(given.content or b"") == {"service": "payments", "reason": "stale",
                                                "tags": ["stale", "fixed"]}


def test_an_optional_value_in_the_url_is_handled(tmp_path: Path) -> None:
    path = tmp_path / "test_op.yml"
    path.write_text(HEAD + """\
parameters:
  service: {type: service}
  reason: {type: text, required: false}
run:
  http:
    url: "https://cdn.example/purge/{service}?reason={reason}"
""", encoding="utf-8")
    spec, errors = load_file(path, env=ENV, check_env=False)
    if errors:
        return  # refusing the file is a fix too
    assert spec is not None
    try:
        prepared = prepared_for(spec, {"service": "payments"})
    except OpsbotError:
        return  # a clear refusal is a fix too
    assert prepared.url.startswith("https://cdn.example/purge/payments")


# -- HTTP -------------------------------------------------------------------------------------


def send(prepared: Prepared, handler: Callable[[httpx.Request], httpx.Response],
         expect: tuple[int, ...] = ()) -> HttpResult:
    return asyncio.run(send_http(prepared, 5, expect, transport=httpx.MockTransport(handler)))


def purge_spec(folder: Path) -> OperationSpec:
    return operation(folder, """\
        service: {type: service}
        note: {type: text}
        count: {type: integer, min: 1, max: 99}
    """, """\
        http:
          method: POST
          url: "${CDN_URL}/purge/{service}?note={note}"
          headers: {Authorization: "Bearer ${CDN_TOKEN}", X-Note: "{note}"}
          json: {count: "{count}", note: "{note}", by: "{requester}"}
          expect: [200, 202]
    """)


def test_url_placeholders_are_percent_encoded_and_json_values_stay_strings(
        tmp_path: Path) -> None:
    spec = purge_spec(tmp_path)
    prepared = prepared_for(spec, {"service": "a/b?c=d#e", "note": "x y&z", "count": "5"})
    assert prepared.url == "http://cdn.test/purge/a%2Fb%3Fc%3Dd%23e?note=x%20y%26z"
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"purged": True})

    assert isinstance(spec.run, HttpRun)
    result = send(prepared, handler, spec.run.expect)
    [request] = seen
    assert request.method == "POST"
    assert request.url.raw_path == b"/purge/a%2Fb%3Fc%3Dd%23e?note=x%20y%26z"
    assert request.headers["Authorization"] == f"Bearer {TOKEN}"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.content) == {"count": "5", "note": "x y&z", "by": "alice"}
    assert (result.status, result.expected) == (202, True)


def test_a_header_value_with_a_line_break_is_refused(tmp_path: Path) -> None:
    spec = purge_spec(tmp_path)
    for note in ("one\ntwo", "one\r\nX-Injected: yes"):
        with pytest.raises(BackendUnavailable) as caught:
            prepared_for(spec, {"service": "payments", "note": note, "count": "1"})
        assert str(caught.value) == ("the header X-Note would hold a line break; nothing was "
                                     "sent.")


@pytest.mark.parametrize(("status", "expect", "expected"), [
    (200, (200, 202), True),
    (202, (200, 202), True),
    (204, (200, 202), False),
    (500, (200, 202), False),
    (204, (), True),
    (302, (), False),
    (404, (), False),
    (404, (404,), True),
])
def test_expected_and_unexpected_statuses(tmp_path: Path, status: int, expect: tuple[int, ...],
                                          expected: bool) -> None:
    prepared = prepared_for(purge_spec(tmp_path), {"service": "payments", "note": "n",
                                                   "count": "1"})
    result = send(prepared, lambda request: httpx.Response(status, text="answer"), expect)
    assert (result.status, result.expected, result.excerpt) == (status, expected, "answer")


def test_the_answer_is_masked(tmp_path: Path) -> None:
    prepared = prepared_for(purge_spec(tmp_path), {"service": "payments", "note": "n",
                                                   "count": "1"})
    result = send(prepared, lambda request: httpx.Response(
        200, json={"you_sent": request.headers["Authorization"]}))
    assert TOKEN not in result.excerpt
    assert json.loads(result.excerpt) == {"you_sent": f"Bearer {MASK}"}


def test_a_connect_error_is_unavailable_and_not_sent(tmp_path: Path) -> None:
    prepared = prepared_for(purge_spec(tmp_path), {"service": "payments", "note": "n",
                                                   "count": "1"})

    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(BackendUnavailable) as caught:
        send(prepared, refuse)
    assert not isinstance(caught.value, OutcomeUnknown)
    assert str(caught.value) == ("I could not reach cdn.test (ConnectError); the request was "
                                 "not sent.")
    assert isinstance(caught.value.__cause__, httpx.ConnectError)


def test_a_read_timeout_is_an_unknown_outcome(tmp_path: Path) -> None:
    prepared = prepared_for(purge_spec(tmp_path), {"service": "payments", "note": "n",
                                                   "count": "1"})

    def lose(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer", request=request)

    with pytest.raises(OutcomeUnknown) as caught:
        send(prepared, lose)
    assert str(caught.value) == "cdn.test did not answer within 5s after the request was sent."


def test_a_broken_connection_after_sending_is_an_unknown_outcome(tmp_path: Path) -> None:
    prepared = prepared_for(purge_spec(tmp_path), {"service": "payments", "note": "n",
                                                   "count": "1"})

    def reset(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed connection", request=request)

    with pytest.raises(OutcomeUnknown):
        send(prepared, reset)


def test_a_placeholder_right_after_a_variable_cannot_pick_the_host(tmp_path: Path) -> None:
    path = tmp_path / "test_op.yml"
    path.write_text(HEAD + """\
parameters:
  service: {type: service}
run:
  http:
    url: "${CDN_URL}{service}/purge"
    headers: {Authorization: "Bearer ${CDN_TOKEN}"}
""", encoding="utf-8")
    env = {**ENV, "CDN_URL": "https://cdn.example"}
    spec, errors = load_file(path, env=env, check_env=True)
    if errors:
        return  # refusing the file is a fix
    assert spec is not None
    try:
        prepared = prepare(spec, {"service": "x.attacker.net"}, requester="alice", env=env)
    except OpsbotError:
        return  # refusing the value is a fix
    assert httpx.URL(prepared.url).host == "cdn.example"


@pytest.mark.parametrize("url", ["${CDN_URL}x{service}/purge", "${CDN_URL}.{service}/purge",
                                 "${CDN_URL}@{service}/purge"])
def test_a_variable_that_does_not_end_the_host_is_refused_when_run(
        tmp_path: Path, url: str) -> None:
    spec = operation(tmp_path, "service: {type: service}\n",
                     f'http:\n  url: "{url}"\n'
                     '  headers: {Authorization: "Bearer ${CDN_TOKEN}"}\n')
    with pytest.raises(OpsbotError) as caught:
        prepared_for(spec, {"service": "attacker.net"})
    message = str(caught.value)
    assert message.startswith("the url of test_op lets a value pick its host (the text before "
                              "the first placeholder, 'http://"), message
    assert message.endswith("does not end the host); put placeholders after a / in the path "
                            "or the query."), message
    assert TOKEN not in message


def test_a_variable_that_ends_with_a_slash_holds_the_host(tmp_path: Path) -> None:
    spec = operation(tmp_path, "service: {type: service}\n",
                     'http:\n  url: "${CDN_URL}/purge/{service}"\n')
    prepared = prepare(spec, {"service": "evil.net@x"}, env={**ENV, "CDN_URL": "http://cdn.test"})
    assert httpx.URL(prepared.url).host == "cdn.test"
    assert prepared.url == "http://cdn.test/purge/evil.net%40x"


# -- timeouts, exit codes and output ----------------------------------------------------------


def gone(pid: int) -> bool:
    """Whether ``pid`` has ended (a zombie no parent reaps yet counts as ended)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


def wait_gone(pids: list[int], seconds: float = 5) -> list[int]:
    """The pids still running after up to ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        alive = [pid for pid in pids if not gone(pid)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


BACKGROUND = """\
import os, signal, subprocess, sys, time
from pathlib import Path
if "--ignore-term" in sys.argv:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "300"])
Path(sys.argv[1]).write_text(f"{os.getpid()} {child.pid}")
print("started", flush=True)
if "--exit" not in sys.argv:
    time.sleep(300)
"""


def background(tmp_path: Path, *flags: str) -> tuple[Prepared, Path]:
    script(tmp_path, "background.py", BACKGROUND)
    pids = tmp_path / "pids"
    argv = ", ".join(json.dumps(a) for a in ["./background.py", str(pids), *flags])
    spec = operation(tmp_path, "{}\n", f"command: [{argv}]\ntimeout: 1s\n")
    return prepared_for(spec, {}), pids


@pytest.mark.timeout(60)
def test_a_timeout_kills_the_command_and_its_children(tmp_path: Path) -> None:
    prepared, pids = background(tmp_path)
    result = run(prepared, timeout=1)
    assert (result.timed_out, result.exit_code, result.succeeded) == (True, None, False)
    assert "started" in result.output
    parent, child = (int(p) for p in pids.read_text().split())
    assert wait_gone([parent, child]) == []


@pytest.mark.timeout(60)
def test_a_timeout_kills_a_command_that_ignores_sigterm(tmp_path: Path) -> None:
    prepared, pids = background(tmp_path, "--ignore-term")
    result = run(prepared, timeout=1)
    assert (result.timed_out, result.exit_code) == (True, None)
    parent, child = (int(p) for p in pids.read_text().split())
    assert wait_gone([parent, child]) == []


@pytest.mark.timeout(60)
def test_a_child_left_running_after_the_command_ends_is_stopped(tmp_path: Path) -> None:
    prepared, pids = background(tmp_path, "--exit")
    result = run(prepared, timeout=30)
    assert (result.timed_out, result.exit_code, result.succeeded) == (False, 0, True)
    parent, child = (int(p) for p in pids.read_text().split())
    assert wait_gone([parent, child]) == []


ESCAPE = """\
import subprocess, sys
from pathlib import Path
# A child in a session of its own (setsid): the process group kill cannot reach it, and it
# keeps the command's output pipe open.
child = subprocess.Popen(["sleep", "300"], start_new_session=True)
Path(sys.argv[1]).write_text(str(child.pid))
print("started", flush=True)
"""


def test_a_child_in_its_own_session_does_not_hang_the_command(tmp_path: Path) -> None:
    script(tmp_path, "escape.py", ESCAPE)
    pidfile = tmp_path / "escaped.pid"
    spec = operation(tmp_path, "{}\n", f'command: [./escape.py, "{pidfile}"]\n')
    prepared = prepared_for(spec, {})
    results: list[CommandResult] = []
    runner = threading.Thread(target=lambda: results.append(run(prepared, timeout=30)),
                              daemon=True)
    runner.start()
    try:
        runner.join(timeout=12)  # run_command gives its output reader 5s, then returns
        assert results, "run_command is still waiting for the escaped child"
        assert results[0].exit_code == 0
    finally:
        if pidfile.exists():
            pid = int(pidfile.read_text())
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        runner.join(timeout=10)


def test_an_exit_code_and_stderr(tmp_path: Path) -> None:
    script(tmp_path, "fail.py", """\
        import sys
        print("to stdout", flush=True)
        print("to stderr", file=sys.stderr, flush=True)
        sys.exit(3)
    """)
    result = run(prepared_for(operation(tmp_path, "{}\n", "command: [./fail.py]\n"), {}))
    assert (result.exit_code, result.succeeded, result.timed_out, result.error) == (
        3, False, False, None)
    assert result.output == "to stdout\nto stderr\n"
    assert result.last_lines() == "to stdout\nto stderr"


def test_output_keeps_its_last_bytes(tmp_path: Path) -> None:
    script(tmp_path, "loud.py", """\
        import sys
        for i in range(20480):
            sys.stdout.write(f"line {i:04d}\\n")
    """)
    expected = "".join(f"line {i:04d}\n" for i in range(20480))
    assert len(expected) > 200 * 1024
    result = run(prepared_for(operation(tmp_path, "{}\n", "command: [./loud.py]\n"), {}),
                 limit=4096)
    assert result.succeeded
    # The first, partial line is dropped too: a cut through a secret would show its end.
    assert result.output == expected[-4096:].split("\n", 1)[1]
    assert result.output.startswith("line ")
    assert result.dropped_bytes == len(expected) - len(result.output) > 0


def test_a_program_that_cannot_be_started(tmp_path: Path) -> None:
    broken = tmp_path / "broken.py"
    broken.write_text("#!/nonexistent/opsbot-test/python3\nprint('never')\n", encoding="utf-8")
    broken.chmod(0o755)
    result = run(prepared_for(operation(tmp_path, "{}\n", "command: [./broken.py]\n"), {}))
    assert result.exit_code is None
    assert not result.succeeded
    assert result.error == f"could not start {broken}: No such file or directory"
    assert result.output == ""


# -- masking ----------------------------------------------------------------------------------


def test_mask_replaces_secrets_and_their_url_encoded_form() -> None:
    text = f"token={TOKEN} url=/x?t=cdn-s3cret%2Ftoken%2Bvalue short=ab"
    assert mask(text, {TOKEN, "ab"}) == f"token={MASK} url=/x?t={MASK} short=ab"
    assert mask("abc-longer abc", ("abc", "abc-longer")) == f"{MASK} {MASK}"
    assert mask("nothing secret", frozenset()) == "nothing secret"


def test_show_masks_secrets_but_not_places(tmp_path: Path) -> None:
    env = {**ENV, "CDN_HOST": "cdn.internal", "STATE_DIR": "/var/lib/x",
           "LOG_FILE": "/var/log/x.log", "API_KEY": "api-key-value"}
    spec = operation(tmp_path, "service: {type: service}\n", """\
        command: [echo, "{service}"]
        env: {HOST: "${CDN_HOST}", DIR: "${STATE_DIR}", LOG: "${LOG_FILE}", KEY: "${API_KEY}",
              URL: "${CDN_URL}", TOKEN: "${CDN_TOKEN}"}
    """, env)
    prepared = prepare(spec, {"service": "payments"}, requester="alice", env=env)
    shown = prepared.show()
    for place in ("cdn.internal", "/var/lib/x", "/var/log/x.log", "http://cdn.test"):
        assert place in shown
    for secret in ("api-key-value", TOKEN):
        assert secret not in shown
    assert prepared.secrets == frozenset({"api-key-value", TOKEN})
    assert json.loads(shown.splitlines()[2].removeprefix("env: "))["TOKEN"] == MASK


def test_show_of_a_request_masks_the_token_not_the_url(tmp_path: Path) -> None:
    prepared = prepared_for(purge_spec(tmp_path), {"service": "payments", "note": "n",
                                                   "count": "2"})
    assert prepared.show() == "\n".join([
        "POST http://cdn.test/purge/payments?note=n",
        f"Authorization: Bearer {MASK}",
        "X-Note: n",
        "Content-Type: application/json",
        "",
        '{"count": "2", "note": "n", "by": "alice"}',
    ])
    assert prepared.as_audit() == {"method": "POST",
                                   "url": "http://cdn.test/purge/payments?note=n"}


def test_a_secret_in_the_url_is_masked_in_show_and_audit(tmp_path: Path) -> None:
    spec = operation(tmp_path, "service: {type: service}\n", """\
        http:
          method: GET
          url: "${CDN_URL}/purge/{service}?token=${CDN_TOKEN}"
    """)
    prepared = prepared_for(spec, {"service": "payments"})
    assert prepared.url == f"http://cdn.test/purge/payments?token={TOKEN}"
    assert prepared.show() == f"GET http://cdn.test/purge/payments?token={MASK}"
    assert prepared.as_audit()["url"] == f"http://cdn.test/purge/payments?token={MASK}"


def test_a_missing_variable_when_running_is_unavailable(tmp_path: Path) -> None:
    spec = purge_spec(tmp_path)
    with pytest.raises(BackendUnavailable) as caught:
        prepare(spec, {"service": "payments", "note": "n", "count": "1"},
                env={"PATH": PATH, "CDN_URL": "http://cdn.test"})
    assert str(caught.value) == "CDN_TOKEN is not set in opsbot's environment."


def test_a_password_inside_a_shown_url_is_masked(tmp_path: Path) -> None:
    spec = operation(tmp_path, "service: {type: service}\n",
                     'http:\n  method: GET\n  url: "${STATUS_URL}/{service}"\n')
    env = {**ENV, "STATUS_URL": "https://ops:pa%24%24word@status.example"}
    prepared = prepare(spec, {"service": "payments"}, env=env)
    assert prepared.url == "https://ops:pa%24%24word@status.example/payments"
    assert prepared.show() == f"GET https://ops:{MASK}@status.example/payments"


@pytest.mark.parametrize("secret", ["p\u00e4ssw\u00f6rd-123", 'abc"def\\ghi', "tab\there-x"])
def test_show_masks_a_secret_in_its_json_escaped_form(tmp_path: Path, secret: str) -> None:
    spec = operation(tmp_path, "{}\n", 'command: [echo, x]\nenv: {API_TOKEN: "${API_TOKEN}"}\n')
    prepared = prepare(spec, {}, env={"PATH": PATH, "API_TOKEN": secret})
    assert f'"API_TOKEN": "{MASK}"' in prepared.show()


def test_a_cut_through_a_secret_drops_the_partial_line(tmp_path: Path) -> None:
    secret = "SuperSecretToken-0123456789abcdefghij"
    script(tmp_path, "loud.py", """\
        import os, sys
        sys.stdout.write("x" * 3000 + os.environ["API_TOKEN"] + "y" * 1000 + "\\nlast line\\n")
    """)
    spec = operation(tmp_path, "{}\n", 'command: [./loud.py]\nenv: {API_TOKEN: "${API_TOKEN}"}\n')
    prepared = prepare(spec, {}, env={"PATH": PATH, "API_TOKEN": secret})
    result = run(prepared, limit=1024 + 10)
    assert result.output == "last line\n"
    assert secret[-10:] not in result.output


def test_an_answer_is_masked_before_it_is_cut(tmp_path: Path) -> None:
    spec = purge_spec(tmp_path)
    prepared = prepared_for(spec, {"service": "payments", "note": "n", "count": "1"})
    answer = send(prepared, lambda request: httpx.Response(
        200, text="x" * 1480 + request.headers["authorization"]))
    assert TOKEN[:6] not in answer.excerpt and MASK in answer.excerpt


@pytest.mark.parametrize("value", ["..", "."])
def test_a_dot_segment_from_a_value_is_refused(tmp_path: Path, value: str) -> None:
    spec = operation(tmp_path, "p: {type: text}\n",
                     'http:\n  url: "https://api.example/v1/services/{p}/restart"\n')
    with pytest.raises(OpsbotError, match="'.' or '..'"):
        prepared_for(spec, {"p": value})
    assert prepared_for(spec, {"p": "..x"}).url == "https://api.example/v1/services/..x/restart"


def test_a_header_value_that_is_not_ascii_is_refused_before_sending(tmp_path: Path) -> None:
    spec = operation(tmp_path, "p: {type: text}\n",
                     'http:\n  url: "https://api.example/x"\n  headers: {X-Reason: "{p}"}\n')
    with pytest.raises(OpsbotError, match="only ASCII"):
        prepared_for(spec, {"p": "d\u00e9ploiement bloqu\u00e9"})


def test_a_nul_in_a_value_is_refused_before_running(tmp_path: Path) -> None:
    spec = operation(tmp_path, "p: {type: text}\n", 'command: [echo, "{p}"]\n')
    with pytest.raises(OpsbotError, match="NUL"):
        prepared_for(spec, {"p": "a\0b"})


def test_an_unreachable_host_is_named_without_its_credentials(tmp_path: Path) -> None:
    spec = operation(tmp_path, "service: {type: service}\n",
                     'http:\n  url: "${STATUS_URL}/{service}"\n')
    prepared = prepare(spec, {"service": "payments"},
                       env={**ENV, "STATUS_URL": "http://bot:hunter2pw@127.0.0.1:9"})
    with pytest.raises(BackendUnavailable) as caught:
        asyncio.run(send_http(prepared, 5, ()))
    assert str(caught.value).startswith("I could not reach 127.0.0.1:9 (")
    assert "hunter2pw" not in str(caught.value)


def test_a_secret_of_several_lines_cut_by_the_limit_leaves_no_line(tmp_path: Path) -> None:
    key = "-----BEGIN KEY-----\n" + "\n".join(f"line{i:02d}-" + "k" * 50 for i in range(20)) + \
        "\n-----END KEY-----"
    script(tmp_path, "key.py", """\
        import os, sys
        sys.stdout.write("x" * 5000 + "\\n" + os.environ["DEPLOY_KEY"] + "\\ndone\\n")
    """)
    spec = operation(tmp_path, "{}\n", 'command: [./key.py]\nenv: {DEPLOY_KEY: "${DEPLOY_KEY}"}\n')
    prepared = prepare(spec, {}, env={"PATH": PATH, "DEPLOY_KEY": key})
    result = run(prepared, limit=1024)
    shown = mask(result.output, prepared.secrets)
    assert "kkkkkkkkkk" not in shown, shown


def test_lowercase_and_plus_encodings_of_a_secret_are_masked() -> None:
    assert mask("a%2fb%2bc%3d | q=a+b+c", {"a/b+c=", "a b c"}) == f"{MASK} | q={MASK}"


@pytest.mark.timeout(60)
def test_a_dripping_answer_is_stopped_at_the_timeout(tmp_path: Path) -> None:
    spec = purge_spec(tmp_path)
    prepared = prepared_for(spec, {"service": "payments", "note": "n", "count": "1"})

    class Drip(httpx.AsyncByteStream):
        async def __aiter__(self):  # type: ignore[override]
            while True:
                await asyncio.sleep(0.3)
                yield b"."

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=Drip())

    # The answer never ends: only the whole-exchange timeout can stop the call.
    with pytest.raises(OutcomeUnknown, match="did not answer within 1s"):
        asyncio.run(send_http(prepared, 1, (), transport=httpx.MockTransport(handler)))


def test_a_huge_answer_is_read_only_as_far_as_shown(tmp_path: Path) -> None:
    spec = purge_spec(tmp_path)
    prepared = prepared_for(spec, {"service": "payments", "note": "n", "count": "1"})
    answer = send(prepared, lambda request: httpx.Response(200, content=b"y" * (8 * 1024 * 1024)))
    assert answer.status == 200 and answer.excerpt.endswith("\n...")
