"""How far a pipeline's confidence can be trusted: expected calibration error (ECE) and
the reliability diagram.

Why: opsbot decides whether to act by comparing a confidence with a threshold. That
only means something when the confidence is calibrated: of the messages it is 90% sure
of, about 90% should be right. A pipeline that gives 0.99 to requests it cannot serve
(issue 27) has a large ECE whatever its accuracy.

Each prediction counts with the confidence of the label it predicts. A rejection (the
out-of-scope intent, ``nlu_fallback``, or a score below the out-of-scope threshold)
predicts the out-of-scope label, with the confidence the pipeline reports for it (Rasa's
FallbackClassifier reports its own threshold), and is right when the gold label is that.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench._metrics import Prediction, rejected

BINS = 10
"""Equal-width confidence bins: [0, 0.1), [0.1, 0.2), ... [0.9, 1.0]."""


@dataclass(frozen=True)
class Bin:
    """One confidence bin: how many predictions fell in it, their mean confidence and
    the share of them that was right (both 0.0 when it is empty)."""

    low: float
    high: float
    count: int
    confidence: float
    accuracy: float


def labelled(
    rows: Sequence[Prediction], oos_label: str = "out_of_scope",
    oos_threshold: float | None = None,
) -> tuple[list[float], list[bool]]:
    """The confidence of each predicted label and whether that label is right."""
    confidences, correct = [], []
    for row in rows:
        label = oos_label if rejected(row, oos_label, oos_threshold) else row["predicted"]
        confidences.append(float(row["confidence"]))
        correct.append(label == row["gold"])
    return confidences, correct


def reliability(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS
) -> list[Bin]:
    """The predictions sorted into ``bins`` equal-width bins; 1.0 goes in the last one."""
    members: list[list[int]] = [[] for _ in range(bins)]
    for i, confidence in enumerate(confidences):
        members[min(bins - 1, max(0, int(confidence * bins)))].append(i)
    result = []
    for b, indices in enumerate(members):
        n = len(indices)
        result.append(Bin(
            low=b / bins, high=(b + 1) / bins, count=n,
            confidence=sum(confidences[i] for i in indices) / n if n else 0.0,
            accuracy=sum(correct[i] for i in indices) / n if n else 0.0,
        ))
    return result


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], bins: int = BINS
) -> float:
    """The gap between confidence and accuracy in each bin, weighted by its share of
    the predictions: 0 is perfectly calibrated, 1 always sure and always wrong."""
    total = len(confidences)
    if not total:
        return 0.0
    return sum(b.count / total * abs(b.accuracy - b.confidence)
               for b in reliability(confidences, correct, bins))


def plot_reliability(curves: Mapping[str, Sequence[Bin]], path: Path, title: str) -> None:
    """A reliability diagram: accuracy against mean confidence per bin, one line a
    pipeline, the diagonal (perfect calibration), and each bin's count underneath."""
    import matplotlib

    matplotlib.use("Agg")  # no display on a server or in CI
    import matplotlib.pyplot as plt

    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(7, 7.5), sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    width = 1 / BINS / (len(curves) + 1)
    for k, (name, bins) in enumerate(curves.items()):
        filled = [b for b in bins if b.count]
        top.plot([b.confidence for b in filled], [b.accuracy for b in filled], marker="o",
                 label=name)
        bottom.bar([b.low + (k + 0.5) * width for b in bins], [b.count for b in bins],
                   width=width, align="edge", label=name)
    top.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1.02), title=title)
    top.legend(loc="upper left")
    top.grid(alpha=0.3)
    bottom.set(xlabel="confidence of the predicted label", ylabel="predictions")
    bottom.set_xticks([b / BINS for b in range(BINS + 1)])
    bottom.grid(alpha=0.3, axis="y")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
