"""Rasa without TensorFlow when the pipeline has no TensorFlow component
(opsbot/_no_tensorflow.py): when it applies, what it stands in for, and that what needs
TensorFlow fails saying so."""

from __future__ import annotations

import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml

from opsbot._no_tensorflow import COMPONENTS, config_needs_tensorflow, model_needs_tensorflow
from tests.conftest import ROOT


def _config(**changes: Any) -> dict[str, Any]:
    config = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    config.update(changes)
    return dict(config)


def test_opsbots_pipeline_needs_no_tensorflow() -> None:
    assert not config_needs_tensorflow(ROOT / "config.yml")
    assert {"DIETClassifier", "TEDPolicy", "ResponseSelector"} <= COMPONENTS


@pytest.mark.parametrize("changes", [
    {"pipeline": [{"name": "WhitespaceTokenizer"}, {"name": "DIETClassifier"}]},
    {"policies": [{"name": "TEDPolicy"}]},
    {"policies": [{"name": "rasa.core.policies.ted_policy.TEDPolicy"}]},
    {"pipeline": [{"name": "mycompany.components.Classifier"}]},  # may import anything
    {"policies": None},  # Rasa's default policies: TED
    {"pipeline": []},  # Rasa's default pipeline: DIET
])
def test_what_may_need_tensorflow(changes: dict[str, Any]) -> None:
    assert config_needs_tensorflow(_config(**changes))


def test_rasas_other_components_and_opsbots_need_none() -> None:
    assert not config_needs_tensorflow(_config(
        pipeline=[{"name": "WhitespaceTokenizer"}, {"name": "LogisticRegressionClassifier"},
                  {"name": "nlu.SentenceEmbeddingFeaturizer"},
                  {"name": "rasa.nlu.extractors.crf_entity_extractor.CRFEntityExtractor"}],
        policies=[{"name": "RulePolicy"}]))


def test_an_unreadable_config_may_need_it(tmp_path: Path) -> None:
    assert config_needs_tensorflow(tmp_path / "missing.yml")
    (tmp_path / "config.yml").write_text("pipeline: [")
    assert config_needs_tensorflow(tmp_path / "config.yml")


def _model(path: Path, uses: list[str]) -> Path:
    metadata = json.dumps({"predict_schema": {"nodes": {
        f"node{i}": {"uses": name} for i, name in enumerate(uses)}}}).encode()
    with tarfile.open(path, "w:gz") as archive:
        member = tarfile.TarInfo("metadata.json")
        member.size = len(metadata)
        archive.addfile(member, io.BytesIO(metadata))
    return path


def test_a_model_says_what_it_loads(tmp_path: Path) -> None:
    plain = _model(tmp_path / "plain.tar.gz", [
        "nlu.classifier.LinearIntentClassifier", "rasa.core.policies.rule_policy.RulePolicy"])
    assert not model_needs_tensorflow(plain)
    assert not model_needs_tensorflow(tmp_path)  # a directory: its newest model
    diet = _model(tmp_path / "diet.tar.gz", [
        "rasa.nlu.classifiers.diet_classifier.DIETClassifier"])
    assert model_needs_tensorflow(diet)
    assert model_needs_tensorflow(tmp_path)  # now the newest
    (tmp_path / "broken.tar.gz").write_bytes(b"not a model")
    assert model_needs_tensorflow(tmp_path / "broken.tar.gz")
    assert model_needs_tensorflow(tmp_path / "empty")


def test_rasa_serves_and_trains_without_importing_tensorflow() -> None:
    """In a fresh interpreter: everything the Rasa server and a training import, with the
    stand-ins, and what a TensorFlow component would need fails with the reason."""
    script = """
import sys
from opsbot._no_tensorflow import TensorFlowSkipped, install, installed
assert install() and installed()
import rasa.__main__, rasa.core.run, rasa.core.agent, rasa.model_training
from rasa.engine.recipes.default_components import DEFAULT_COMPONENTS
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
import rasa.graph_components.validators.default_recipe_validator
from rasa.shared.utils.common import class_from_module_path
assert "tensorflow" not in sys.modules, "TensorFlow was imported"
assert DefaultV1Recipe._from_registry("CRFEntityExtractor")
diet = class_from_module_path("rasa.nlu.classifiers.diet_classifier.DIETClassifier")
try:
    diet.get_default_config()
except TensorFlowSkipped as exc:
    print("refused:", exc)
"""
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "refused: DIETClassifier needs TensorFlow, and this process started without it" \
        in done.stdout
