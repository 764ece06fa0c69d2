"""The name check of the NLU bench: would opsbot's actions refuse this request for a name
it does not know, on the demo's Jenkins and Jira?

    python -m bench.nlu --name-check bench._names:refused

Why in the bench: an intent can be right and the request still not servable ("deploy
postgres 16 to staging" is a deploy; there is no postgres). opsbot's actions resolve
names against the live Jenkins job list and Jira's projects; here the same rules run
against the demo's seed files (simulators/data), which is what the demo's Jenkins and
Jira serve:

- a service or job that resolves to none of Jenkins' (``actions.catalog``, fuzzy as in
  the chat); an environment that is not dev, staging or prod; an issue key or project
  of no Jira project;
- a request for an intent acting on a service or job that names none, but holds words
  the NLU never learnt (``actions.flows.open_world.unknown_words``).
"""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Any

import yaml

from actions import intents
from actions.catalog import ENVIRONMENTS, Catalog
from actions.flows.open_world import unknown_words
from actions.registry import kind_of

__all__ = ["refused"]

ROOT = Path(__file__).resolve().parent.parent
SEEDS = ROOT / "simulators" / "data"


@functools.cache
def _catalog() -> Catalog:
    from actions.backends.jenkins import Job
    from simulators.jenkins._seed import _SeedLoader

    seed = _SeedLoader(SEEDS / "jenkins.yml", time.time(), "opsbot").load()
    return Catalog(Job(full_name=name, name=name.rsplit("/", 1)[-1], url="", color="",
                       parameters=(), last_build=None)
                   for name in seed.jobs)


@functools.cache
def _projects() -> frozenset[str]:
    raw = yaml.safe_load((SEEDS / "jira.yml").read_text(encoding="utf-8"))
    return frozenset(str(p["key"]).upper() for p in raw.get("projects") or [])


def _unknown_value(entity: str, value: str) -> bool:
    catalog = _catalog()
    if entity == "service":
        found = catalog.resolve_service(value)
        return not (found.match or found.ambiguous)
    if entity == "job":
        found = catalog.resolve_job(value)
        return not (found.match or found.ambiguous)
    if entity == "environment":
        return value not in ENVIRONMENTS
    if entity in ("project", "issue_key"):
        return value.split("-", 1)[0].upper() not in _projects()
    return False


def refused(prediction: dict[str, Any]) -> bool:
    """True when opsbot's actions would answer with an unknown name (or "I can't do
    that") instead of serving the predicted intent."""
    intents.install()
    entities = {str(e["entity"]): str(e["value"]) for e in prediction.get("entities") or []
                if e.get("entity") and e.get("value") is not None}
    if any(_unknown_value(entity, value) for entity, value in entities.items()):
        return True
    kind = kind_of(str(prediction.get("predicted")))
    if kind is None:
        return False
    return unknown_words(kind, str(prediction.get("text") or ""), entities,
                         prediction.get("unseen_words") or []) is not None
