"""Why did a Jenkins build fail? Reads a console log and finds the stage, the error, a summary.

Pure text in, text out: no Jenkins, no I/O. The detectors know the tools people build
with on Jenkins (pytest, Maven/javac, Gradle, Go, npm/jest/Playwright, Helm/kubectl,
Jenkins' own timeout and abort messages) and fall back to generic ``error:`` and
exception lines. A new detector is a function in ``_DETECTORS`` that returns findings.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["MAX_ERROR_LINES", "NO_ERROR_SUMMARY", "analyse_console"]

MAX_ERROR_LINES = 8
"""At most this many error lines are returned: enough to act on, short enough for a chat."""

NO_ERROR_SUMMARY = "no recognisable error in the log"
"""The summary when no detector matched; callers may replace it with something better."""

_MAX_SUMMARY = 140
_MAX_LINES = 20_000  # analysed from the end of a log; earlier lines only give stages
_TAIL_LINES = 5  # context shown when the only clue is an exit code or nothing at all

# Ranks: the lowest-ranked finding explains the failure.
_TIMEOUT, _ABORT, _COMPILE, _TESTS, _LINT, _ERROR, _STEP = range(7)


@dataclass(frozen=True)
class _Line:
    number: int  # position in the cleaned log
    text: str  # without timestamps or colour codes, right-stripped, indentation kept
    stage: str | None  # the pipeline stage being run when the line was printed

    @property
    def shown(self) -> str:
        """The line as a person should see it: no indentation, level tag or workspace prefix."""
        return _shorten(_LEVEL_TAG.sub("", self.text.strip()))


@dataclass(frozen=True)
class _Finding:
    rank: int
    anchor: int  # the line that places the failure (its stage is the failing stage)
    lines: tuple[int, ...]  # the lines worth showing, by number
    summary: str


# -- cleaning -----------------------------------------------------------------------------

_HIDDEN_NOTE = re.compile(r"\x1b\[8m.*?\x1b\[0m")  # Jenkins' ConsoleNote annotations
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07")
_TIMESTAMP = re.compile(
    r"^(?:\[?\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(?:[.,]\d+)?(?:Z|[+-]\d{2}:?\d{2})?\]?"
    r"|\[?\d{2}:\d{2}:\d{2}(?:[.,]\d+)?\]?)\s+"
)
_STAGE_START = re.compile(r"^\[Pipeline\] \{ \((.+)\)$")
_STAGE_SKIPPED = re.compile(r'^Stage "(.+)" skipped due to')
_NOISE = re.compile(
    r"^(?:\[Pipeline\]|\[INFO\]|\[DEBUG\]|\[Checks API\]|\[WARNING\]|"
    r"> git |Fetching (?:changes|upstream)|Checking out Revision|Commit message:|"
    r"First time build|Cloning (?:the remote Git repository|repository)|"
    r"The recommended git tool is|No credentials specified|using credential|"
    r"Avoid second fetch|Seen branch|Selected Git installation|Using shallow clone|"
    r"Cleaning workspace|Resetting working tree|Started by|Running on|Running as|"
    r"Building (?:in workspace|remotely on)|Finished: |Recording test results|"
    r"Waiting for (?:next available executor|Jenkins to finish)|\+ |\$ |Obtained Jenkinsfile|"
    r"Loading library|Attempting to resolve|"
    r"Notifying upstream|Triggering a new build|Archiving artifacts|"
    r"Setting status of |GitHub has been notified|\[[\w./@-]+\] \$ )"
)
_PROGRESS = re.compile(r"^[.FEsxX]+\s*\[\s*\d+%\]$")  # pytest's dots
_STACK_FRAME = re.compile(r"^\s*(?:at [\w$.<>/@:-]+[( ]|\.\.\. \d+ more|\tat )")
_LEVEL_TAG = re.compile(r"^\[(?:ERROR|WARNING)\]\s+")
_WORKSPACE = re.compile(r"(?:file://)?(?:/[^\s/:\[\]'\"]+)*/workspace/[^\s/:\[\]'\"]+/")


def _shorten(text: str) -> str:
    """Drop the Jenkins workspace prefix from paths: the part a developer recognises stays."""
    return _WORKSPACE.sub("", text)


def _tidy_line(raw: str) -> str:
    raw = raw.rsplit("\r", 1)[-1]  # a progress bar's last redraw is what was seen
    line = _ANSI.sub("", _HIDDEN_NOTE.sub("", raw)).rstrip()
    return _TIMESTAMP.sub("", line, count=1)


def _track_stage(line: str, stages: list[str]) -> None:
    """Update the stages entered so far; a skipped stage is taken back."""
    started = _STAGE_START.match(line)
    if started:
        name = started.group(1)
        if name.startswith("Declarative: "):
            name = name.removeprefix("Declarative: ")
            if name == "Post Actions":  # runs after the failure; never the culprit
                name = ""
        if name and not name.startswith("Branch: "):
            stages.append(name)
        return
    skipped = _STAGE_SKIPPED.match(line)
    if skipped and stages and stages[-1] == skipped.group(1):
        stages.pop()


def _clean(text: str) -> list[_Line]:
    """The log's last lines without colours or timestamps, each tagged with its stage.

    A failure is explained by the end of a log, so only the last ``_MAX_LINES`` lines are
    analysed; earlier ones are only read for pipeline stage markers.
    """
    raw_lines = text.replace("\r\n", "\n").split("\n")
    head, tail = raw_lines[:-_MAX_LINES], raw_lines[-_MAX_LINES:]
    stages: list[str] = []
    for raw in head:
        if "[Pipeline] { (" in raw or "skipped due to" in raw:
            _track_stage(_tidy_line(raw), stages)
    lines: list[_Line] = []
    for raw in tail:
        line = _tidy_line(raw)
        _track_stage(line, stages)
        lines.append(_Line(len(lines), line, stages[-1] if stages else None))
    return lines


def _is_noise(line: _Line) -> bool:
    text = line.text.strip()
    return (not text or bool(_NOISE.match(text)) or bool(_PROGRESS.match(text))
            or bool(_STACK_FRAME.match(line.text)) or _is_maven_chatter(text))


_MAVEN_CHATTER = re.compile(
    r"^\[ERROR\]\s*(?:$|-> \[Help|\[Help \d\]|To see the full stack trace|Re-run Maven|"
    r"For more information about the errors|After correcting the problems|mvn <args>|"
    r"Please refer to|COMPILATION ERROR\s*:|Failures:\s*$|Errors:\s*$|Tests in error:)"
)


def _is_maven_chatter(text: str) -> bool:
    return bool(_MAVEN_CHATTER.match(text))


# -- detectors ----------------------------------------------------------------------------

Detector = Callable[[list[_Line]], Iterator[_Finding]]


def _clip(text: str, limit: int = _MAX_SUMMARY) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _context_before(lines: list[_Line], index: int, count: int) -> list[int]:
    """The last ``count`` meaningful lines before ``index``: what the build was doing."""
    found: list[int] = []
    for line in reversed(lines[:index]):
        if len(found) == count:
            break
        if not (_is_noise(line) or _TIMEOUT_LINE.search(line.text)
                or _TIMEOUT_SET.search(line.text)):
            found.append(line.number)
    return sorted(found)


_TIMEOUT_LINE = re.compile(
    r"Build timed out \(after (\d+) minutes?\)|Timeout has been exceeded|"
    r"Cancelling nested steps due to timeout"
)
_TIMEOUT_SET = re.compile(r"Timeout set to expire (?:in|after) (.+?)\s*$")


def _timeouts(lines: list[_Line]) -> Iterator[_Finding]:
    """The build-timeout plugin and the pipeline ``timeout`` step."""
    limit: str | None = None
    for line in lines:
        match = _TIMEOUT_SET.search(line.text)
        if match:
            limit = match.group(1)
            continue
        match = _TIMEOUT_LINE.search(line.text)
        if not match:
            continue
        if match.group(1):
            minutes = int(match.group(1))
            summary = f"timed out after {minutes} minute{'s' if minutes != 1 else ''}"
        else:
            summary = f"timed out after {limit}" if limit else "timed out"
        context = _context_before(lines, line.number, 2)
        yield _Finding(_TIMEOUT, line.number, (*context, line.number), summary)
        return


_ABORTED_BY = re.compile(r"^(?:Aborted|Rejected) by (.+)$")


def _aborts(lines: list[_Line]) -> Iterator[_Finding]:
    """Someone pressed stop, or answered no at an ``input`` step."""
    for line in lines:
        match = _ABORTED_BY.match(line.text.strip())
        if match:
            verb = "rejected at an input step" if line.text.strip().startswith("Rejected") \
                else "aborted"
            context = _context_before(lines, line.number, 2)
            yield _Finding(_ABORT, line.number, (*context, line.number),
                           f"{verb} by {match.group(1)}")
            return


_MAVEN_COMPILE = re.compile(r"^\[ERROR\] (\S+\.(?:java|kt|scala|groovy)):\[(\d+),\d+\] (.+)$")
_GO_COMPILE = re.compile(r"^(?:\./)?(\S+\.go):(\d+):\d+: (.+)$")
_CC_COMPILE = re.compile(r"^(\S+\.\w+):(\d+):(?:\d+:)?\s*(?:fatal )?error:\s*(.+)$")
_TSC_COMPILE = re.compile(
    r"^(\S+\.tsx?)(?:\((\d+),\d+\): error|:(\d+):\d+ - error) (TS\d+: .+)$")
_KOTLIN_COMPILE = re.compile(r"^e: (?:file://)?(\S+\.kts?):\(?(\d+)[,:] ?\d+\)?:? (.+)$")
_RUST_ERROR = re.compile(r"^error(?:\[E\d+\])?: (.+)$")
_RUST_WHERE = re.compile(r"^\s*--> (\S+?):(\d+):\d+$")
_SYMBOL = re.compile(r"^(?:\[ERROR\])?\s+symbol:\s")


def _compile_errors(lines: list[_Line]) -> Iterator[_Finding]:
    """javac (Maven, Gradle, plain), Go, C/C++, TypeScript, Kotlin and Rust compile errors."""
    errors: list[tuple[int, str, str, str]] = []  # (line, file, line number, message)
    shown: list[int] = []
    seen: set[tuple[str, str, str]] = set()
    for line in lines:
        text = line.text.strip()
        where: tuple[str, str, str] | None = None
        for pattern in (_MAVEN_COMPILE, _GO_COMPILE, _CC_COMPILE, _KOTLIN_COMPILE):
            match = pattern.match(text)
            if match:
                where = (match.group(1), match.group(2), match.group(3))
                break
        else:
            match = _TSC_COMPILE.match(text)
            if match:
                where = (match.group(1), match.group(2) or match.group(3), match.group(4))
            else:
                match = _RUST_WHERE.match(line.text)
                previous = lines[line.number - 1].text if line.number else ""
                rust = _RUST_ERROR.match(previous)
                if match and rust:
                    where = (match.group(1), match.group(2), rust.group(1))
        if where is None:
            if _SYMBOL.match(line.text) and shown and shown[-1] == line.number - 1:
                shown.append(line.number)  # javac's "symbol: method applyTax(...)"
            continue
        if where[0].endswith("_test.go") and not where[2].startswith(("undefined", "cannot")):
            continue  # "x_test.go:12:3: got 1" is a test's message, not a compiler's
        key = (where[0].rsplit("/", 1)[-1], where[1], where[2])
        if key in seen:
            continue
        seen.add(key)
        errors.append((line.number, *where))
        shown.append(line.number)
    if not errors:
        return
    first, path, number, message = errors[0]
    kind = "type error" if path.endswith(".py") else "compile error"
    where_text = f"{path.rsplit('/', 1)[-1]}:{number}"
    if len(errors) == 1:
        summary = f"{kind} in {where_text}: {message}"
    else:
        summary = f"{len(errors)} {kind}s, first in {where_text}: {message}"
    yield _Finding(_COMPILE, first, tuple(shown), _clip(summary))


_PYTEST_COUNTS = re.compile(
    r"^=*\s*((?:\d+ (?:failed|passed|skipped|errors?|xfailed|xpassed|warnings?|deselected|"
    r"rerun)(?:, )?)+) in [\d.]+s(?: \([^)]*\))?\s*=*$"
)
_PYTEST_FAILED = re.compile(
    r"^(?:FAILED|ERROR) (\S+?(?:::[^ \[]+(?:\[[^\]]*\])?|\.py))(?: - .*)?$")
_UNITTEST_FAILED = re.compile(r"^FAILED \(((?:\w+=\d+(?:, )?)+)\)$")
_UNITTEST_RAN = re.compile(r"^Ran (\d+) tests? in ")
_PYTEST_HEADER = re.compile(r"^_{3,} (?:ERROR at \w+ of )?(\S+) _{3,}$")
_PYTEST_E = re.compile(r"^E\s{2,}\S")
_PYTEST_WHERE = re.compile(r"^\S+\.py:\d+: \w+$")
_SUREFIRE_TOTAL = re.compile(
    r"^(?:\[(?:ERROR|WARNING|INFO)\] )?Tests run: (\d+), Failures: (\d+), Errors: (\d+), "
    r"Skipped: (\d+)$")
_SUREFIRE_CLASS = re.compile(r"Tests run: .*<<< (?:FAILURE|ERROR)!")
_SUREFIRE_METHOD = re.compile(r"^(?:\[ERROR\] )?(\S+?)(?:\(\S*\))?\s+(?:-- )?Time elapsed: .*"
                              r"<<< (?:FAILURE|ERROR)!$")
_SUREFIRE_DETAIL = re.compile(r"^\[ERROR\] {2,}(\S+:\d+ .+|\S+ » .+)$")
_JAVA_THROWABLE = re.compile(r"^[\w.$]+(?:Error|Exception|Failure)\w*(?::|$)")
_GRADLE_FAILED = re.compile(r"^(\S.*) > (.+) FAILED$")
_GRADLE_COUNTS = re.compile(r"^(\d+) tests? completed, (\d+) failed(?:, (\d+) skipped)?$")
_JEST_FAIL = re.compile(r"^FAIL\s+\S+")
_JEST_TEST = re.compile(r"^● (?!Console)(.+ › .+)$")
_JEST_COUNTS = re.compile(r"^Tests:\s+(.*\d+ failed.*), \d+ total$")
_PLAYWRIGHT_FAILED = re.compile(r"^(\d+) failed$")
_PLAYWRIGHT_TEST = re.compile(r"^(?:✘\s+\d+\s+|\d+\) )?\[[\w-]+\] › .+")
_PLAYWRIGHT_PASSED = re.compile(r"^(\d+) passed \(")
_MOCHA_FAILING = re.compile(r"^(\d+) failing$")
_MOCHA_PASSING = re.compile(r"^(\d+) passing \(")
_GO_FAIL = re.compile(r"^--- FAIL: (\S+)")
_GO_PACKAGE_FAIL = re.compile(r"^FAIL\s+\S+\s+[\d.]+s$")
_GO_TEST_MESSAGE = re.compile(r"^\s+\S+_test\.go:\d+: ")


class _TestRun:
    """What the test detector has seen so far."""

    def __init__(self) -> None:
        self.shown: list[int] = []
        self.names: list[str] = []
        self.counts: str | None = None
        self.e_lines = 0
        self.ran: int | None = None  # unittest's "Ran 12 tests"
        self.where_seen = False
        self.expect_e = False  # a pytest failure header was seen; its first E line follows
        self.expect_throwable = False  # a JUnit method failed; its exception follows
        self.in_go_failure = False
        self.playwright: list[int | None] = [None, None]  # failed, passed
        self.mocha: list[int | None] = [None, None]  # failing, passing

    def show(self, line: _Line) -> None:
        self.shown.append(line.number)


def _test_line(run: _TestRun, line: _Line, following: _Line | None) -> None:
    """Feed one line to the test detector."""
    text = line.text.strip()
    if run.in_go_failure and _GO_TEST_MESSAGE.match(line.text):
        run.show(line)
        return
    run.in_go_failure = False
    if run.expect_throwable:
        run.expect_throwable = False
        if _JAVA_THROWABLE.match(text):
            run.show(line)
            return
    if match := _PYTEST_COUNTS.match(text):
        if re.search(r"\d+ (?:failed|errors?)\b", match.group(1)):
            run.counts = ", ".join(p for p in match.group(1).split(", ")
                                   if re.search(r"failed|error|passed", p))
            run.show(line)
    elif match := _PYTEST_FAILED.match(text):
        run.names.append(match.group(1).rsplit("::", 1)[-1])
        run.show(line)
    elif match := _UNITTEST_RAN.match(text):
        run.ran = int(match.group(1))
    elif match := _UNITTEST_FAILED.match(text):
        tally = {key: int(value) for key, value in
                 (part.split("=") for part in match.group(1).split(", "))}
        failed = tally.get("failures", 0) + tally.get("errors", 0)
        passed = f", {run.ran - failed - tally.get('skipped', 0)} passed" if run.ran else ""
        run.counts = f"{failed} failed{passed}"
        run.show(line)
    elif _PYTEST_HEADER.match(text):
        run.expect_e = True
    elif _PYTEST_E.match(line.text):
        if run.expect_e and run.e_lines < 3:
            run.e_lines += 1
            run.show(line)
        run.expect_e = False
    elif _PYTEST_WHERE.match(text) and run.e_lines and not run.where_seen:
        run.where_seen = True
        run.show(line)
    elif match := _SUREFIRE_TOTAL.match(text):
        tests, failures, errors, skipped = (int(group) for group in match.groups())
        if failures or errors:
            run.counts = f"{failures + errors} failed, {tests - failures - errors - skipped} passed"
            run.show(line)
    elif _SUREFIRE_CLASS.search(text):
        run.show(line)
    elif match := _SUREFIRE_METHOD.match(text):
        run.names.append(match.group(1).rsplit(".", 1)[-1])
        run.expect_throwable = True
    elif _SUREFIRE_DETAIL.match(line.text):
        run.show(line)
    elif match := _GRADLE_FAILED.match(text):
        run.names.append(match.group(2))
        run.show(line)
        if following is not None and following.text.startswith((" ", "\t")):
            run.show(following)
    elif match := _GRADLE_COUNTS.match(text):
        tests, failed = int(match.group(1)), int(match.group(2))
        run.counts = f"{failed} failed, {tests - failed - int(match.group(3) or 0)} passed"
        run.show(line)
    elif _JEST_FAIL.match(text) or _GO_PACKAGE_FAIL.match(text):
        run.show(line)
    elif match := _JEST_TEST.match(text):
        run.names.append(match.group(1))
        run.show(line)
    elif match := _JEST_COUNTS.match(text):
        run.counts = ", ".join(p for p in match.group(1).split(", ") if "skipped" not in p)
        run.show(line)
    elif match := _PLAYWRIGHT_FAILED.match(text):
        run.playwright[0] = int(match.group(1))
        run.show(line)
    elif run.playwright[0] is not None and _PLAYWRIGHT_TEST.match(text):
        run.names.append(text.rsplit(" › ", 1)[-1].split(" ─")[0].strip())
        run.show(line)
    elif match := _PLAYWRIGHT_PASSED.match(text):
        run.playwright[1] = int(match.group(1))
    elif match := _MOCHA_FAILING.match(text):
        run.mocha[0] = int(match.group(1))
        run.show(line)
    elif match := _MOCHA_PASSING.match(text):
        run.mocha[1] = int(match.group(1))
    elif match := _GO_FAIL.match(text):
        run.names.append(match.group(1))
        run.show(line)
        run.in_go_failure = True


def _tests(lines: list[_Line]) -> Iterator[_Finding]:
    """Failed tests: pytest, JUnit via Maven or Gradle, jest, Playwright, mocha, go test."""
    run = _TestRun()
    for line in lines:
        _test_line(run, line, lines[line.number + 1] if line.number + 1 < len(lines) else None)
    counts = run.counts
    for failed, passed in (run.playwright, run.mocha):
        if counts is None and failed:
            counts = f"{failed} failed, {passed or 0} passed"
    if not run.shown or (counts is None and not run.names):
        return
    if counts is None:
        names = list(dict.fromkeys(run.names))
        more = f" and {len(names) - 2} more" if len(names) > 2 else ""
        counts = ", ".join(names[:2]) + more
    yield _Finding(_TESTS, run.shown[0], tuple(dict.fromkeys(run.shown)),
                   _clip(f"tests failed: {counts}"))


_ESLINT = re.compile(r"^✖ (\d+) problems? \((\d+) errors?, \d+ warnings?\)$")
_RUFF = re.compile(r"^Found (\d+) errors?\.?(?: \(|$)")
_FLAKE8 = re.compile(r"^\S+\.py:\d+:\d+: [A-Z]+\d+ ")


def _lint(lines: list[_Line]) -> Iterator[_Finding]:
    """Linters that fail a build: eslint, ruff, flake8."""
    problems = [line.number for line in lines if _FLAKE8.match(line.text.strip())]
    for line in lines:
        text = line.text.strip()
        match = _ESLINT.match(text) or _RUFF.match(text)
        if match and int(match.group(2) if match.re is _ESLINT else match.group(1)):
            errors = int(match.group(2) if match.re is _ESLINT else match.group(1))
            shown = tuple(problems[:MAX_ERROR_LINES - 1]) + (line.number,)
            yield _Finding(_LINT, problems[0] if problems else line.number, shown,
                           f"lint failed: {errors} error{'s' if errors != 1 else ''}")
            return


_GENERIC = re.compile(
    r"^(?:\[ERROR\] )?(?:ERROR|Error|error|FATAL|Fatal|fatal)(?:\[[^\]]*\])?:\s*(\S.*)$"
)
_EXCEPTION = re.compile(
    r"^(?:Caused by: )?((?:[a-z_$][\w$]*\.)*[A-Z][\w$]*(?:Exception|Error))(?::\s+(.*))?$"
)
_KNOWN_TROUBLE = re.compile(
    r"No space left on device|: command not found$|Permission denied|OOMKilled|"
    r"Could not resolve host|Connection refused|Segmentation fault|^Killed$"
)
_MAVEN_GOAL = re.compile(r"^\[ERROR\] Failed to execute goal (\S+?)(?: \([^)]*\))? on project "
                         r"\S+?: (.+?)(?: -> \[Help \d\])?$")
_GRADLE_WRONG = re.compile(r"^\* What went wrong:$")
_EXIT_CODE = re.compile(r"^ERROR: script returned exit code (\d+)$")


def _errors(lines: list[_Line]) -> Iterator[_Finding]:
    """Generic ``error:`` lines, exceptions, Maven goals, Gradle's "What went wrong"."""
    found: list[tuple[int, str]] = []
    for line in lines:
        text = line.text.strip()
        if _EXIT_CODE.match(text) or _is_maven_chatter(text):
            continue
        match = _MAVEN_GOAL.match(text)
        if match:
            found.append((line.number, f"{match.group(1)} failed: {match.group(2)}"))
            continue
        if _GRADLE_WRONG.match(text):
            following = next((n for n in lines[line.number + 1:line.number + 3]
                              if n.text.strip()), None)
            if following is not None:
                found.append((following.number, following.text.strip()))
            continue
        if _GENERIC.match(text) or _EXCEPTION.match(text) or _KNOWN_TROUBLE.search(text):
            found.append((line.number, text))
    if not found:
        return
    numbers = tuple(dict.fromkeys(number for number, _ in found))
    yield _Finding(_ERROR, found[0][0], numbers, _clip(_shorten(found[0][1])))


