"""Team-defined operations in the dialogue: values, questions, previews, runs and their ends.

Each operation file becomes an ``IntentKind`` (``actions.registry``) through the provider
this module adds, re-read when the files change, so a new operation needs no Python and
no restart of the action server. A request is handled like a built-in one:

1. Values come from the message: the entities NLU found, and, when the message has the
   shape of one of the operation's examples, the exact text at each marked place (so a
   value with quotes or ``$(...)`` reaches the command as typed).
2. A missing required value is asked for (``operation_form``: the next message is the
   answer, whatever its words; buttons for types with choices); a bad one is named with
   what is allowed, and asked again.
3. ``read`` operations run at once, if the policy allows, and are audited; ``change`` and
   ``critical`` ones get the preview and the bound confirmation of
   ``actions.confirmations``, and run exactly once after it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import functools
import hashlib
import logging
import os
import re
import shlex
import threading
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import regex  # the regular expressions with a time limit (a dependency of Rasa's)
from rasa_sdk.events import FollowupAction, SlotSet

from actions import _redact, _runtime
from actions._watcher import WATCHER, notify
from actions.backends.jenkins import JENKINS, Job
from actions.catalog import Catalog, duration
from actions.confirmations import decide, propose, record_read, record_refusal
from actions.errors import BackendUnavailable, NotFound, OpsbotError
from actions.flows.jenkins import completion_message, follow_build, start_job
from actions.guard import ERROR, EXECUTING, FAILED, SUCCEEDED, Decision, Operation
from actions.guard.policy import JOB_ENVIRONMENT
from actions.guard.reach import job_reach
from actions.operations._runners import (
    PLACEHOLDER,
    CommandResult,
    Prepared,
    mask,
    prepare,
    run_command,
    send_http,
)
from actions.operations._runners import tail as last_lines
from actions.operations._runs import CommandRun, HttpRun, JenkinsRun
from actions.operations._spec import ANNOTATION as _ANNOTATION
from actions.operations._spec import OperationSpec, load_operations
from actions.operations._types import Parameter
from actions.registry import IntentKind, Outcome
from actions.turn import Turn

__all__ = ["ANSWER_SLOT", "FORM", "REQUEST_SLOT", "answer", "ask_message", "operations",
           "team_kinds"]

logger = logging.getLogger(__name__)

FORM = "operation_form"
REQUEST_SLOT = "operation_request"
ANSWER_SLOT = "operation_answer"
_TRAILING = " \t.!?"
_MAX_BUTTONS = 8
# Longer messages are not matched against the examples' shapes (the lazy groups of a
# shape cost more than linear time); their values come from the entities NLU found.
_MAX_SHAPE_TEXT = 500
_SHAPE_SECONDS = 0.25  # for all of an operation's examples together
_READS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="opsbot-read")


# -- the operations now on disk ------------------------------------------------------------


class _Cache:
    """The operation files as last read; read again when a file or the path changes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._signature: tuple[Any, ...] | None = None
        self._kinds: dict[str, IntentKind] = {}
        self._specs: dict[str, OperationSpec] = {}

    def _project(self) -> Path:
        return Path(os.environ.get("OPSBOT_PROJECT") or _runtime.PROJECT)

    def _current_signature(self, project: Path) -> tuple[Any, ...]:
        from actions.operations._spec import operation_dirs, operation_files

        files = operation_files(operation_dirs(project))
        stamps = []
        for path in files:
            try:
                stat = path.stat()
                stamps.append((str(path), stat.st_mtime_ns, stat.st_size))
            except OSError:
                continue
        return (str(project), os.environ.get("OPSBOT_OPERATIONS_PATH"), tuple(stamps))

    def specs(self) -> dict[str, OperationSpec]:
        self._refresh()
        return self._specs

    def kinds(self) -> dict[str, IntentKind]:
        self._refresh()
        return self._kinds

    def _refresh(self) -> None:
        project = self._project()
        signature = self._current_signature(project)
        with self._lock:
            if signature == self._signature:
                return
            try:
                loaded = load_operations(project)
            except Exception:  # noqa: BLE001 - keep the operations last read; say why
                logger.exception("reading the operation files failed; keeping the last ones")
                self._signature = signature
                return
            for error in loaded.errors:
                logger.error("operation file: %s", error)
            self._specs = dict(loaded.operations)
            self._kinds = {name: _kind(spec) for name, spec in loaded.operations.items()}
            self._signature = signature


