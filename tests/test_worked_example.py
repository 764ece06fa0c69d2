"""The worked example of docs/develop/add-an-intent.md, applied to a copy of the project:
its four changes are all a new read intent needs, and the copy passes the declaration
checks and the example's own test. The page cannot fall behind the code."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGE = ROOT / "docs" / "develop" / "add-an-intent.md"
# <!-- worked-example: PATH, WHERE --> then a fenced code block
_SNIPPET = re.compile(r"<!-- worked-example: (?P<path>[^,]+), (?P<where>\w+) -->\n"
                      r"```\w*\n(?P<code>.*?)\n```", re.S)


def snippets() -> list[tuple[str, str, str]]:
    found = [(m["path"], m["where"], m["code"] + "\n") for m in _SNIPPET.finditer(
        PAGE.read_text(encoding="utf-8"))]
    assert found, f"no worked-example snippets in {PAGE}"
    return found


def _insert(text: str, anchor: str, addition: str, path: str) -> str:
    assert text.count(anchor) == 1, f"{path}: the place for the example is not unique"
    return text.replace(anchor, addition + anchor)


def apply(project: Path, path: str, where: str, code: str) -> None:
    target = project / path
    text = target.read_text(encoding="utf-8") if target.exists() else ""
    if where == "handler":  # before the module's declarations
        text = _insert(text, "\n\ndef _declare(", "\n\n" + code.rstrip("\n") + "\n", path)
    elif where == "declaration":  # the last element of INTENTS
        end = text.index("\n)\n", text.index("\nINTENTS = (\n"))
        text = text[:end + 1] + code + text[end + 1:]
    elif where == "intent":  # domain.yml's list of intents
        text = _insert(text, "  - greet\n", code, path)
    elif where == "examples":  # another block of the training file
        text = text.rstrip("\n") + "\n" + code
    elif where == "file":
        assert not target.exists(), f"{path} exists already"
        text = code
    else:
        raise AssertionError(f"unknown place {where!r} for {path}")
    target.write_text(text, encoding="utf-8")


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of what the example changes; the rest is linked."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("actions", "data", "tests"):
        shutil.copytree(ROOT / name, copy / name,
                        ignore=shutil.ignore_patterns("__pycache__", "data", "nlu")
                        if name == "tests" else shutil.ignore_patterns("__pycache__"))
    for name in ("tests/data", "tests/nlu"):
        (copy / name).symlink_to(ROOT / name)
    for name in ("domain.yml", "policy.yml", "config.yml", "pyproject.toml"):
        shutil.copy(ROOT / name, copy / name)
    for name in ("nlu", "connectors", "opsbot", "simulators", "operations", "docs"):
        (copy / name).symlink_to(ROOT / name)
    return copy


def test_a_new_read_intent_takes_four_files(project: Path) -> None:
    found = snippets()
    assert sorted({path for path, _, _ in found}) == [
        "actions/flows/jenkins.py", "data/nlu/jenkins.yml", "domain.yml",
        "tests/test_jenkins_version.py"]
    for path, where, code in found:
        apply(project, path, where, code)
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "tests/test_jenkins_version.py", "tests/test_intent_declarations.py",
         "tests/test_layout.py"],
        cwd=project, capture_output=True, text=True, timeout=600, check=False)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
    assert " passed" in run.stdout and "failed" not in run.stdout
