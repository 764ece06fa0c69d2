"""What an operation runs: the exact argv or request, built from confirmed values, and running it.

Placeholders fill whole values, never a shell: an argv element stays one argument
whatever it holds (``; rm -rf /``, ``$(id)``, quotes), URL placeholders are
percent-encoded, JSON values are JSON strings. A placeholder of an optional parameter
that was not given drops the argv element, header, JSON key or Jenkins parameter it is
in. ``${VAR}`` references are read from opsbot's environment when the operation runs,
and their values are masked wherever output or requests are shown.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from actions.errors import BackendUnavailable, ConfigError, OutcomeUnknown
from actions.operations._checks import ENV_REFERENCE
from actions.operations._runs import (
    JENKINS_BY_HTTP,
    CommandRun,
    HttpRun,
    JenkinsRun,
    reaches_jenkins,
)
from actions.operations._spec import OperationSpec

__all__ = ["CommandResult", "HttpResult", "Prepared", "mask", "prepare", "run_command",
           "send_http", "tail"]

MASK = "********"
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([^{}]*)\}")  # {name}, and {{ }} for literal braces
_DEFAULT_PATH = "/usr/local/bin:/usr/bin:/bin"
# Variables that name a place, not a secret: their values are shown. Every other
# variable an operation refers to is masked wherever its output or call is shown.
_PLAIN_NAME = re.compile(r"(URL|HOST|PORT|DIR|PATH|FILE|USER|NAME)$")
_GRACE_SECONDS = 2.0
MAX_RESPONSE_BYTES = 1024 * 1024  # of an HTTP answer, read to show its start


class _Absent(Exception):
    """A template used an optional parameter that was not given."""


def _fill(template: str, values: Mapping[str, str], encode: Any = None) -> str:
    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        name = match.group(1).strip()
        if name not in values:
            raise _Absent(name)
        return encode(values[name]) if encode else values[name]

    return PLACEHOLDER.sub(one, template)


def _secrets(text: str, env: Mapping[str, str], found: set[str]) -> str:
    """``${VAR}`` -> its value (remembered as a secret); ``${VAR:-default}`` -> default if unset."""
    def one(match: re.Match[str]) -> str:
        value = env.get(match.group(1)) or match.group(2)
        if not value:
            raise BackendUnavailable(f"{match.group(1)} is not set in opsbot's environment.",
                                     backend="the operation")
        if not _PLAIN_NAME.search(match.group(1)):
            found.add(value)  # a default of a secret's variable is masked too
        else:  # a place is shown, but not a password inside it (https://user:pw@host)
            try:
                password = urllib.parse.urlsplit(value).password
            except ValueError:
                password = None
            if password:
                found.update({password, urllib.parse.unquote(password)})
        return value

    return ENV_REFERENCE.sub(one, text)


def _forms(secret: str) -> set[str]:
    """A secret as it may be written: as is, percent-encoded (either case, ``+`` for
    spaces), JSON-escaped; each line of a secret of several lines on its own too (a cut
    output may hold only some of them)."""
    forms = {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}
    for quoted in (urllib.parse.quote(secret, safe=""), urllib.parse.quote(secret),
                   urllib.parse.quote_plus(secret, safe="")):
        forms |= {quoted, re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quoted)}
    if "\n" in secret:
        forms |= {line.strip() for line in secret.splitlines() if len(line.strip()) >= 8}
    return forms


def mask(text: str, secrets: set[str] | frozenset[str] | tuple[str, ...]) -> str:
    """``text`` with every secret value (longest first), in each form it may be written
    in (as is, percent-encoded, JSON-escaped), replaced by ``********``."""
    forms = {f for s in secrets if len(s) >= 3 for f in _forms(s)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, MASK)
    return text


def tail(text: str, count: int = 15, width: int = 3000) -> str:
    """The last ``count`` lines of ``text``, at most ``width`` characters (whole lines
    when a line fits). Mask first: a cut never reveals part of a masked secret then."""
    lines = text.rstrip("\n").splitlines()[-count:]
    shown = "\n".join(lines)
    if len(shown) > width:
        shown = shown[-width:]
        if "\n" in shown:
            shown = shown.split("\n", 1)[1]
    return shown


@dataclass(frozen=True)
class Prepared:
    """The exact call an operation makes with these values (secrets in clear; ``show`` masks)."""

    kind: str
    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    cwd: Path | None = None
    method: str = ""
    url: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    content: bytes | None = None
    job: str = ""
    parameters: Mapping[str, str] = field(default_factory=dict)
    secrets: frozenset[str] = frozenset()

    @property
    def private(self) -> frozenset[str]:
        """The Jenkins parameters whose values hold a secret."""
        return frozenset(k for k, v in self.parameters.items() if mask(v, self.secrets) != v)

    def shown_parameters(self) -> dict[str, str]:
        """The Jenkins parameters, secrets masked."""
        return {k: mask(v, self.secrets) for k, v in self.parameters.items()}

    def show(self) -> str:
        """The call as text, secrets masked: for ``opsbot operations run`` and the audit log."""
        if self.kind == "command":
            lines = ["argv: " + json.dumps(list(self.argv))]
            lines.append(f"cwd: {self.cwd}")
            lines.append("env: " + json.dumps(dict(self.env), sort_keys=True))
        elif self.kind == "http":
            lines = [f"{self.method} {self.url}"]
            lines += [f"{k}: {v}" for k, v in self.headers.items()]
            if self.content is not None:
                lines += ["", self.content.decode("utf-8", "replace")]
        else:
            lines = [f"Jenkins job: {self.job}",
                     "parameters: " + json.dumps(dict(self.parameters), sort_keys=True)]
        return mask("\n".join(lines), self.secrets)

    def as_audit(self) -> dict[str, Any]:
        """The call for the audit row, secrets masked."""
        if self.kind == "command":
            return {"argv": [mask(a, self.secrets) for a in self.argv], "cwd": str(self.cwd)}
        if self.kind == "http":
            return {"method": self.method, "url": mask(self.url, self.secrets)}
        return {"job": self.job, "parameters": self.shown_parameters()}


def prepare(spec: OperationSpec, values: Mapping[str, str], *, requester: str = "",
            operation_id: str = "", env: Mapping[str, str] | None = None) -> Prepared:
    """Build the call from the confirmed ``values`` (absent optional parameters left out)."""
    try:
        return _prepare(spec, values, requester, operation_id,
                        os.environ if env is None else env)
    except _Absent as absent:  # the loader refuses these files; a hand-made spec may not
        raise ConfigError(f"{spec.name} needs {{{absent}}} where it cannot be left out, and "
                          "it was not given.") from None


def _prepare(spec: OperationSpec, values: Mapping[str, str], requester: str,
             operation_id: str, env: Mapping[str, str]) -> Prepared:
    given = {k: str(v) for k, v in values.items() if v is not None and v != ""}
    given.setdefault("requester", requester)
    given.setdefault("operation_id", operation_id)
    secrets: set[str] = set()
    run = spec.run
    if isinstance(run, CommandRun):
        argv: list[str] = []
        kept: list[str] = []  # the template of each argument in argv, side by side
        for i, arg in enumerate(run.argv):
            try:
                filled = _fill(arg, given)
            except _Absent:
                if i == 0:  # the loader refuses a placeholder program; never run a hole
                    raise
                continue  # an optional value not given drops its whole argument
            argv.append(filled)
            kept.append(arg)
        _check_arguments(spec, tuple(kept), argv, given)
        program = argv[0]
        if "/" in program and not Path(program).is_absolute():
            program = str((spec.path.parent / program).resolve())
        variables = {"PATH": env.get("PATH") or _DEFAULT_PATH}
        for key, value in run.env.items():
            try:
                variables[key] = _secrets_outside(value, given, env, secrets, None)
            except _Absent:
                continue
        if any("\0" in v for v in variables.values()):
            raise ConfigError(f"a variable of {spec.name} would hold a NUL character.")
        return Prepared("command", argv=(program, *argv[1:]), env=variables, cwd=run.cwd,
                        secrets=frozenset(secrets))
    if isinstance(run, HttpRun):
        quote = lambda v: urllib.parse.quote(v, safe="")  # noqa: E731 - one use
        # Placeholders first (their values may hold "${"), then the variables of the file.
        url = _secrets_outside(run.url, given, env, secrets, quote)
        _check_host(spec, run.url, env)
        if reaches_jenkins(run.url, env):
            raise ConfigError(f"{spec.name}: {JENKINS_BY_HTTP[0]} Fix: {JENKINS_BY_HTTP[1]}")
        _check_path(spec, url)
        headers: dict[str, str] = {}
        for key, value in run.headers.items():
            try:
                filled = _secrets_outside(value, given, env, secrets, None)
            except _Absent:
                continue
            if "\r" in filled or "\n" in filled or "\0" in filled:
                raise BackendUnavailable(f"the header {key} would hold a line break; nothing "
                                         "was sent.", backend="the operation")
            if not filled.isascii():
                raise ConfigError(f"the header {key} would hold a character HTTP headers cannot "
                                  "carry (only ASCII); nothing was sent.")
            headers[key] = filled
        content: bytes | None = None
        if run.json is not None:
            content = json.dumps(_fill_json(run.json, given, env, secrets)).encode()
            headers.setdefault("Content-Type", "application/json")
        elif run.body is not None:
            content = _secrets_outside(run.body, given, env, secrets, None).encode()
        return Prepared("http", method=run.method, url=url, headers=headers, content=content,
                        secrets=frozenset(secrets))
    assert isinstance(run, JenkinsRun)
    parameters: dict[str, str] = {}
    for key, value in run.parameters.items():
        try:
            parameters[key] = _secrets_outside(value, given, env, secrets, None)
        except _Absent:
            continue
    return Prepared("jenkins", job=_fill(run.job, given), parameters=parameters,
                    secrets=frozenset(secrets))


def _check_arguments(spec: OperationSpec, templates: tuple[str, ...], argv: list[str],
                     given: Mapping[str, str]) -> None:
    """No NUL anywhere; a typed value that is a whole argument cannot look like an option
    (``--upload-pack=...``) unless the file put ``--`` before it."""
    if any("\0" in a for a in argv):
        raise ConfigError(f"an argument of {spec.name} would hold a NUL character.")
    for template, filled in zip(templates[1:], argv[1:], strict=True):
        if template == "--":
            break  # what follows is never an option
        if filled.startswith("-") and not template.startswith("-"):
            # The leading '-' came from a typed value ("{host}.corp" given "-oProxy...").
            first = PLACEHOLDER.search(template)
            name = (first.group(1) or "").strip() if first else "a value"
            raise ConfigError(
                f"{name} cannot start with '-': at the start of an argument it would be read "
                "as an option. (The operation file can put \"--\" before it, or write it "
                f"as --{name.replace('_', '-')}={{...}}.)")


def _check_path(spec: OperationSpec, url: str) -> None:
    """A typed ``.`` or ``..`` would be a dot segment, which clients and servers resolve."""
    path = urllib.parse.urlsplit(url).path
    if any(segment in (".", "..") for segment in path.split("/")):
        raise ConfigError(f"a value of {spec.name} would make '.' or '..' a part of the URL's "
                          "path, which moves to another path; nothing was sent.")


def _check_host(spec: OperationSpec, template: str, env: Mapping[str, str]) -> None:
    """Refuse a URL whose host a typed value could extend: the file's text before the
    first placeholder (its variables resolved) must hold the whole host."""
    first = next((m for m in _TOKENS.finditer(template) if m.group(3) is not None), None)
    if first is None:
        return
    head = ENV_REFERENCE.sub(lambda m: _secrets(m.group(0), env, set()),
                              template[:first.start()])
    if not re.match(r"^https?://[^/?#]+[/?#]", head):
        raise ConfigError(f"the url of {spec.name} lets a value pick its host (the text before "
                          f"the first placeholder, {_shown_head(head)!r}, does not end the host); "
                          "put placeholders after a / in the path or the query.")


def _shown_head(head: str) -> str:
    """The scheme and host of ``head`` only: its path or credentials are not for the chat."""
    parts = urllib.parse.urlsplit(head)
    return f"{parts.scheme}://{parts.hostname or ''}" if parts.scheme else "(not a URL)"


_TOKENS = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\{\{|\}\}|\{([^{}]*)\}")


def _secrets_outside(template: str, given: Mapping[str, str], env: Mapping[str, str],
                     secrets: set[str], encode: Any) -> str:
    """Resolve the file's ``${VAR}`` and fill its placeholders in one pass over the file's
    text: a value a person typed is never read again, so it can never name a variable."""
    def one(match: re.Match[str]) -> str:
        if match.group(1) is not None:
            return _secrets(match.group(0), env, secrets)
        return _fill(match.group(0), given, encode)

    return _TOKENS.sub(one, template)


def _fill_json(value: Any, given: Mapping[str, str], env: Mapping[str, str],
               secrets: set[str]) -> Any:
    if isinstance(value, str):
        return _secrets_outside(value, given, env, secrets, None)
    if isinstance(value, list):
        items = []
        for item in value:
            try:
                items.append(_fill_json(item, given, env, secrets))
            except _Absent:
                continue
        return items
    if isinstance(value, dict):
        result = {}
        for key, item in value.items():
            try:
                result[str(key)] = _fill_json(item, given, env, secrets)
            except _Absent:
                continue
        return result
    return value


# -- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CommandResult:
    """How a command ended: its exit code (None: killed or never started) and its output."""

    exit_code: int | None
    output: str
    duration_s: float
    timed_out: bool = False
    dropped_bytes: int = 0
    error: str | None = None  # it could not be started

    @property
    def succeeded(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None

    def last_lines(self, count: int = 15, width: int = 3000) -> str:
        return tail(self.output, count, width)


def run_command(prepared: Prepared, timeout: float, output_limit: int) -> CommandResult:
    """Run the argv in its own process group; on timeout the whole group is killed.

    Blocking: call it from a thread. Output (stdout and stderr together) keeps its last
    ``output_limit`` bytes; what was cut is counted.
    """
    started = time.monotonic()
    try:
        process = subprocess.Popen(  # noqa: S603 - an argv list, never a shell
            list(prepared.argv), cwd=prepared.cwd, env=dict(prepared.env),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        return CommandResult(None, "", time.monotonic() - started,
                             error=f"could not start {prepared.argv[0]}: {reason}")
    buffer = bytearray()
    dropped = 0
    lock = threading.Lock()

    def read() -> None:
        nonlocal dropped
        assert process.stdout is not None
        stream: Any = process.stdout  # a BufferedReader: read1 returns what is there
        try:
            for chunk in iter(lambda: stream.read1(65536), b""):
                with lock:
                    buffer.extend(chunk)
                    if len(buffer) > output_limit:
                        cut = len(buffer) - output_limit
                        del buffer[:cut]
                        dropped += cut
        finally:
            # The reader closes the pipe: closing it from another thread would wait for
            # this read, which lasts as long as a process that left the group holds it.
            stream.close()

    reader = threading.Thread(target=read, name="opsbot-operation-output", daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        _kill_group(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=_GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            pass
    # Whatever the command left running in its group goes too (it would hold the pipe).
    _kill_group(process.pid, signal.SIGKILL)
    process.wait()
    reader.join(timeout=5)
    with lock:
        kept = bytes(buffer)
        cut = dropped
    if cut:
        # The cut may have gone through a secret, whose remainder mask() would not know:
        # a secret's length goes too, and then the rest of that line.
        longest = max((len(f.encode()) for s in prepared.secrets for f in _forms(s)), default=0)
        newline = kept.find(b"\n", longest)
        drop = newline + 1 if newline >= 0 else min(len(kept), longest)
        kept, cut = kept[drop:], cut + drop
    output = kept.decode("utf-8", "replace")
    if reader.is_alive():  # a process outside the group (setsid) still holds the output
        output += ("\n[opsbot: the command ended, but a process it started in a session of "
                   "its own still holds its output; output after this point is not shown]\n")
    code = process.returncode
    return CommandResult(None if timed_out else code, output, time.monotonic() - started,
                         timed_out=timed_out, dropped_bytes=cut)


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


# -- HTTP -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpResult:
    """The answer to an operation's request: its status and the part worth showing."""

    status: int
    excerpt: str
    expected: bool
    duration_s: float