_CACHE = _Cache()


def operations() -> dict[str, OperationSpec]:
    """The team-defined operations that load without problems, by name."""
    return _CACHE.specs()


def team_kinds() -> dict[str, IntentKind]:
    return _CACHE.kinds()


def _backend_name(spec: OperationSpec) -> str:
    run = spec.run
    if isinstance(run, HttpRun):
        from urllib.parse import urlsplit

        host = urlsplit(run.url).hostname
        return host if host and "$" not in host else "the HTTP endpoint"
    if isinstance(run, JenkinsRun):
        return "Jenkins"
    return "the command"


def _kind(spec: OperationSpec) -> IntentKind:
    name = spec.name

    async def handler(turn: Turn) -> None:
        await handle(turn, operations().get(name) or spec)

    return IntentKind(
        intent=name, handler=handler, executor=execute, backend=_backend_name(spec),
        title=spec.description[:1].lower() + spec.description[1:], risk=spec.risk,
        read=spec.risk == "read", completion=completion,
        follow=follow_build if isinstance(spec.run, JenkinsRun) else None,
        resume=None if isinstance(spec.run, JenkinsRun) else _interrupted,
        entities=tuple(p.name for p in spec.parameters), source=str(spec.path),
        acts_on=tuple(p.name for p in spec.parameters if p.type in ("service", "job")),
        needs_object=any(p.required and p.type in ("service", "job") for p in spec.parameters),
        describe=lambda values: _describe(spec, values))



# -- values from the message ---------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _template(example: str) -> tuple[Any, list[str]] | None:
    """An example as a pattern: its words literally, each marked value as a group.

    A value followed only by spaces and another value is one word (``(\\S+)``): two free
    groups side by side could split the words between them in every way.
    """
    marks = list(_ANNOTATION.finditer(example))
    parts: list[str] = []
    names: list[str] = []
    pos = 0
    for i, match in enumerate(marks):
        parts.append(_words(example[pos:match.start()]))
        adjacent = i + 1 < len(marks) and not example[match.end():marks[i + 1].start()].strip()
        parts.append(r"(\S+)" if adjacent else "(.+?)")
        names.append(match.group(2).strip())
        pos = match.end()
    parts.append(_words(example[pos:]))
    if not names:
        return None
    return regex.compile("^" + "".join(parts).strip() + "$",
                         regex.IGNORECASE | regex.DOTALL), names


def _words(text: str) -> str:
    out = []
    for chunk in re.split(r"(\s+)", text):
        out.append(r"\s+" if chunk.isspace() else re.escape(chunk))
    return "".join(out)


def values_from_text(spec: OperationSpec, text: str) -> dict[str, str]:
    """The values at the marked places of the example the text has the shape of (or none)."""
    clean = text.strip().rstrip(_TRAILING)
    if len(clean) > _MAX_SHAPE_TEXT:
        return {}
    best: dict[str, str] = {}
    best_literal = -1
    deadline = time.monotonic() + _SHAPE_SECONDS
    for example in spec.examples:
        compiled = _template(example.rstrip(_TRAILING))
        if compiled is None:
            continue
        pattern, names = compiled
        left = deadline - time.monotonic()
        if left <= 0:
            break  # the entities NLU found are enough; never hold the event loop
        try:
            match = pattern.match(clean, timeout=left)
        except TimeoutError:
            logger.info("matching %r against the shapes of %s took too long", clean[:60],
                        spec.name)
            break
        if match is None:
            continue
        found: dict[str, str] = {}
        for name, value in zip(names, match.groups(), strict=True):
            found.setdefault(name, value.strip())
        # A shape whose values do not fit their types is not this request's shape
        # ("... on [staging](environment)" against "... on prod because it is stuck");
        # free text fits any shape (a too long one is named when it is checked).
        if any((p := spec.parameter(n)) is None or (p.type != "text" and p.normalise(v)[1])
               for n, v in found.items()):
            continue
        literal = len(_ANNOTATION.sub("", example))
        if literal > best_literal:
            best_literal, best = literal, found
    return best


