"""A linear intent classifier over the pipeline's sentence features.

Every sentence-level feature block in the message (each sparse featurizer's bag of
n-grams, each dense featurizer's embedding) is weighted and normalised on its own,
then a linear model is trained on their concatenation. Sparse counts get TF-IDF
weights learnt from the training data. Sentence embeddings alone, or n-grams alone,
each miss what the other catches; together they beat both (see bench/nlu.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.nlu.featurizers.featurizer import Featurizer
from rasa.shared.exceptions import InvalidConfigException
from rasa.shared.nlu.constants import (
    FEATURE_TYPE_SENTENCE,
    INTENT,
    INTENT_NAME_KEY,
    PREDICTED_CONFIDENCE_KEY,
    TEXT,
)
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

logger = logging.getLogger(__name__)

_MODEL_FILE = "linear_intent_classifier.npz"


@dataclass
class _Block:
    """How one featurizer's sentence features enter the classifier."""

    origin: str
    sparse: bool
    width: int
    weight: float
    idf: np.ndarray | None = None


def _sentence_features(message: Message) -> dict[str, Any]:
    """The message's sentence-level TEXT features by featurizer name."""
    found: dict[str, Any] = {}
    for feature in message.features:
        if feature.attribute == TEXT and feature.type == FEATURE_TYPE_SENTENCE:
            found[feature.origin] = feature.features
    return found


