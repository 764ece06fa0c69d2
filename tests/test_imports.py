"""The modules a process imports first import on their own.

An import cycle shows only when a process imports a module of the cycle before the
others: ``opsbot catalog`` imports the service catalog first, the action server the
``actions`` package, Rasa a connector by its name in credentials.yml. Each of those entry
points is imported here in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ENTRY_POINTS = (
    "opsbot.cli", "opsbot._catalog_cli", "opsbot._trainer", "opsbot._action_server",
    "actions", "actions.service_catalog", "actions.catalog", "actions.backends",
    "actions.backends.github", "actions.flows", "actions.guard",
    "connectors.slack", "connectors.telegram", "connectors.teams", "connectors.rest",
    "connectors.events", "nlu", "simulators",
)


def _import_alone(name: str) -> str | None:
    done = subprocess.run([sys.executable, "-c", f"import {name}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=False)
    if done.returncode == 0:
        return None
    return f"{name}: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else '?'}"


@pytest.mark.slow
def test_each_entry_point_imports_first() -> None:
    with ThreadPoolExecutor(2) as pool:
        failures = [f for f in pool.map(_import_alone, ENTRY_POINTS) if f]
    assert failures == []