def _raw_values(turn: Turn, spec: OperationSpec) -> dict[str, str]:
    names = {p.name for p in spec.parameters}
    values = {k: v for k, v in turn.request.entities.items() if k in names}
    if not turn.request.text.startswith("/"):
        for name, value in values_from_text(spec, turn.request.text).items():
            # Free text is taken exactly as written; NLU's value wins for the other types
            # (its synonyms and normalised forms), the shape fills what NLU missed.
            parameter = spec.parameter(name)
            if name not in values or (parameter is not None and parameter.type == "text"):
                values[name] = value
    return values


# -- the dialogue --------------------------------------------------------------------------


def _describe(spec: OperationSpec, values: Mapping[str, str]) -> str:
    shown = ", ".join(f"{p.name} {values[p.name]}" for p in spec.parameters if values.get(p.name))
    return f"{spec.description.rstrip('.')}" + (f" ({shown})" if shown else "")


def _ask(turn: Turn, spec: OperationSpec, parameter: Parameter, values: Mapping[str, str],
         choices: list[str] | None = None, problem: str | None = None,
         catalog: Catalog | None = None) -> None:
    """Ask for one value through ``operation_form``: the next message is the answer.

    The buttons offer only the choices the policy would let this person pick.
    """
    offered = _permitted(turn, spec, parameter, values,
                         list(choices if choices is not None else parameter.fixed_choices()),
                         catalog)
    turn.events += [
        SlotSet(REQUEST_SLOT, {"intent": spec.name, "values": dict(values),
                               "asked": parameter.name, "choices": offered[:_MAX_BUTTONS],
                               "problem": problem, "text": turn.request.text,
                               "at": datetime.now(UTC).isoformat()}),
        SlotSet(ANSWER_SLOT, None),
        FollowupAction(FORM),
    ]


def _permitted(turn: Turn, spec: OperationSpec, parameter: Parameter,
               values: Mapping[str, str], choices: list[str],
               catalog: Catalog | None) -> list[str]:
    """The ``choices`` for ``parameter`` the policy allows this person, with what the
    Jenkins job they would start reaches (a deploy job on prod, say)."""
    given = {k: str(v) for k, v in values.items() if v and spec.parameter(k) is not None}
    return [choice for choice in choices
            if decide(turn, spec.name, {**given, parameter.name: choice,
                                        **_reach_of(turn, spec, {**given, parameter.name: choice},
                                                    catalog)}).allowed]


def _reach_of(turn: Turn, spec: OperationSpec, values: Mapping[str, str],
              catalog: Catalog | None) -> dict[str, str]:
    """What the Jenkins job an operation would start with ``values`` reaches ({} for
    other runners); a job parameter not yet given counts as not sent (the strictest)."""
    if not isinstance(spec.run, JenkinsRun) or catalog is None:
        return {}
    try:
        prepared = prepare(spec, values, requester=turn.who.person, operation_id="")
    except OpsbotError:
        return {}
    job = catalog.jobs.get(prepared.job)
    return job_reach(job, prepared.parameters) if job is not None else {}


def ask_message(request: Mapping[str, Any]) -> tuple[str, list[dict[str, str]]]:
    """The question ``action_ask_operation_answer`` shows for a pending request."""
    spec = operations().get(str(request.get("intent")))
    if spec is None:
        return ("That operation is no longer defined; nothing will run. Say \"cancel\".", [])
    parameter = spec.parameter(str(request.get("asked")))
    if parameter is None:
        return (f"{spec.description}: say \"cancel\" to stop.", [])
    problem = request.get("problem")
    text = f"{problem}. " if problem else ""
    text += f"{parameter.question()} (for: {spec.description.rstrip('.')}; say \"cancel\" to stop)"
    # A button sends the value as text, exactly as if it had been typed.
    buttons = [{"title": c, "payload": c} for c in request.get("choices") or []]
    return text, buttons


def answer(request: Mapping[str, Any], text: str) -> tuple[dict[str, Any] | None, str | None]:
    """Take a typed answer for the asked value: the request with it, and the next one to ask
    (None: complete), or ``(None, problem)`` when the answer is not acceptable."""
    spec = operations().get(str(request.get("intent")))
    if spec is None:
        return None, "That operation is no longer defined"
    asked = spec.parameter(str(request.get("asked")))
    if asked is None:
        return None, "That question is no longer asked"
    value, problem = asked.normalise(text)
    if problem:
        return None, f"{problem[0].upper()}{problem[1:]}"
    values = {**(request.get("values") or {}), asked.name: text.strip()}
    updated = {**request, "values": values, "problem": None}
    missing = next((p for p in spec.parameters
                    if p.required and p.default is None and not values.get(p.name)), None)
    if missing is None:
        return updated, None
    return {**updated, "asked": missing.name,
            "choices": list(missing.fixed_choices())[:_MAX_BUTTONS]}, missing.name