def _excerpt(kind: str, text: str, secrets: frozenset[str], limit: int = 1500) -> str:
    """The answer's body, masked first and then cut (so a cut never shows part of a secret)."""
    text = mask(text, secrets)
    if "json" in kind:
        try:
            text = mask(json.dumps(json.loads(text), indent=1, ensure_ascii=False), secrets)
        except ValueError:
            pass
    return text if len(text) <= limit else text[:limit] + "\n..."


# `timeout` is also httpx's per-read timeout and is named in the errors; the deadline and
# its translation into OutcomeUnknown belong here, not with each caller.
async def send_http(prepared: Prepared, timeout: float,  # noqa: ASYNC109 - see above
                    expect: tuple[int, ...],
                    transport: httpx.AsyncBaseTransport | None = None) -> HttpResult:
    """Send the request; BackendUnavailable if it was not sent, OutcomeUnknown if its answer
    was lost after sending (it may have happened)."""
    parts = urllib.parse.urlsplit(prepared.url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = (parts.hostname or "the endpoint") + (f":{port}" if port else "")
    started = time.monotonic()

    async def exchange() -> tuple[httpx.Response, str]:
        async with httpx.AsyncClient(timeout=timeout, transport=transport,
                                     follow_redirects=False) as client:
            async with client.stream(prepared.method, prepared.url,
                                     headers=dict(prepared.headers),
                                     content=prepared.content) as response:
                body = bytearray()
                async for chunk in response.aiter_bytes():
                    body.extend(chunk)
                    if len(body) >= MAX_RESPONSE_BYTES:
                        break  # enough to show; the rest is not read
                text = bytes(body[:MAX_RESPONSE_BYTES]).decode(
                    response.encoding or "utf-8", "replace")
                return response, text

    try:
        # httpx's timeout is per read: a server that drips its answer is stopped here.
        response, text = await asyncio.wait_for(exchange(), timeout)
    except TimeoutError as exc:
        raise OutcomeUnknown(f"{host} did not answer within {timeout:g}s after the request was "
                             "sent.", backend=host) from exc
    except (httpx.ConnectError, httpx.ConnectTimeout, httpx.UnsupportedProtocol,
            httpx.InvalidURL, httpx.LocalProtocolError) as exc:
        raise BackendUnavailable(f"I could not reach {host} ({type(exc).__name__}); the request "
                                 "was not sent.", backend=host) from exc
    except httpx.TimeoutException as exc:
        raise OutcomeUnknown(f"{host} did not answer within {timeout:g}s after the request was "
                             "sent.", backend=host) from exc
    except httpx.HTTPError as exc:
        raise OutcomeUnknown(f"the connection to {host} broke after the request was sent "
                             f"({type(exc).__name__}).", backend=host) from exc
    ok = response.status_code in expect if expect else 200 <= response.status_code < 300
    excerpt = _excerpt(response.headers.get("content-type", ""), text, prepared.secrets)
    return HttpResult(response.status_code, excerpt, ok,
                      time.monotonic() - started)
