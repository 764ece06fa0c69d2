"""A linear intent classifier over the pipeline's sentence features.

Every sentence-level feature block in the message (each sparse featurizer's bag of
n-grams, each dense featurizer's embedding) is weighted and normalised on its own,
then a linear model is trained on their concatenation. Sparse counts get TF-IDF
weights learnt from the training data. Sentence embeddings alone, or n-grams alone,
each miss what the other catches; together they beat both (see bench/nlu.py).

Out-of-scope detection: every parse reports an ``out_of_scope_score``, how far the best
in-scope intent is ahead of the out-of-scope intent (difference of their linear
scores) plus how close the text's embedding is to that intent's training examples
(cosine to their centroid, weighted). Below ``out_of_scope_threshold`` the message is
classified as the out-of-scope intent instead of the nearest in-scope one.
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
OUT_OF_SCOPE_SCORE_KEY = "out_of_scope_score"
"""Where a parse result carries the out-of-scope score (higher: more in scope)."""


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


def _sigmoid(value: float) -> float:
    return float(1.0 / (1.0 + np.exp(-np.clip(value, -500.0, 500.0))))


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
      out_of_scope_intent: the intent whose training examples are out of scope
      out_of_scope_threshold: null (off), or a number: a message whose
        out-of-scope score is below it is classified as out_of_scope_intent
      out_of_scope_similarity_weight: how much the cosine to the best intent's
        centroid counts in the out-of-scope score
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
            # 0 or 1: no calibration, the temperature above (or 1 for logistic) is used.
            "calibration_folds": 5,
            "ranking_length": 10,
            "random_state": 42,
            "out_of_scope_intent": "out_of_scope",
            "out_of_scope_threshold": None,
            # Chosen on clinc150's validation split (bench/nlu.py, README).
            "out_of_scope_similarity_weight": 2.0,
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
        threshold = config.get("out_of_scope_threshold")
        if threshold is not None and (
            isinstance(threshold, bool) or not isinstance(threshold, (int, float))
        ):
            raise InvalidConfigException(
                "LinearIntentClassifier: out_of_scope_threshold must be a number or null "
                f"(off), got {threshold!r}."
            )
        weight = config.get("out_of_scope_similarity_weight")
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
            raise InvalidConfigException(
                "LinearIntentClassifier: out_of_scope_similarity_weight must be a number "
                f">= 0, got {weight!r}."
            )
        intent = config.get("out_of_scope_intent")
        if not isinstance(intent, str) or not intent:
            raise InvalidConfigException(
                "LinearIntentClassifier: out_of_scope_intent must be an intent name, "
                f"got {intent!r}."
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
        centroids: np.ndarray | None = None,
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
        # Per class, the unit-length mean of its training embeddings (dense blocks
        # only, each block normalised on its own): for the out-of-scope score.
        self.centroids = centroids
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
        self.scale = self._calibrated_scale(features, labels, model) or self.scale
        coef = np.asarray(model.coef_, dtype=np.float32)
        intercept = np.asarray(model.intercept_, dtype=np.float32)
        if len(self.classes) == 2:  # sklearn's binary case: one row for the second class
            coef = np.vstack([-coef, coef]) / 2
            intercept = np.concatenate([-intercept, intercept]) / 2
        self.coef, self.intercept = coef, intercept
        self.centroids = self._centroids(features, labels)
        self._weights_by_feature = None
        self.persist()
        return self._resource

    def _calibrated_scale(self, features: sp.csr_matrix, labels: np.ndarray,
                          model: Any) -> float | None:
        """The temperature that turns linear scores into calibrated confidences, fitted
        on out-of-fold scores (k-fold over the training data, stratified).

        Why: a linear SVM's margins on its own training data are all large, so any fixed
        temperature makes every confidence 1.00 and a 0.7 fallback never fires. Scores on
        examples a fold did not train on are as confident as the model is on new text;
        the temperature minimising their log loss makes "0.8" mean right 8 times in 10.
        None when there are too few examples to hold any out (the configured one stays).
        """
        folds = int(self.config["calibration_folds"])
        counts = np.unique(labels, return_counts=True)[1]
        if folds < 2 or len(labels) < 2 * folds or counts.max() < folds:
            return None
        from sklearn.base import clone
        from sklearn.model_selection import StratifiedKFold

        index = {c: i for i, c in enumerate(self.classes)}
        held_out = np.full((len(labels), len(self.classes)), -1e3)
        split = StratifiedKFold(folds, shuffle=True, random_state=self.config["random_state"])
        import warnings

        with warnings.catch_warnings():  # classes smaller than the fold count are fine here
            warnings.simplefilter("ignore", UserWarning)
            for train_rows, test_rows in split.split(np.zeros(len(labels)), labels):
                fold = clone(model).fit(features[train_rows], labels[train_rows])
                scores = np.asarray(fold.decision_function(features[test_rows]))
                columns = [index[c] for c in fold.classes_]
                if scores.ndim == 1:  # sklearn's binary case
                    scores = np.vstack([-scores, scores]).T / 2
                held_out[np.ix_(test_rows, columns)] = scores
        gold = np.array([index[c] for c in labels])

        def log_loss(log_t: float) -> float:
            scaled = held_out * np.exp(log_t)
            scaled -= scaled.max(axis=1, keepdims=True)
            log_z = np.log(np.exp(scaled).sum(axis=1))
            return float(np.mean(log_z - scaled[np.arange(len(gold)), gold]))

        from scipy.optimize import minimize_scalar

        best = minimize_scalar(log_loss, bounds=(np.log(0.05), np.log(500.0)), method="bounded")
        return float(np.exp(best.x))

    def _centroids(self, features: sp.csr_matrix, labels: np.ndarray) -> np.ndarray | None:
        """Each class's centroid in the dense blocks, every block unit length."""
        offset, parts = 0, []
        for block in self.blocks:
            if not block.sparse:
                vectors = features[:, offset : offset + block.width].toarray() / block.weight
                means = np.vstack([vectors[labels == c].mean(axis=0) for c in self.classes])
                norms = np.linalg.norm(means, axis=1, keepdims=True)
                norms[norms == 0] = 1.0
                parts.append(means / norms)
            offset += block.width
        return np.hstack(parts).astype(np.float32) if parts else None

    # -- prediction -------------------------------------------------------------

    def _scores(self, message: Message) -> tuple[np.ndarray, np.ndarray | None]:
        """Linear scores of one message, block by block: no sparse-matrix assembly,
        which would cost more than the arithmetic at parse time. Also its dense
        blocks, each unit length (zeros where missing), for the out-of-scope score."""
        assert self.coef is not None and self.intercept is not None
        if self._weights_by_feature is None:
            self._weights_by_feature = np.ascontiguousarray(self.coef.T)
        weights = self._weights_by_feature
        scores = self.intercept.astype(np.float64).copy()
        features = _sentence_features(message)
        dense: list[np.ndarray] = []
        offset = 0
        for block in self.blocks:
            value = features.get(block.origin)
            if not block.sparse:
                dense.append(np.zeros(block.width))
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
                    dense[-1] = vec / norm
            offset += block.width
        return scores, (np.concatenate(dense) if dense else None)

    def predict_proba(self, messages: list[Message]) -> np.ndarray:
        """Probabilities per message over ``self.classes`` (no out-of-scope rejection)."""
        scores = np.vstack([self._scores(m)[0] for m in messages])
        return _softmax(scores * self.scale)

    def _out_of_scope_index(self) -> int | None:
        matches = np.flatnonzero(self.classes == self.config["out_of_scope_intent"])
        return int(matches[0]) if len(matches) else None

    def out_of_scope_score(self, scores: np.ndarray, dense: np.ndarray | None) -> float:
        """How clearly a message is in scope (higher: more), from its linear scores
        and dense blocks: the best in-scope intent's lead over the out-of-scope intent
        (or its score alone, with no out-of-scope intent in the training data), plus
        the weighted cosine of the text to that intent's centroid."""
        oos = self._out_of_scope_index()
        in_scope = scores.copy()
        if oos is not None:
            in_scope[oos] = -np.inf
        best = int(np.argmax(in_scope))
        score = float(scores[best] - (scores[oos] if oos is not None else 0.0))
        weight = float(self.config["out_of_scope_similarity_weight"])
        if weight and dense is not None and self.centroids is not None:
            dense_blocks = sum(not b.sparse for b in self.blocks)
            score += weight * float(dense @ self.centroids[best]) / dense_blocks
        return score

    def _ranking(self, scores: np.ndarray, oos_score: float) -> list[tuple[str, float]]:
        """(intent, confidence), best first; the out-of-scope intent first when the
        message is rejected as out of scope."""
        probabilities = _softmax(scores[None, :] * self.scale)[0]
        threshold = self.config["out_of_scope_threshold"]
        oos = self._out_of_scope_index()
        predicted = int(np.argmax(probabilities))
        order = np.argsort(-probabilities)
        if threshold is None or predicted == oos or oos_score >= threshold:
            return [(str(self.classes[i]), float(probabilities[i])) for i in order]
        # Rejected: how far below the threshold, on the scale that turns scores into
        # confidences, gives the out-of-scope intent a confidence above 0.5; the
        # others share the rest in their old proportions.
        in_scope_share = _sigmoid(self.scale * (oos_score - threshold))
        others = [i for i in order if i != oos]
        rest = float(sum(probabilities[i] for i in others)) or 1.0
        return [(str(self.config["out_of_scope_intent"]), 1.0 - in_scope_share)] + [
            (str(self.classes[i]), float(probabilities[i]) / rest * in_scope_share)
            for i in others
        ]

    def process(self, messages: list[Message]) -> list[Message]:
        if self.coef is None or not messages:
            for message in messages:
                message.set(INTENT, {INTENT_NAME_KEY: None, PREDICTED_CONFIDENCE_KEY: 0.0},
                            add_to_output=True)
            return messages
        length = self.config["ranking_length"]
        for message in messages:
            scores, dense = self._scores(message)
            oos_score = self.out_of_scope_score(scores, dense)
            ranked = self._ranking(scores, oos_score)
            if length and length > 0:
                ranked = ranked[:length]
            ranking = [
                {INTENT_NAME_KEY: name, PREDICTED_CONFIDENCE_KEY: confidence}
                for name, confidence in ranked
            ]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set("intent_ranking", ranking, add_to_output=True)
            message.set(OUT_OF_SCOPE_SCORE_KEY, oos_score, add_to_output=True)
        return messages

    # -- persistence ------------------------------------------------------------

    def persist(self) -> None:
        assert self.coef is not None and self.intercept is not None  # persisted once trained
        with self._model_storage.write_to(self._resource) as directory:
            np.savez_compressed(
                directory / _MODEL_FILE,
                classes=np.asarray(self.classes, dtype=str),
                coef=self.coef,
                intercept=self.intercept,
                scale=np.array(self.scale),
                **({"centroids": self.centroids} if self.centroids is not None else {}),
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
                            zip(saved["origins"], saved["sparse"], saved["widths"],
                                saved["weights"], strict=True)
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
                        centroids=saved["centroids"] if "centroids" in saved.files else None,
                    )
        except (ValueError, FileNotFoundError):
            logger.debug("LinearIntentClassifier was not trained; it predicts nothing.")
            return cls(config, model_storage, resource)