async def handle(turn: Turn, spec: OperationSpec, from_text: bool = True) -> None:
    """Check every value, ask for what is missing, then answer (read) or propose (change).

    ``from_text``: read values from the message's words too (not when the values are the
    answers collected by ``operation_form``).
    """
    raw = _raw_values(turn, spec) if from_text else dict(turn.request.entities)
    values: dict[str, str] = {}
    notes: list[str] = []
    # A Jenkins operation needs the jobs for its questions too (what each choice reaches).
    catalog = await _catalog(turn) if isinstance(spec.run, JenkinsRun) else None
    for parameter in spec.parameters:
        given = raw.get(parameter.name)
        if given is None or not str(given).strip():
            if parameter.default is not None:
                values[parameter.name] = parameter.default
            elif parameter.required:
                choices = None
                if parameter.type in ("service", "job"):
                    catalog = catalog or await _catalog(turn)
                    choices = _catalog_choices(catalog, parameter)
                _ask(turn, spec, parameter, raw, choices, catalog=catalog)
                return
            continue
        value, problem = parameter.normalise(given)
        if problem:
            others = {k: v for k, v in raw.items() if k != parameter.name}
            _ask(turn, spec, parameter, others, problem=f"{problem[0].upper()}{problem[1:]}",
                 catalog=catalog)
            return
        assert value is not None
        if parameter.type in ("service", "job"):
            catalog = catalog or await _catalog(turn)
            if catalog is not None:
                resolved = _resolve(turn, spec, parameter, value, raw, catalog)
                if resolved is None:
                    return
                value, note = resolved
                if note:
                    notes.append(note)
        values[parameter.name] = value
    turn.events.append(SlotSet(REQUEST_SLOT, None))
    if spec.risk == "read":
        decision = decide(turn, spec.name, values)
        if not decision.allowed or (decision.risk == "read" and not decision.approval_roles):
            await _answer_read(turn, spec, values, decision)
            return
        # A policy rule made this read a change (or asks for a second person): it gets the
        # preview and the confirmation like one.
    prepared = _prepare_or_say(turn, spec, values)
    if prepared is None:
        return
    decided = dict(values)
    if isinstance(spec.run, JenkinsRun):
        job = await _job_of(turn, prepared.job)
        if job is None:
            return
        # The policy decides on what reaches Jenkins, whatever the operation calls it.
        jenkins = turn.runtime.backends.connected(JENKINS)  # _job_of found the job there
        defaults = await jenkins.parameter_defaults(job.full_name) if job.parameters else {}
        reach = job_reach(job, prepared.parameters, defaults)
        decided.update(reach)
        if reach:
            environment = reach[JOB_ENVIRONMENT]
            notes.insert(0, f"\n{job.full_name} is a deploy job: this deploys to {environment}, "
                            f"so the rules for deploying to {environment} apply.")
    summary = _preview(spec, values, prepared) + "".join(notes)
    operation = await propose(turn, spec.name, decided, summary)
    if operation is not None:
        # The confirmation is for this very call: if the file changes before it, nothing runs.
        turn.runtime.store.update_backend_ref(operation.id, previewed=_digest(spec, prepared))


def _digest(spec: OperationSpec, prepared: Prepared) -> str:
    """What a preview stands for, as a digest: the call made without an id (secrets
    masked) and the file's run section as written (which variables, timeouts, statuses)."""
    text = "\n".join((prepared.show(), repr(spec.run), spec.risk))
    return hashlib.sha256(text.encode()).hexdigest()


def _call_digest(spec: OperationSpec, values: Mapping[str, str], requester: str) -> str:
    return _digest(spec, prepare(spec, values, requester=requester, operation_id=""))


async def _catalog(turn: Turn) -> Catalog | None:
    jenkins = turn.runtime.backends.get(JENKINS)
    if jenkins is None:
        return None
    return Catalog(await jenkins.jobs(), turn.runtime.services.job_claims())