def _softmax(scores: np.ndarray) -> np.ndarray:
    shifted = scores - scores.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@DefaultV1Recipe.register(
    DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True
)
class LinearIntentClassifier(IntentClassifier, GraphComponent):
    """Intent classification with a linear model over sparse and dense sentence features.

    Config (config.yml):
      loss: ``logistic`` (multinomial logistic regression: calibrated confidences)
        or ``hinge`` (linear SVM; confidences from a softmax over its margins)
      C: inverse regularisation strength
      dense_weight / sparse_weight: how much each kind of block counts
      ranking_length: how many intents to report in intent_ranking
    """

    @classmethod
    def required_components(cls) -> list[type]:
        return [Featurizer]

    @staticmethod
    def required_packages() -> list[str]:
        return ["sklearn"]

    @staticmethod
    def get_default_config() -> dict[str, Any]:
        return {
            "loss": "logistic",
            "C": 20.0,
            "max_iter": 300,
            "dense_weight": 1.0,
            "sparse_weight": 0.5,
            "svm_temperature": 10.0,
            "ranking_length": 10,
            "random_state": 42,
        }

    @classmethod
    def validate_config(cls, config: dict[str, Any]) -> None:
        if config.get("loss") not in ("logistic", "hinge"):
            raise InvalidConfigException(
                f"LinearIntentClassifier: loss must be 'logistic' or 'hinge', "
                f"got {config.get('loss')!r}."
            )
        for key in ("C", "dense_weight", "sparse_weight", "svm_temperature"):
            value = config.get(key)
            if not isinstance(value, (int, float)) or value <= 0:
                raise InvalidConfigException(
                    f"LinearIntentClassifier: {key} must be a positive number, got {value!r}."
                )

    def __init__(
        self,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        blocks: list[_Block] | None = None,
        classes: np.ndarray | None = None,
        coef: np.ndarray | None = None,
        intercept: np.ndarray | None = None,
        scale: float = 1.0,
    ) -> None:
        self.config = {**self.get_default_config(), **config}
        self.validate_config(self.config)
        self._model_storage = model_storage
        self._resource = resource
        self.blocks = blocks or []
        self.classes = classes if classes is not None else np.array([], dtype=object)
        self.coef = coef
        self.intercept = intercept
        self.scale = scale
        self._weights_by_feature: np.ndarray | None = None

    @classmethod
    def create(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> LinearIntentClassifier:
        return cls(config, model_storage, resource)

    # -- features ---------------------------------------------------------------

    def _plan_blocks(self, messages: list[Message]) -> list[_Block]:
        """Decide the blocks (and fit IDF weights) from the training messages."""
        per_origin: dict[str, list[Any]] = {}
        for message in messages:
            for origin, matrix in _sentence_features(message).items():
                per_origin.setdefault(origin, []).append(matrix)
        blocks = []
        for origin in sorted(per_origin):
            rows = per_origin[origin]
            if len(rows) != len(messages):
                logger.warning(
                    "Featurizer '%s' did not featurize every training example; "
                    "its features are ignored.",
                    origin,
                )
                continue
            if sp.issparse(rows[0]):
                counts = sp.vstack(rows).tocsr()
                df = np.bincount(counts.indices, minlength=counts.shape[1])
                idf = np.log((1 + len(rows)) / (1 + df)) + 1.0
                blocks.append(
                    _Block(origin, True, counts.shape[1], self.config["sparse_weight"], idf)
                )
            else:
                width = int(np.asarray(rows[0]).reshape(-1).shape[0])
                blocks.append(_Block(origin, False, width, self.config["dense_weight"]))
        if not blocks:
            raise InvalidConfigException(
                "LinearIntentClassifier found no sentence features. Put a featurizer "
                "(CountVectorsFeaturizer, nlu.SentenceEmbeddingFeaturizer) before it."
            )
        return blocks

    def _matrix(self, messages: list[Message]) -> sp.csr_matrix:
        parts = []
        for block in self.blocks:
            rows = []
            for message in messages:
                value = _sentence_features(message).get(block.origin)
                if value is None:
                    rows.append(sp.csr_matrix((1, block.width), dtype=np.float32))
                elif block.sparse:
                    rows.append(sp.csr_matrix(value, dtype=np.float32))
                else:
                    rows.append(sp.csr_matrix(np.asarray(value, dtype=np.float32).reshape(1, -1)))
            matrix = sp.vstack(rows).tocsr()
            if block.sparse:
                assert block.idf is not None
                matrix.data = 1.0 + np.log(np.maximum(matrix.data, 1e-12))
                matrix = matrix @ sp.diags(block.idf.astype(np.float32))
            norms = np.sqrt(np.asarray(matrix.multiply(matrix).sum(axis=1)).reshape(-1))
            norms[norms == 0] = 1.0
            matrix = sp.diags((block.weight / norms).astype(np.float32)) @ matrix
            parts.append(matrix)
        return sp.hstack(parts).tocsr()

    # -- training ---------------------------------------------------------------

    def train(self, training_data: TrainingData) -> Resource:
        examples = [
            m for m in training_data.intent_examples if m.get(INTENT) and m.get(TEXT)
        ]
        labels = np.array([m.get(INTENT) for m in examples], dtype=object)
        if len(set(labels)) < 2:
            logger.warning(
                "LinearIntentClassifier needs at least two intents to train; skipping."
            )
            return self._resource
        self.blocks = self._plan_blocks(examples)
        features = self._matrix(examples)
        if self.config["loss"] == "logistic":
            from sklearn.linear_model import LogisticRegression

            model: Any = LogisticRegression(
                C=self.config["C"],
                max_iter=self.config["max_iter"],
                random_state=self.config["random_state"],
            )
            self.scale = 1.0
        else:
            from sklearn.svm import LinearSVC

            model = LinearSVC(C=self.config["C"], random_state=self.config["random_state"])
            self.scale = float(self.config["svm_temperature"])
        model.fit(features, labels)
        self.classes = np.asarray(model.classes_, dtype=object)
        coef = np.asarray(model.coef_, dtype=np.float32)
        intercept = np.asarray(model.intercept_, dtype=np.float32)
        if len(self.classes) == 2:  # sklearn's binary case: one row for the second class
            coef = np.vstack([-coef, coef]) / 2
            intercept = np.concatenate([-intercept, intercept]) / 2
        self.coef, self.intercept = coef, intercept
        self._weights_by_feature = None
        self.persist()
        return self._resource

    # -- prediction -------------------------------------------------------------

    def _scores(self, message: Message) -> np.ndarray:
        """Linear scores of one message, block by block: no sparse-matrix assembly,
        which would cost more than the arithmetic at parse time."""
        assert self.coef is not None and self.intercept is not None
        if self._weights_by_feature is None:
            self._weights_by_feature = np.ascontiguousarray(self.coef.T)
        weights = self._weights_by_feature
        scores = self.intercept.astype(np.float64).copy()
        features = _sentence_features(message)
        offset = 0
        for block in self.blocks:
            value = features.get(block.origin)
            if value is not None:
                if block.sparse:
                    row = sp.csr_matrix(value)
                    assert block.idf is not None
                    idx = row.indices
                    vals = (1.0 + np.log(np.maximum(row.data, 1e-12))) * block.idf[idx]
                    norm = float(np.sqrt(vals @ vals)) or 1.0
                    scores += (block.weight / norm) * (vals @ weights[offset + idx])
                else:
                    vec = np.asarray(value, dtype=np.float64).reshape(-1)
                    norm = float(np.sqrt(vec @ vec)) or 1.0
                    scores += (block.weight / norm) * (vec @ weights[offset : offset + block.width])
            offset += block.width
        return scores

    def predict_proba(self, messages: list[Message]) -> np.ndarray:
        """Probabilities per message over ``self.classes``."""
        scores = np.vstack([self._scores(m) for m in messages])
        return _softmax(scores * self.scale)

    def process(self, messages: list[Message]) -> list[Message]:
        if self.coef is None or not messages:
            for message in messages:
                message.set(INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0}, add_to_output=True)
            return messages
        probabilities = self.predict_proba(messages)
        length = self.config["ranking_length"]
        for message, row in zip(messages, probabilities):
            order = np.argsort(-row)
            if length and length > 0:
                order = order[:length]
            ranking = [
                {INTENT_NAME_KEY: str(self.classes[i]), PREDICTED_CONFIDENCE_KEY: float(row[i])}
                for i in order
            ]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set("intent_ranking", ranking, add_to_output=True)
        return messages

    # -- persistence ------------------------------------------------------------

    def persist(self) -> None:
        with self._model_storage.write_to(self._resource) as directory:
            np.savez_compressed(
                directory / _MODEL_FILE,
                classes=np.asarray(self.classes, dtype=str),
                coef=self.coef,
                intercept=self.intercept,
                scale=np.array(self.scale),
                origins=np.array([b.origin for b in self.blocks], dtype=str),
                sparse=np.array([b.sparse for b in self.blocks]),
                widths=np.array([b.width for b in self.blocks]),
                weights=np.array([b.weight for b in self.blocks]),
                **{f"idf_{i}": b.idf for i, b in enumerate(self.blocks) if b.idf is not None},
            )

    @classmethod
    def load(
        cls,
        config: dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> LinearIntentClassifier:
        try:
            with model_storage.read_from(resource) as directory:
                with np.load(directory / _MODEL_FILE, allow_pickle=False) as saved:
                    blocks = [
                        _Block(
                            str(origin),
                            bool(sparse),
                            int(width),
                            float(weight),
                            saved[f"idf_{i}"] if f"idf_{i}" in saved.files else None,
                        )
                        for i, (origin, sparse, width, weight) in enumerate(
                            zip(saved["origins"], saved["sparse"], saved["widths"], saved["weights"])
                        )
                    ]
                    return cls(
                        config,
                        model_storage,
                        resource,
                        blocks=blocks,
                        classes=np.asarray(saved["classes"], dtype=object),
                        coef=saved["coef"],
                        intercept=saved["intercept"],
                        scale=float(saved["scale"]),
                    )
        except (ValueError, FileNotFoundError):
            logger.debug("LinearIntentClassifier was not trained; it predicts nothing.")
            return cls(config, model_storage, resource)
