"""The libraries' output goes to the log file, opsbot's own lines to the terminal."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run(code: str, tmp_path: Path) -> tuple[str, str]:
    """What ``code`` printed (stdout and stderr together), and what it wrote to the log."""
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, capture_output=True,
        text=True, timeout=60, env={**os.environ, "PYTHONWARNINGS": "default",
                                    "LOG": str(tmp_path / "logs" / "x.log")})
    assert result.returncode == 0, result.stderr
    log = tmp_path / "logs" / "x.log"
    return result.stdout + result.stderr, log.read_text() if log.exists() else ""


def test_output_inside_the_block_goes_to_the_log(tmp_path: Path) -> None:
    shown, logged = run("""
        import os, sys, warnings
        from pathlib import Path
        from opsbot._quiet import output_to_log
        print("opsbot: before", flush=True)
        with output_to_log(Path(os.environ["LOG"])):
            print("a library's banner")
            os.write(2, b"C-level noise\\n")
            warnings.warn("old API", DeprecationWarning, stacklevel=1)
            sys.stderr.write("Batches: 100%\\n")
        print("opsbot: after", flush=True)
        """, tmp_path)
    assert shown.splitlines() == ["opsbot: before", "opsbot: after"]
    for text in ("a library's banner", "C-level noise", "DeprecationWarning: old API",
                 "Batches: 100%"):
        assert text in logged
    assert oct((tmp_path / "logs" / "x.log").stat().st_mode & 0o777) == "0o600"


def test_warnings_go_to_the_log_even_when_a_library_resets_the_filters(tmp_path: Path) -> None:
    shown, logged = run("""
        import os, warnings
        from pathlib import Path
        from opsbot._quiet import warnings_to_log
        warnings_to_log(Path(os.environ["LOG"]))
        warnings.resetwarnings()
        warnings.simplefilter("always")
        warnings.warn("distutils Version classes are deprecated", DeprecationWarning)
        print("opsbot: ready")
        """, tmp_path)
    assert shown.splitlines() == ["opsbot: ready"]
    assert "distutils Version classes are deprecated" in logged