def _catalog_choices(catalog: Catalog | None, parameter: Parameter) -> list[str] | None:
    if catalog is None:
        return None
    if parameter.type == "service":
        return sorted(catalog.services)
    return sorted(catalog.jobs)


def _resolve(turn: Turn, spec: OperationSpec, parameter: Parameter, value: str,
             raw: Mapping[str, str], catalog: Catalog) -> tuple[str, str] | None:
    """A service or job named as Jenkins knows it, or a question (did you mean ...)."""
    found = (catalog.resolve_service(value) if parameter.type == "service"
             else catalog.resolve_job(value))
    others = {k: v for k, v in raw.items() if k != parameter.name}
    if found.match:
        note = "" if found.exact else f" (I took \"{value}\" to mean {found.match}.)"
        return found.match, note
    what = "service" if parameter.type == "service" else "job"
    if found.ambiguous:
        _ask(turn, spec, parameter, others, list(found.candidates),
             problem=f"\"{value}\" could be several {what}s", catalog=catalog)
        return None
    known = _permitted(turn, spec, parameter, others, _catalog_choices(catalog, parameter) or [],
                       catalog)
    turn.say(f"I can't find a {what} called \"{value}\" in Jenkins, so I can't "
             f"{spec.description[:1].lower() + spec.description[1:].rstrip('.')} for it. "
             f"Known {what}s: {', '.join(known[:12]) or 'none'}. Nothing ran.")
    turn.events.append(SlotSet(REQUEST_SLOT, None))
    return None


def _prepare_or_say(turn: Turn, spec: OperationSpec, values: Mapping[str, str],
                    operation_id: str = "") -> Prepared | None:
    try:
        return prepare(spec, values, requester=turn.who.person, operation_id=operation_id)
    except OpsbotError as exc:
        turn.say(f"I can't run {spec.name}: {exc} Nothing ran.")
        return None


def _preview(spec: OperationSpec, values: Mapping[str, str], prepared: Prepared) -> str:
    shown = "; ".join(f"{p.name}: {values[p.name]}" for p in spec.parameters if p.name in values)
    head = f"{spec.description.rstrip('.')}" + (f" with {shown}." if shown else ".")
    return f"{head}\n{_call_line(prepared)}"


def _call_line(prepared: Prepared) -> str:
    if prepared.kind == "command":
        shown = [Path(prepared.argv[0]).name, *prepared.argv[1:]]
        return "It runs: " + mask(shlex.join(shown), prepared.secrets)
    if prepared.kind == "http":
        return f"It sends: {prepared.method} {mask(prepared.url, prepared.secrets)}"
    params = ", ".join(f"{k}={v}" for k, v in prepared.shown_parameters().items())
    return f"It starts the Jenkins job {prepared.job}" + (f" with {params}." if params else ".")


async def _job_of(turn: Turn, job: str) -> Job | None:
    """The Jenkins job an operation starts, or None (said why)."""
    jenkins = turn.backend(JENKINS)
    if jenkins is None:
        return None
    try:
        return await jenkins.job(job)
    except NotFound:
        turn.say(f"Jenkins has no job {job}; check the operation file. Nothing ran.")
        return None


async def _answer_read(turn: Turn, spec: OperationSpec, values: dict[str, str],
                       decision: Decision) -> None:
    """Run a read the policy has decided on (``decision``, for these values)."""
    if not decision.allowed:
        reason = decision.reason or "policy.yml does not allow it."
        record_refusal(turn, spec.name, values, decision.risk, reason)
        turn.say(f"I can't do that for you: {reason} Nothing ran.")
        return
    prepared = _prepare_or_say(turn, spec, values)
    if prepared is None:
        return
    if isinstance(spec.run, CommandRun):
        run = spec.run
        # Its own threads: slow reads must not hold the ones Jenkins and Jira calls use.
        result = await asyncio.get_running_loop().run_in_executor(
            _READS, run_command, prepared, run.timeout, run.output_limit)
        reply, outcome = _command_reply(spec, values, prepared, result)
        turn.say(reply)
        record_read(turn, values, result=outcome.result, detail=outcome.audit)
        return
    outcome = await _run_once(turn.runtime, spec, prepared, None)
    turn.say(outcome.reply)
    record_read(turn, values, result=outcome.result, detail=outcome.audit)


# -- running -------------------------------------------------------------------------------


