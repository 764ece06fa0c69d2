"""Out-of-scope rejection: the detector in nlu.LinearIntentClassifier, and the bench's
threshold choice on the validation split (bench/_metrics.py, bench/nlu.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rasa.engine.graph import ExecutionContext, GraphSchema
from rasa.engine.storage.local_model_storage import LocalModelStorage
from rasa.engine.storage.resource import Resource
from rasa.nlu.featurizers.sparse_featurizer.count_vectors_featurizer import (
    CountVectorsFeaturizer,
)
from rasa.nlu.tokenizers.whitespace_tokenizer import WhitespaceTokenizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

from bench import nlu as bench
from bench._metrics import choose_threshold, rejected, score_predictions
from nlu.classifier import OUT_OF_SCOPE_SCORE_KEY, LinearIntentClassifier
from nlu.embedding_featurizer import SentenceEmbeddingFeaturizer

# -- the threshold is chosen on validation only --------------------------------------


def row(gold: str, predicted: str, score: float) -> dict[str, Any]:
    return {"gold": gold, "predicted": predicted, "score": score}


def test_the_threshold_is_the_highest_that_keeps_the_target_accuracy() -> None:
    rows = [row("a", "a", s) for s in (0.2, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.97, 0.98, 0.99)]
    rows += [row("oos", "a", s) for s in (0.1, 0.3, 0.55, 0.85)]
    choice = choose_threshold(rows, "oos", target=0.9)
    # One of ten in-scope examples may go: the one at 0.2; the threshold sits halfway
    # to the next score and catches the two out-of-scope examples below it.
    assert choice.threshold == pytest.approx(0.4)
    assert choice.accuracy == pytest.approx(0.9) and choice.oos_recall == pytest.approx(0.5)
    assert choice.feasible


def test_without_reachable_accuracy_no_threshold_is_applied() -> None:
    rows = [row("a", "b", 0.9), row("a", "a", 0.8), row("oos", "a", 0.1)]
    choice = choose_threshold(rows, "oos", target=0.94)
    assert choice.threshold is None and not choice.feasible


def test_predicted_out_of_scope_and_fallback_stay_rejected_whatever_the_threshold() -> None:
    assert rejected(row("oos", "oos", 5.0), "oos", threshold=1.0)
    assert rejected(row("oos", "nlu_fallback", 5.0), "oos", threshold=None)
    assert rejected(row("x", "out_of_scope", 5.0), "oos")
    assert not rejected(row("a", "a", 5.0), "oos", threshold=1.0)
    assert rejected(row("a", "a", 0.5), "oos", threshold=1.0)


def test_the_bench_chooses_the_threshold_on_validation_never_on_test() -> None:
    valid = [row("a", "a", s) for s in np.linspace(1.0, 3.0, 50)]
    valid += [row("oos", "a", s) for s in (0.0, 0.2, 0.4, 0.9)]
    # On test the in-scope scores are higher: choosing there would give a higher threshold.
    test = [row("a", "a", s) for s in np.linspace(2.0, 4.0, 50)]
    test += [row("oos", "a", s) for s in (0.5, 1.5, 1.9, 2.5)]
    result = {"valid_predictions": valid, "predictions": test, "oos_score": "out_of_scope_score",
              **score_predictions(test, "oos")}
    bench.apply_validation_threshold(result, "oos")
    from_valid = choose_threshold(valid, "oos").threshold
    from_test = choose_threshold(test, "oos").threshold
    assert from_valid is not None and from_test is not None and from_valid < from_test
    assert result["oos_threshold"]["threshold"] == from_valid
    assert result["oos_recall"] == score_predictions(test, "oos", from_valid)["oos_recall"]
    assert result["without_threshold"]["oos_recall"] == 0.0
    # The test predictions play no part in the choice.
    negated = [row(r["gold"], r["predicted"], -r["score"]) for r in test]
    negated_result = {**result, "predictions": negated}
    bench.apply_validation_threshold(negated_result, "oos")
    assert negated_result["oos_threshold"]["threshold"] == from_valid


# -- the detector in the classifier ---------------------------------------------------

SERVICES = ["payments", "checkout", "search", "billing", "auth", "orders"]
INTENTS = {
    "deploy": ["deploy {s} to prod", "ship {s} to staging", "release the new {s} version",
               "roll out {s} today"],
    "logs": ["show me the {s} logs", "errors from {s} in the last hour", "tail the {s} log",
             "any exceptions in {s}"],
    "build_status": ["is the {s} build green", "did the {s} pipeline pass", "status of {s} ci",
                     "why is the {s} build red"],
}
HELD_OUT = {"deploy": "push {s} live on production", "logs": "grep the {s} logs for timeouts",
            "build_status": "has the {s} build finished"}
OUT_OF_SCOPE_VALID = ["what's for dinner tonight", "will it snow this weekend",
                      "tell me a joke about cats", "who won the football match",
                      "book me a hotel in paris", "how many calories are in an apple"]
OUT_OF_SCOPE_PROBES = ["what is the capital of australia", "recommend a good novel to read",
                       "how do I bake sourdough bread", "play some relaxing jazz music"]
IN_SCOPE_PROBES = {"deploy payments to production": "deploy",
                   "show errors from checkout": "logs",
                   "is the search build passing": "build_status"}


class Pipeline:
    """Tokenizer, word n-grams, sentence embedding and the classifier, trained in-process."""

    def __init__(self, root: Path, cache_dir: Path, classifier_config: dict[str, Any]) -> None:
        self.storage = LocalModelStorage(root)
        context = ExecutionContext(GraphSchema({}), node_name="test")
        self.tokenizer = WhitespaceTokenizer(WhitespaceTokenizer.get_default_config())
        self.words = CountVectorsFeaturizer.create(
            CountVectorsFeaturizer.get_default_config(), self.storage, Resource("words"), context
        )
        self.embedding = SentenceEmbeddingFeaturizer(
            {"cache_dir": str(cache_dir), "show_progress": False}, context
        )
        self.config = classifier_config
        self.classifier = LinearIntentClassifier.create(
            classifier_config, self.storage, Resource("classifier"), context
        )

    def train(self, examples: list[tuple[str, str]]) -> None:
        data = TrainingData([Message(data={"text": t, "intent": i}) for t, i in examples])
        self.tokenizer.process_training_data(data)
        self.words.train(data)
        self.words.process_training_data(data)
        self.embedding.process_training_data(data)
        self.classifier.train(data)

    def with_threshold(self, threshold: float) -> LinearIntentClassifier:
        """The trained classifier loaded back with the detector on."""
        context = ExecutionContext(GraphSchema({}), node_name="test")
        return LinearIntentClassifier.load(
            {**self.config, "out_of_scope_threshold": threshold}, self.storage,
            Resource("classifier"), context,
        )

    def parse(self, text: str, classifier: LinearIntentClassifier | None = None) -> Message:
        message = Message(data={"text": text})
        for component in (self.tokenizer, self.words, self.embedding):
            component.process([message])
        (classifier or self.classifier).process([message])
        return message


@pytest.fixture(scope="module")
def ops_only(tmp_path_factory: pytest.TempPathFactory, cache_dir: Path) -> Pipeline:
    """Trained on ops intents only: nothing out of scope in its training data."""
    pipeline = Pipeline(tmp_path_factory.mktemp("model"), cache_dir, {"loss": "hinge", "C": 2.0,
                                                                      "svm_temperature": 20.0})
    pipeline.train([(p.format(s=s), i) for i, ps in INTENTS.items() for p in ps for s in SERVICES])
    return pipeline


def validation_rows(pipeline: Pipeline) -> list[dict[str, Any]]:
    valid = [(p.format(s=s), i) for i, p in HELD_OUT.items() for s in SERVICES]
    valid += [(t, "out_of_scope") for t in OUT_OF_SCOPE_VALID]
    rows = []
    for text, gold in valid:
        parsed = pipeline.parse(text)
        rows.append(row(gold, parsed.get("intent")["name"], parsed.get(OUT_OF_SCOPE_SCORE_KEY)))
    return rows


def test_out_of_scope_text_is_rejected_and_in_scope_text_kept(ops_only: Pipeline) -> None:
    for text in OUT_OF_SCOPE_PROBES:  # without the detector: the nearest ops intent
        assert ops_only.parse(text).get("intent")["name"] in INTENTS
    choice = choose_threshold(validation_rows(ops_only), "out_of_scope")
    assert choice.feasible and choice.threshold is not None
    detector = ops_only.with_threshold(choice.threshold)
    for text in OUT_OF_SCOPE_PROBES:
        parsed = ops_only.parse(text, detector)
        assert parsed.get("intent")["name"] == "out_of_scope", text
        # More than half the probability mass: the further below the threshold,
        # the surer (FallbackClassifier still asks when it is under its own threshold).
        assert parsed.get("intent")["confidence"] > 0.5
        ranking = parsed.get("intent_ranking")
        assert ranking[0]["name"] == "out_of_scope"
        assert sum(r["confidence"] for r in ranking) == pytest.approx(1.0)
    for text, intent in IN_SCOPE_PROBES.items():
        assert ops_only.parse(text, detector).get("intent")["name"] == intent, text


def test_the_score_survives_persistence_and_rejection_follows_it(ops_only: Pipeline) -> None:
    text = OUT_OF_SCOPE_PROBES[0]
    trained = ops_only.parse(text).get(OUT_OF_SCOPE_SCORE_KEY)
    loaded = ops_only.with_threshold(trained - 0.01)
    assert loaded.centroids is not None
    parsed = ops_only.parse(text, loaded)
    assert parsed.get(OUT_OF_SCOPE_SCORE_KEY) == pytest.approx(trained)
    assert parsed.get("intent")["name"] != "out_of_scope"  # just above the threshold
    assert ops_only.parse(text, ops_only.with_threshold(trained + 0.01)).get("intent")["name"] == (
        "out_of_scope"
    )


def test_an_out_of_scope_intent_in_the_training_data_is_kept_as_a_class(
    tmp_path: Path, cache_dir: Path
) -> None:
    pipeline = Pipeline(tmp_path, cache_dir, {"loss": "hinge", "out_of_scope_intent": "oos"})
    examples = [(p.format(s=s), i) for i, ps in INTENTS.items() for p in ps for s in SERVICES]
    pipeline.train(examples + [(t, "oos") for t in OUT_OF_SCOPE_VALID])
    parsed = pipeline.parse("what's for dinner tonight")
    assert parsed.get("intent")["name"] == "oos"
    # The score measures the best in-scope intent against the out-of-scope one.
    assert parsed.get(OUT_OF_SCOPE_SCORE_KEY) < pipeline.parse(
        "deploy payments to production"
    ).get(OUT_OF_SCOPE_SCORE_KEY)


@pytest.mark.parametrize(
    "bad", [{"out_of_scope_threshold": "high"}, {"out_of_scope_similarity_weight": -1},
            {"out_of_scope_intent": ""}],
)
def test_bad_out_of_scope_settings_are_refused(bad: dict[str, Any]) -> None:
    with pytest.raises(InvalidConfigException, match="out_of_scope"):
        config = {**LinearIntentClassifier.get_default_config(), **bad}
        LinearIntentClassifier.validate_config(config)
