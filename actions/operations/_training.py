"""Team-defined operations and the routes of every ops intent, as Rasa training data
written beside the project's own.

``opsbot train`` (and the warm trainer, and ``--reload``) trains on ``data/`` plus what
this writes: each operation's intent and examples, and a domain file with the intents
and entities; and for every intent with a handler (built-in or team-defined) that no
rule in ``data/`` starts with, the rule that sends it to ``action_ops_request``. A new
built-in intent needs no rule of its own. Nothing in ``data/`` or ``domain.yml`` is
edited; the files are rewritten at every training.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml

from actions.operations._spec import OperationSpec

__all__ = ["ruled_intents", "write_training_files"]


def _builtin_entities(domain: Path) -> set[str]:
    try:
        data = yaml.safe_load(domain.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return set()
    return {next(iter(e)) if isinstance(e, dict) else str(e) for e in data.get("entities") or []}


def ruled_intents(project: Path) -> set[str]:
    """The intents some rule in ``data/`` starts with (those need no generated route)."""
    found: set[str] = set()
    for path in sorted((project / "data").rglob("*.yml")):
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            continue  # Rasa's own validation says what is wrong with it
        for rule in data.get("rules") or [] if isinstance(data, dict) else []:
            steps = rule.get("steps") if isinstance(rule, dict) else None
            if steps and isinstance(steps[0], dict) and steps[0].get("intent"):
                found.add(str(steps[0]["intent"]))
    return found


def write_training_files(project: Path, operations: Mapping[str, OperationSpec], out: Path,
                         routed: Iterable[str] = ()) -> tuple[Path, Path]:
    """Write the domain folder and the data folder for ``operations``, with a route to
    ``action_ops_request`` for each intent of ``routed`` (the built-in ones with a handler)
    and each operation that no rule in ``data/`` already starts with; returns both."""
    domain_dir, data_dir = out / "domain", out / "data"
    for folder in (domain_dir, data_dir):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    shutil.copyfile(project / "domain.yml", domain_dir / "domain.yml")
    specs = [operations[name] for name in sorted(operations)]
    header = "# Written by opsbot train from the intents' declarations; do not edit.\n"
    ruled = ruled_intents(project)
    routes = [i for i in dict.fromkeys([*routed, *(s.name for s in specs)]) if i not in ruled]
    data: dict[str, Any] = {
        "version": "3.1",
        "rules": [{"rule": f"route {intent}",
                   "steps": [{"intent": intent}, {"action": "action_ops_request"}]}
                  for intent in routes],
    }
    if specs:
        known = _builtin_entities(project / "domain.yml")
        entities = sorted({p.name for s in specs for p in s.parameters} - known)
        domain: dict[str, Any] = {"version": "3.1", "intents": [s.name for s in specs]}
        if entities:
            domain["entities"] = entities
        (domain_dir / "operations.yml").write_text(
            header + yaml.safe_dump(domain, sort_keys=False, allow_unicode=True),
            encoding="utf-8")
        data["nlu"] = [{"intent": s.name, "examples": "".join(f"- {e}\n" for e in s.examples)}
                       for s in specs]
    (data_dir / "operations.yml").write_text(
        header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000),
        encoding="utf-8")
    return domain_dir, data_dir