def _fill(template: str, values: Mapping[str, str]) -> str:
    def one(match: re.Match[str]) -> str:
        token = match.group(0)
        if token in ("{{", "}}"):
            return token[0]
        return values.get(match.group(1).strip(), "")

    return PLACEHOLDER.sub(one, template)


def _masked(text: str, prepared: Prepared) -> str:
    return mask(_redact.mask(text), prepared.secrets)


def _command_reply(spec: OperationSpec, values: Mapping[str, str], prepared: Prepared,
                   result: CommandResult) -> tuple[str, Outcome]:
    output = _masked(result.output, prepared)
    tail = last_lines(output)
    took = duration(result.duration_s)
    context = {**values, "exit_code": "" if result.exit_code is None else str(result.exit_code),
               "output": tail}
    if result.error:
        head, code = f"{spec.description.rstrip('.')} did not start: {result.error}.", "NOT_STARTED"
    elif result.timed_out:
        head = (f"{spec.description.rstrip('.')} took longer than "
                f"{duration(_timeout(spec))} and was stopped (its whole process group was killed).")
        code = "TIMEOUT"
    else:
        ok = result.exit_code == 0
        head = _headline(spec, ok, context, f"done in {took}",
                         f"exit code {result.exit_code} after {took}")
        code = "SUCCESS" if ok else f"EXIT_{result.exit_code}"
    if result.dropped_bytes:
        head += f" (The first {result.dropped_bytes} bytes of output were cut.)"
    reply = head + (f"\n```\n{tail}\n```" if tail.strip() else "")
    audit = {"call": prepared.as_audit(), "exit_code": result.exit_code,
             "timed_out": result.timed_out, "duration_s": round(result.duration_s, 3),
             "output": output, "output_bytes_cut": result.dropped_bytes}
    return reply, Outcome(reply, {}, result=code, audit=audit)


def _headline(spec: OperationSpec, ok: bool, context: Mapping[str, str], done: str,
              failed: str) -> str:
    """The file's ``success`` / ``failure`` message, or a plain sentence."""
    what = spec.description.rstrip(".")
    if ok:
        return _fill(spec.success, context) if spec.success else f"{what}: {done}."
    return _fill(spec.failure, context) if spec.failure else f"{what} failed: {failed}."


def _timeout(spec: OperationSpec) -> float:
    return spec.run.timeout if isinstance(spec.run, (CommandRun, HttpRun)) else 0.0


async def _run_once(rt: _runtime.Runtime, spec: OperationSpec, prepared: Prepared,
                    operation: Operation | None) -> Outcome:
    """One HTTP request or Jenkins start (commands: ``_run_command``)."""
    run = spec.run
    values = operation.parameters if operation else {}
    if isinstance(run, HttpRun):
        answer_ = await send_http(prepared, run.timeout, run.expect)
        context = {**values, "status": str(answer_.status), "output": answer_.excerpt}
        head = _headline(spec, answer_.expected, context, f"done (HTTP {answer_.status})",
                         f"HTTP {answer_.status}")
        code = "SUCCESS" if answer_.expected else f"HTTP_{answer_.status}"
        body = answer_.excerpt.strip()
        reply = head + (f"\n```\n{body[-1500:]}\n```" if body else "")
        return Outcome(reply, {"status": answer_.status}, result=code,
                       audit={"call": prepared.as_audit(), "status": answer_.status,
                              "response": body, "duration_s": round(answer_.duration_s, 3)})
    assert isinstance(run, JenkinsRun) and operation is not None
    job = await rt.backends.connected(JENKINS).job(prepared.job)
    what = f"{spec.description[:1].lower() + spec.description[1:].rstrip('.')}"
    outcome = await start_job(rt, operation, job, dict(prepared.parameters), what,
                              private=prepared.private)
    ref = {**outcome.ref, "starts_build": True}
    if run.follow:
        return dataclasses.replace(outcome, ref=ref)
    if outcome.unknown:
        return dataclasses.replace(outcome, ref=ref, follow=True)
    reply = outcome.reply.replace(" I'll post the result here when it finishes.", "")
    return Outcome(reply, ref, audit={"call": prepared.as_audit()})


