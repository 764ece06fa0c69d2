"""Team-defined operations as Rasa training data, written beside the project's own.

``opsbot train`` (and the warm trainer, and ``--reload``) trains on ``data/`` plus what
this writes: each operation's intent and examples, a rule that sends the intent to
``action_ops_request``, and a domain file with the intents and entities. Nothing in
``data/`` or ``domain.yml`` is edited; the files are rewritten at every training.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from pathlib import Path

import yaml

from actions.operations._spec import OperationSpec

__all__ = ["write_training_files"]


def _builtin_entities(domain: Path) -> set[str]:
    try:
        data = yaml.safe_load(domain.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return set()
    return {next(iter(e)) if isinstance(e, dict) else str(e) for e in data.get("entities") or []}


def write_training_files(project: Path, operations: Mapping[str, OperationSpec],
                         out: Path) -> tuple[Path, Path]:
    """Write the domain folder and the data folder for ``operations``; returns both."""
    domain_dir, data_dir = out / "domain", out / "data"
    for folder in (domain_dir, data_dir):
        if folder.exists():
            shutil.rmtree(folder)
        folder.mkdir(parents=True)
    shutil.copyfile(project / "domain.yml", domain_dir / "domain.yml")
    specs = [operations[name] for name in sorted(operations)]
    if not specs:
        return domain_dir, data_dir
    known = _builtin_entities(project / "domain.yml")
    entities = sorted({p.name for s in specs for p in s.parameters} - known)
    domain = {"version": "3.1", "intents": [s.name for s in specs]}
    if entities:
        domain["entities"] = entities
    header = "# Written by opsbot train from the operation files; do not edit.\n"
    (domain_dir / "operations.yml").write_text(
        header + yaml.safe_dump(domain, sort_keys=False, allow_unicode=True), encoding="utf-8")
    data = {
        "version": "3.1",
        "nlu": [{"intent": s.name, "examples": "".join(f"- {e}\n" for e in s.examples)}
                for s in specs],
        "rules": [{"rule": f"operation {s.name}",
                   "steps": [{"intent": s.name}, {"action": "action_ops_request"}]}
                  for s in specs],
    }
    (data_dir / "operations.yml").write_text(
        header + yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000),
        encoding="utf-8")
    return domain_dir, data_dir
