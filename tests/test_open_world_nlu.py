"""Open-set understanding (issue 27): a team's new operation is understood from its six
examples and its near misses are refused, with no threshold changed; and the main
model refuses requests for what opsbot does not do."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, Parser

RECYCLE = """\
name: recycle_workers
description: Recycle the worker pool of a service
examples:
  - recycle the [payments](service) workers on [prod](environment)
  - recycle [checkout](service) worker processes in [staging](environment)
  - please recycle the worker pool of [search](service) on [dev](environment)
  - can you recycle [billing](service)'s workers on [production](environment)
  - recycle all [inventory](service) workers in [stage](environment)
  - do a worker recycle for [auth](service) on [prod](environment)
parameters:
  service:     {type: service, required: true}
  environment: {type: environment, required: true}
risk: change
run:
  command: [echo, recycled, "{service}", "{environment}"]
success: "Recycled the workers of {service} on {environment}."
"""


def acted_on(parse: dict[str, Any]) -> str | None:
    """The intent opsbot would act on, or None (out of scope, or not sure)."""
    name = (parse.get("intent") or {}).get("name")
    return None if name in ("out_of_scope", "nlu_fallback") else name


@pytest.fixture(scope="module")
def with_team_operation(tmp_path_factory: pytest.TempPathFactory,
                        cache_dir: Path) -> Iterator[Parser]:
    """The project with one more operation file, trained as ``opsbot train`` trains it."""
    from opsbot.cli import train_model
    from opsbot.settings import Settings

    root = tmp_path_factory.mktemp("team-project")
    for name in ("domain.yml", "config.yml", "credentials.yml", "endpoints.yml", "policy.yml"):
        shutil.copy(ROOT / name, root / name)
    shutil.copytree(ROOT / "data", root / "data")
    shutil.copytree(ROOT / "operations", root / "operations")
    (root / "operations" / "recycle_workers.yml").write_text(RECYCLE, encoding="utf-8")
    for package in ("actions", "nlu"):
        (root / package).symlink_to(ROOT / package)
    settings = dataclasses.replace(Settings.from_env(root), models=root / "models",
                                   cache_dir=cache_dir)
    parser = Parser(train_model(settings, quiet=True))
    yield parser
    parser.loop.close()


def test_a_new_operation_is_understood_from_its_examples(with_team_operation: Parser) -> None:
    for text in ("could you recycle the workers of orders on staging",
                 "time to recycle gateway's worker pool in prod"):
        assert acted_on(with_team_operation.parse(text)) == "recycle_workers", text


def test_its_near_misses_are_refused(with_team_operation: Parser) -> None:
    for text in ("recycle the old newspapers", "can you recycle my printer cartridges",
                 "recycle the glass bottles from the party"):
        assert acted_on(with_team_operation.parse(text)) is None, text


def test_the_demo_restart_operation_does_not_restart_the_coffee_machine(parser: Parser) -> None:
    assert acted_on(parser.parse("restart the coffee machine")) is None
    assert acted_on(parser.parse("restart payments on prod")) == "restart_service"


def test_every_parse_reports_the_words_it_never_learnt(parser: Parser) -> None:
    parse = parser.parse("upgrade postgres to 16 on staging")
    assert "postgres" in parse["unseen_words"]
    assert "staging" not in parse["unseen_words"]