_STEP_FAILED = re.compile(r"^Build step '(.+)' marked build as failure$")
_NPM_ERROR = re.compile(r"^npm (?:ERR!|error) (?!code |errno |A complete log|This is probably"
                        r"|Failed at the|Exit status|\s*$|/)(.+)$")
_KILLED_CODES = {137: "was killed (exit code 137, often out of memory)",
                 143: "was terminated (exit code 143)"}


def _steps(lines: list[_Line]) -> Iterator[_Finding]:
    """The last resort: a shell step's exit code, or npm's wrapper errors."""
    for line in lines:
        text = line.text.strip()
        exit_code = _EXIT_CODE.match(text)
        step = _STEP_FAILED.match(text)
        npm = _NPM_ERROR.match(text)
        if exit_code:
            code = int(exit_code.group(1))
            summary = f"a shell step {_KILLED_CODES.get(code, f'failed with exit code {code}')}"
        elif step:
            summary = f"the build step '{step.group(1)}' failed"
        elif npm:
            summary = _clip(f"npm: {npm.group(1)}")
        else:
            continue
        context = _context_before(lines, line.number, _TAIL_LINES)
        yield _Finding(_STEP, line.number, (*context, line.number), summary)
        return


_DETECTORS: tuple[Detector, ...] = (_timeouts, _aborts, _compile_errors, _tests, _lint,
                                    _errors, _steps)


