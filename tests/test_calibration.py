"""bench/_calibration.py: expected calibration error and the reliability diagram."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bench._calibration import (
    expected_calibration_error,
    labelled,
    plot_reliability,
    reliability,
)


def toy(*groups: tuple[float, int, int]) -> tuple[list[float], list[bool]]:
    """(confidence, how many, how many of them right) -> confidences and correctness."""
    confidences: list[float] = []
    correct: list[bool] = []
    for confidence, count, right in groups:
        confidences += [confidence] * count
        correct += [True] * right + [False] * (count - right)
    return confidences, correct


def test_a_perfectly_calibrated_set_has_no_error() -> None:
    # Right in 80% of what it is 80% sure of, 35% of what it is 35% sure of, always at 1.0.
    confidences, correct = toy((0.8, 10, 8), (0.35, 20, 7), (1.0, 4, 4))
    assert expected_calibration_error(confidences, correct) == pytest.approx(0.0)


def test_an_overconfident_set_has_the_error_computed_by_hand() -> None:
    # Half at 0.95 and 6 of 10 right: gap 0.35. Half at 0.75 and 5 of 10 right: gap 0.25.
    # ECE = 10/20 * 0.35 + 10/20 * 0.25 = 0.30.
    confidences, correct = toy((0.95, 10, 6), (0.75, 10, 5))
    assert expected_calibration_error(confidences, correct) == pytest.approx(0.30)
    # Always sure and always wrong: the worst.
    assert expected_calibration_error(*toy((1.0, 5, 0))) == pytest.approx(1.0)
    assert expected_calibration_error([], []) == 0.0


def test_bins_are_equal_width_and_1_goes_in_the_last() -> None:
    bins = reliability([0.0, 0.05, 0.1, 0.7, 0.99, 1.0], [True, False, True, True, False, True])
    assert len(bins) == 10 and bins[0].low == 0.0 and bins[-1].high == 1.0
    assert [b.count for b in bins] == [2, 1, 0, 0, 0, 0, 0, 1, 0, 2]
    assert bins[9].confidence == pytest.approx(0.995) and bins[9].accuracy == 0.5
    assert bins[2].confidence == 0.0 and bins[2].accuracy == 0.0  # empty


def row(gold: str, predicted: str, confidence: float, score: float = 5.0) -> dict[str, Any]:
    return {"gold": gold, "predicted": predicted, "confidence": confidence, "score": score}


def test_a_rejection_predicts_out_of_scope_with_the_confidence_it_reports() -> None:
    rows = [
        row("out_of_scope", "nlu_fallback", 0.7),  # abstained on an out-of-scope request
        row("deploy", "out_of_scope", 0.9),  # rejected an in-scope request
        row("deploy", "deploy", 0.8),
        row("out_of_scope", "deploy", 0.99),  # a near miss acted on
        row("out_of_scope", "logs", 0.6, score=1.0),  # below the out-of-scope threshold
    ]
    assert labelled(rows, oos_threshold=2.0) == ([0.7, 0.9, 0.8, 0.99, 0.6],
                                                 [True, False, True, False, True])
    assert labelled(rows)[1][-1] is False  # without the threshold: "logs", wrong


def test_the_reliability_diagram_is_a_png(tmp_path: Path) -> None:
    confidences, correct = toy((0.95, 10, 6), (0.75, 10, 5), (0.3, 3, 1))
    path = tmp_path / "plots" / "reliability.png"
    plot_reliability({"opsbot": reliability(confidences, correct),
                      "rasa-default": reliability(*toy((0.5, 4, 2)))}, path, "t")
    assert path.read_bytes().startswith(b"\x89PNG")
