"""Scores the bench's predictions, and chooses the out-of-scope threshold on validation.

A prediction is a dict with the gold intent, the pipeline's predicted intent and a
``score`` (higher: more in scope): opsbot's ``out_of_scope_score``, or for a pipeline
without one the confidence of its best intent. A message is *rejected* when the
pipeline predicted the out-of-scope intent or fell back (``nlu_fallback``), or when
its score is below the threshold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

TARGET_ACCURACY = 0.94
STRICT_ACCURACY = 0.95  # the second operating point bench/nlu.py reports
"""In-scope accuracy the out-of-scope threshold must keep on the validation split."""

FALLBACK_INTENTS = frozenset({"nlu_fallback", "out_of_scope"})
"""Predictions that mean "not one of the in-scope intents" in every pipeline."""

Prediction = dict[str, Any]


def _rejected_by_pipeline(predicted: str | None, oos_label: str | None) -> bool:
    return predicted is None or predicted in FALLBACK_INTENTS or predicted == oos_label


def rejected(row: Prediction, oos_label: str | None, threshold: float | None = None) -> bool:
    """Whether the message counts as rejected (out of scope) under the threshold."""
    if _rejected_by_pipeline(row["predicted"], oos_label):
        return True
    return threshold is not None and float(row["score"]) < threshold


def acted_on(
    row: Prediction, fallback_threshold: float, oos_threshold: float | None = None,
    oos_label: str = "out_of_scope", name_check: Callable[[Prediction], bool] | None = None,
) -> bool:
    """Whether the assistant would act on this prediction: an in-scope intent, at or
    above the FallbackClassifier's threshold, not rejected by the out-of-scope score,
    and not refused by ``name_check`` (True: it names something unknown). On a near
    miss every True is a request served that should have been refused (issue 27)."""
    if rejected(row, oos_label, oos_threshold) or float(row["confidence"]) < fallback_threshold:
        return False
    return name_check is None or not name_check(row)


def score_predictions(
    rows: Sequence[Prediction], oos_label: str | None, threshold: float | None = None
) -> dict[str, Any]:
    """In-scope accuracy and macro-F1 (a rejection is wrong), and out-of-scope recall,
    precision and F1 (None without out-of-scope examples)."""
    from sklearn.metrics import f1_score

    gold_in, predicted_in, oos_rejected, in_rejected = [], [], 0, 0
    oos_total = 0
    for row in rows:
        is_rejected = rejected(row, oos_label, threshold)
        if row["gold"] == oos_label:
            oos_total += 1
            oos_rejected += is_rejected
        else:
            gold_in.append(row["gold"])
            predicted_in.append("<rejected>" if is_rejected else row["predicted"])
            in_rejected += is_rejected
    accuracy = sum(g == p for g, p in zip(gold_in, predicted_in)) / max(1, len(gold_in))
    macro_f1 = float(
        f1_score(gold_in, predicted_in, labels=sorted(set(gold_in)), average="macro",
                 zero_division=0)
    ) if gold_in else 0.0
    recall = precision = f1 = None
    if oos_total:
        recall = oos_rejected / oos_total
        all_rejected = oos_rejected + in_rejected
        precision = oos_rejected / all_rejected if all_rejected else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "accuracy": accuracy,
        "macro_f1": macro_f1,
        "oos_recall": recall,
        "oos_precision": precision,
        "oos_f1": f1,
    }


@dataclass(frozen=True)
class ThresholdChoice:
    """The threshold chosen on validation, and what it gave there."""

    threshold: float | None
    """None: no threshold keeps the target accuracy, or none is needed."""
    feasible: bool
    """Whether validation in-scope accuracy reaches the target at all."""
    accuracy: float
    oos_recall: float


def choose_threshold(
    rows: Sequence[Prediction], oos_label: str, target: float = TARGET_ACCURACY
) -> ThresholdChoice:
    """The threshold with the highest out-of-scope recall on these (validation)
    predictions whose in-scope accuracy is still at least ``target``; of equal
    recalls the lowest threshold, which keeps the most in-scope accuracy.

    Candidates lie halfway between neighbouring scores, so a threshold never sits
    exactly on a validation example. Rows rejected by the pipeline itself stay
    rejected whatever the threshold.
    """
    in_total = sum(r["gold"] != oos_label for r in rows)
    oos_total = len(rows) - in_total
    # In-scope examples that are right unless the threshold rejects them, and
    # out-of-scope examples that are accepted unless it does.
    correct = np.sort([float(r["score"]) for r in rows if r["gold"] != oos_label
                       and r["predicted"] == r["gold"]
                       and not _rejected_by_pipeline(r["predicted"], oos_label)])
    accepted_oos = np.sort([float(r["score"]) for r in rows if r["gold"] == oos_label
                            and not _rejected_by_pipeline(r["predicted"], oos_label)])
    base_rejected_oos = oos_total - len(accepted_oos)
    values = np.unique([float(r["score"]) for r in rows])
    candidates = np.concatenate([[-np.inf], (values[:-1] + values[1:]) / 2])
    accuracy = (len(correct) - np.searchsorted(correct, candidates, side="left")) / max(1, in_total)
    recall = (base_rejected_oos + np.searchsorted(accepted_oos, candidates, side="left")) / max(
        1, oos_total
    )
    allowed = np.flatnonzero(accuracy >= target)
    if not len(allowed):
        return ThresholdChoice(None, False, float(accuracy[0]), float(recall[0]))
    # Recall only grows with the threshold and accuracy only falls: the best is the
    # highest threshold that keeps the accuracy.
    best = allowed[-1]
    threshold = None if best == 0 else float(candidates[best])
    return ThresholdChoice(threshold, True, float(accuracy[best]), float(recall[best]))
