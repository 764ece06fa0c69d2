"""Training opsbot's model: the project's data/ plus its team-defined operations.

Shared by ``opsbot train``, ``opsbot demo`` and the warm trainer (``opsbot._trainer``), so
that neither the CLI nor the trainer imports the other. The operation files are checked
first: a bad one stops the training with the same messages as ``opsbot operations check``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from opsbot._quiet import output_to_log
from opsbot.settings import Settings

__all__ = ["CommandError", "Training", "current_model", "latest_model", "quiet_library_warnings",
           "run_training", "train_apart", "train_model", "training_inputs"]


class CommandError(RuntimeError):
    """A command cannot go on; its message is shown to the user as is."""


def latest_model(settings: Settings) -> Path | None:
    if not settings.models.is_dir():
        return None
    models = sorted(settings.models.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
    return models[-1] if models else None


def current_model(settings: Settings) -> Path | None:
    """The latest model if it is newer than everything it is trained from, else None."""
    model = latest_model(settings)
    if model is None:
        return None
    newest = max((p.stat().st_mtime for p in training_inputs(settings) if p.is_file()),
                 default=0.0)
    return model if model.stat().st_mtime >= newest else None


def training_inputs(settings: Settings) -> list[Path]:
    """Every file a model is trained from: a model older than one of them is stale."""
    from actions.operations import operation_dirs, operation_files

    project = settings.project
    return [project / "domain.yml", project / "config.yml", *(project / "data").rglob("*"),
            *(project / "nlu").glob("*.py"), *operation_files(operation_dirs(project))]


def operations_training_files(settings: Settings) -> tuple[Path, Path, int]:
    """Check the operation files and write them as training data, with the routes of the
    built-in intents: (domain, data, count)."""
    from actions.intents import BUILT_IN
    from actions.operations import load_operations, write_training_files

    loaded = load_operations(settings.project)
    if loaded.errors:
        raise CommandError("The operation files have problems (nothing was trained):\n"
                           + "\n".join(f"  {e}" for e in loaded.errors))
    routed = [kind.intent for kind in BUILT_IN if kind.handler is not None]
    domain, data = write_training_files(settings.project, loaded.operations,
                                        settings.state_dir / "training", routed)
    return domain, data, len(loaded.operations)


def quiet_library_warnings(all_user_warnings: bool = False) -> None:
    """Hide the deprecation notices of Rasa's pinned dependencies; they are not the user's
    to act on. Rasa's own data warnings (UserWarning) stay unless ``all_user_warnings``."""
    import warnings

    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*pkg_resources is deprecated.*")
    warnings.filterwarnings("ignore", message=".*parseString.*")
    if all_user_warnings:
        warnings.filterwarnings("ignore", category=UserWarning)
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    os.environ.setdefault("SQLALCHEMY_SILENCE_UBER_WARNING", "1")