async def execute(rt: _runtime.Runtime, operation: Operation) -> Outcome:
    """Run a confirmed team-defined operation (exactly once: ``confirmations`` claimed it)."""
    spec = operations().get(operation.intent)
    if spec is None:
        raise BackendUnavailable(f"the operation {operation.intent} is no longer defined (its "
                                 "file was removed or has errors).", backend="the operation")
    previewed = operation.backend_ref.get("previewed")
    if previewed != _call_digest(spec, operation.parameters, operation.requester):
        raise BackendUnavailable(
            f"the operation file of {operation.intent} ({spec.path.name}) changed since the "
            "preview, so what it runs is no longer what you confirmed. Ask again to see the "
            "new preview.", backend="the operation")
    prepared = prepare(spec, operation.parameters, requester=operation.requester,
                       operation_id=operation.id)
    if not isinstance(spec.run, CommandRun):
        return await _run_once(rt, spec, prepared, operation)
    return await _run_command(spec, prepared, operation)


async def _run_command(spec: OperationSpec, prepared: Prepared, operation: Operation) -> Outcome:
    """Wait ``reply_within`` for the command; past that, its end is posted when it comes."""
    run = spec.run
    assert isinstance(run, CommandRun)
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1,
                                                 thread_name_prefix="opsbot-operation")
    future = pool.submit(run_command, prepared, run.timeout, run.output_limit)
    pool.shutdown(wait=False)
    try:
        result = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)),
                                        timeout=run.reply_within)
    except TimeoutError:
        WATCHER.keep(operation.id)  # its lease stays with this replica until it ends
        future.add_done_callback(lambda done: _finish_later(spec, prepared, operation, done))
        return Outcome(
            f"Confirmed by {operation.confirmed_by}: {spec.description[:1].lower()}"
            f"{spec.description[1:].rstrip('.')} is running ({operation.id}). I'll post the "
            "result here when it finishes.", {"call": prepared.as_audit()}, follow=True)
    reply, outcome = _command_reply(spec, operation.parameters, prepared, result)
    return outcome


def _finish_later(spec: OperationSpec, prepared: Prepared, operation: Operation,
                  done: concurrent.futures.Future[CommandResult]) -> None:
    """A long command ended: record its result and post it in the conversation."""
    try:
        result = done.result()
        reply, outcome = _command_reply(spec, operation.parameters, prepared, result)
        store = _runtime.runtime().store
        won = store.transition(operation.id, {EXECUTING},
                               SUCCEEDED if outcome.succeeded else FAILED, actor="command",
                               event="finished", detail=outcome.audit, result=outcome.result,
                               result_detail=reply, finished_at=datetime.now(UTC))
        if won is not None:
            notify(operation.sender_id)
    except Exception:  # noqa: BLE001 - a background end must never die silently
        logger.exception("finishing operation %s failed", operation.id)
    finally:
        WATCHER.release(operation.id)


def _interrupted(operation: Operation) -> None:
    """A command that was running when its action server stopped (its lease ran out): its
    end is not known."""
    command = " ".join(str(a) for a in operation.backend_ref.get("call", {}).get("argv", [])[:1])
    message = (f"opsbot restarted while {operation.intent.replace('_', ' ')} ({operation.id}) was "
               f"running{' (' + command + ')' if command else ''}, so I do not know how it "
               "ended (or whether it happened). Check its effect before asking again; it will "
               "not run again by itself.")
    won = _runtime.runtime().store.transition(
        operation.id, {EXECUTING}, ERROR, actor="opsbot", event="interrupted",
        detail={"reason": "the action server restarted while it ran"},
        result="interrupted", result_detail=message, finished_at=datetime.now(UTC))
    if won is not None:
        threading.Thread(target=notify, args=(operation.sender_id,), daemon=True,
                         name="opsbot-notify").start()


def completion(operation: Operation) -> str:
    """What opsbot says when a followed team-defined operation has ended."""
    spec = operations().get(operation.intent)
    if operation.backend_ref.get("starts_build"):
        if spec is not None and spec.success and operation.result == "SUCCESS":
            ref = operation.backend_ref
            build = f"{ref.get('job')} #{ref.get('build_number')}" if ref.get("build_number") \
                else str(ref.get("job"))
            return _fill(spec.success, {**operation.parameters, "build": build})
        return completion_message(operation)
    return operation.result_detail or (
        f"{operation.intent.replace('_', ' ')} ({operation.id}) finished: "
        f"{operation.result or 'UNKNOWN'}.")
