"""Keeping the libraries' own output off the terminal: it goes to a log file instead.

Rasa's pinned dependencies print deprecation warnings (TensorFlow, SQLAlchemy,
sanic_cors ...), progress bars and banners that a person cannot act on. ``opsbot demo``
shows its own lines only; what the libraries say is in the state dir's logs.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from opsbot._private import open_private

__all__ = ["output_to_log", "warnings_to_log"]


@contextlib.contextmanager
def output_to_log(path: Path) -> Iterator[None]:
    """Send everything written to stdout and stderr inside the block to ``path`` (0600).

    The file descriptors themselves are redirected, so what C extensions and progress
    bars write goes there too, and so do Python warnings (also after
    :func:`warnings_to_log` sent them elsewhere); all is restored when the block ends.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    log = open_private(path)
    saved = os.dup(1), os.dup(2)
    shown = warnings.showwarning
    try:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        warnings.showwarning = _on_stderr
        yield
    finally:
        warnings.showwarning = shown
        with contextlib.suppress(ValueError, OSError):
            sys.stdout.flush()
            sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])
        log.close()


def _on_stderr(message: Warning | str, category: type[Warning], filename: str, lineno: int,
               file: TextIO | None = None, line: str | None = None) -> None:
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


def warnings_to_log(path: Path) -> None:
    """From now on, write Python warnings to ``path`` (0600) instead of stderr.

    A library that resets the warning filters cannot bring them back to the terminal:
    this replaces how a warning is shown, not which are shown.
    """

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int,
             file: TextIO | None = None, line: str | None = None) -> None:
        text = warnings.formatwarning(message, category, filename, lineno, line)
        with contextlib.suppress(OSError, ValueError), open_private(path) as log:
            log.write(text.encode("utf-8", "replace"))

    shown: Any = show
    warnings.showwarning = shown