def _configure_rasa_logging(level: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    configure_logging_and_warnings(level, warn_only_once=True)
    configure_structlog(level)


@dataclasses.dataclass(frozen=True)
class Training:
    """A finished training run: the model, how long the train call took, and which graph
    components it trained and which it restored from Rasa's cache."""

    model: Path
    seconds: float
    trained: tuple[str, ...]
    restored: tuple[str, ...]

    def summary(self) -> str:
        return (f"trained: {_names(self.trained)}; "
                f"restored from the cache: {_names(self.restored)}")


def _names(components: Sequence[str]) -> str:
    """``A, B x2`` for [A, B, B] (a pipeline can use a component twice); ``nothing`` if none."""
    counts = dict.fromkeys(components, 0)
    for name in components:
        counts[name] += 1
    return ", ".join(n if c == 1 else f"{n} x{c}" for n, c in counts.items()) or "nothing"


class _ComponentLog(logging.Handler):
    """Collects the component names in the messages of Rasa's training hook:
    "Finished training component 'X'." and "Restored component 'X' from cache."."""

    LOGGER = "rasa.engine.training.hooks"
    _MESSAGE = re.compile(r"^(Finished training|Restored) component '([^']+)'")

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.trained: list[str] = []
        self.restored: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        match = self._MESSAGE.match(record.getMessage())
        if match:
            (self.trained if match.group(1) == "Finished training" else self.restored).append(
                match.group(2))


def train_model(settings: Settings, force: bool = False, quiet: bool = False,
                log: Path | None = None) -> Path:
    """Train from data/ (only what changed, unless ``force``); return the model path."""
    return run_training(settings, force, quiet, log).model


def train_apart(settings: Settings, quiet: bool = False, log: Path | None = None) -> Path:
    """:func:`train_model` in a child process, for a process that goes on running
    (``opsbot demo``'s supervisor): it does not keep Rasa and torch, about 600 MB, for the
    rest of its life after one training."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return Path(pool.apply(train_model, (settings,), {"quiet": quiet, "log": log}))


def run_training(settings: Settings, force: bool = False, quiet: bool = False,
                 log: Path | None = None) -> Training:
    """Train from data/ (only what changed, unless ``force``) and say what was retrained.

    With ``log``, only opsbot's own lines reach the terminal: everything the libraries
    print while training (warnings, progress bars, Rasa's messages) goes to that file.
    """
    settings.check_project()
    os.environ["OPSBOT_CACHE_DIR"] = str(settings.cache_dir)
    sys.path.insert(0, str(settings.project))
    project = settings.project
    domain, operations_data, count = operations_training_files(settings)
    also = f" and {count} operation file{'s' if count != 1 else ''}" if count else ""
    if log is None:
        print(f"Training opsbot's model from {project / 'data'}{also} ...", flush=True)
        training = _train(settings, domain, operations_data, force, quiet, "see above")
    else:
        print(f"Training opsbot's model from {project / 'data'}{also} (a minute or two the "
              f"first time; the training log is {log}) ...", flush=True)
        try:
            with output_to_log(log):
                training = _train(settings, domain, operations_data, force, quiet,
                                  f"see {log}")
        except CommandError as exc:
            raise CommandError(f"{exc}\nThe last lines of {log}:\n{_tail(log)}") from exc
    print(f"Model ready in {training.seconds:.1f}s ({training.summary()}): {training.model}",
          flush=True)
    return training


def _train(settings: Settings, domain: Path, operations_data: Path, force: bool, quiet: bool,
           messages: str) -> Training:
    """Rasa's train call, with the components it trained and restored collected."""
    quiet_library_warnings(all_user_warnings=quiet)
    from opsbot._no_tensorflow import install_for

    install_for(settings.project / "config.yml")  # before Rasa: its imports take seconds
    _configure_rasa_logging(logging.WARNING if quiet else logging.INFO)
    from rasa.api import train
    from rasa.shared.exceptions import RasaException

    project = settings.project
    components = _ComponentLog()
    hook_logger = logging.getLogger(_ComponentLog.LOGGER)
    level, propagate = hook_logger.level, hook_logger.propagate
    hook_logger.addHandler(components)
    hook_logger.setLevel(logging.INFO)
    hook_logger.propagate = propagate and not quiet  # quiet: collected, not printed
    started = time.perf_counter()
    try:
        result = train(
            domain=str(domain),
            config=str(project / "config.yml"),
            training_files=[str(project / "data"), str(operations_data)],
            output=str(settings.models),
            force_training=force,
        )
    except RasaException as exc:
        raise CommandError(f"The training data is invalid: {exc}") from exc
    except SystemExit as exc:  # Rasa exits on some validation errors after printing them
        raise CommandError(
            f"Training stopped: the training data is invalid ({messages}).") from exc
    finally:
        hook_logger.removeHandler(components)
        hook_logger.setLevel(level)
        hook_logger.propagate = propagate
    if result.code != 0 or not result.model:
        raise CommandError(
            f"Training failed ({messages}). Check data/ with 'rasa data validate'."
        )
    return Training(Path(result.model), time.perf_counter() - started,
                    tuple(components.trained), tuple(components.restored))


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