# -- the result ---------------------------------------------------------------------------


def _pick_lines(lines: list[_Line], numbers: tuple[int, ...]) -> tuple[str, ...]:
    """The lines to show, deduplicated; when there are too many, the first ones and the last."""
    shown = list(dict.fromkeys(lines[n].shown for n in numbers if lines[n].text.strip()))
    if len(shown) > MAX_ERROR_LINES:
        shown = shown[:MAX_ERROR_LINES - 1] + shown[-1:]
    return tuple(_clip(text, 300) for text in shown)


def analyse_console(text: str) -> tuple[str | None, tuple[str, ...], str]:
    """Return (failing stage, meaningful error lines, one-line summary) for a console log.

    The stage is the last pipeline stage entered before the error (None for freestyle
    jobs). The summary names the cause, e.g. "tests failed: 2 failed, 318 passed",
    "compile error in PaymentService.java:42: cannot find symbol" or "timed out after 30
    minutes"; it is :data:`NO_ERROR_SUMMARY` when nothing recognisable was found, and the
    error lines are then the last lines the build printed.
    """
    lines = _clean(text)
    findings = [finding for detector in _DETECTORS for finding in detector(lines)]
    if not findings:
        tail = [line.number for line in lines if not _is_noise(line)][-_TAIL_LINES:]
        stage = lines[-1].stage if lines else None
        return stage, _pick_lines(lines, tuple(tail)), NO_ERROR_SUMMARY
    best = min(findings, key=lambda finding: (finding.rank, finding.anchor))
    return lines[best.anchor].stage, _pick_lines(lines, best.lines), best.summary
