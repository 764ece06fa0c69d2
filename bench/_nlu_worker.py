"""Trains and evaluates one NLU pipeline in its own process (so peak memory is its own).

Run by bench/nlu.py; prints progress on stderr and writes its results as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

OUT_OF_SCOPE_SCORE_KEY = "out_of_scope_score"
"""Set by nlu.LinearIntentClassifier (nlu/classifier.py); other pipelines lack it."""


def load_examples(path: Path) -> Any:
    """Rasa TrainingData from JSON Lines ({"text","intent"}) or Rasa NLU YAML/dir."""
    from rasa.shared.nlu.training_data.loading import load_data
    from rasa.shared.nlu.training_data.message import Message
    from rasa.shared.nlu.training_data.training_data import TrainingData

    if path.suffix == ".jsonl":
        messages = []
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, 1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                    text, intent = str(row["text"]).strip(), str(row["intent"]).strip()
                except (json.JSONDecodeError, KeyError, TypeError) as exc:
                    raise SystemExit(
                        f"{path}:{number}: expected a JSON object with 'text' and 'intent' ({exc})"
                    ) from exc
                if text and intent:
                    messages.append(Message(data={"text": text, "intent": intent}))
        return TrainingData(training_examples=messages)
    return load_data(str(path))


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def _prediction(gold: str, result: dict[str, Any]) -> dict[str, Any]:
    """One parse as the bench scores it (bench/_metrics.py)."""
    intent = result.get("intent") or {}
    confidence = float(intent.get("confidence") or 0.0)
    # The confidence the classifier gave, before a FallbackClassifier replaced it.
    ranked = [r for r in result.get("intent_ranking") or [] if r.get("name") != "nlu_fallback"]
    raw = float(ranked[0].get("confidence") or 0.0) if ranked else confidence
    score = result.get(OUT_OF_SCOPE_SCORE_KEY)
    return {
        "gold": gold,
        "predicted": intent.get("name") or "nlu_fallback",
        "confidence": confidence,
        "score": float(score) if score is not None else raw,
        "text": result.get("text"),
        # What a name check (bench/nlu.py --name-check) looks up: the service, job,
        # environment or project the request names, as the pipeline normalised it.
        "entities": [{key: e.get(key) for key in ("entity", "value", "start", "end")}
                     for e in result.get("entities") or []],
        # nlu.Vocabulary's words no in-scope example had (opsbot's pipeline only).
        "unseen_words": list(result.get("unseen_words") or []),
    }


async def _parse_all(agent: Any, data: Any) -> list[dict[str, Any]]:
    """Predictions for every labelled message of a split that is scored but not timed."""
    return [_prediction(m.get("intent"), await agent.parse_message(m.get("text")))
            for m in data.training_examples if m.get("text") and m.get("intent")]


async def _evaluate(
    model_path: str, test: Any, oos_label: str | None, valid: Any | None = None,
    sets: dict[str, Any] | None = None,
) -> dict[str, Any]:
    from rasa.core.agent import Agent

    from bench._metrics import score_predictions

    agent = Agent.load(model_path)
    examples = [m for m in test.training_examples if m.get("text") and m.get("intent")]
    predictions, latencies, scored = [], [], False
    # One warm-up parse: the first call pays for lazy initialisation in every pipeline.
    await agent.parse_message(examples[0].get("text"))
    for message in examples:
        start = time.perf_counter()
        result = await agent.parse_message(message.get("text"))
        latencies.append(time.perf_counter() - start)
        predictions.append(_prediction(message.get("intent"), result))
        scored = scored or OUT_OF_SCOPE_SCORE_KEY in result
    results: dict[str, Any] = {
        "examples": len(examples),
        **score_predictions(predictions, oos_label),
        "latency_p50_ms": _percentile(latencies, 0.5) * 1000,
        "latency_p99_ms": _percentile(latencies, 0.99) * 1000,
        # What the out-of-scope threshold applies to in this pipeline.
        "oos_score": OUT_OF_SCOPE_SCORE_KEY if scored else "confidence",
        "predictions": predictions,
    }
    if valid is not None:
        # For choosing the out-of-scope threshold (bench/nlu.py); never timed.
        results["valid_predictions"] = await _parse_all(agent, valid)
    if sets:
        # Near misses, held-out and development sets, scored by bench/nlu.py.
        results["set_predictions"] = {name: await _parse_all(agent, data)
                                      for name, data in sets.items()}
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, type=Path)
    parser.add_argument("--train", required=True, type=Path)
    parser.add_argument("--test", required=True, type=Path)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--oos-label", default=None)
    parser.add_argument("--valid", type=Path, default=None,
                        help="also parse this split (for the out-of-scope threshold)")
    parser.add_argument("--parse", action="append", default=[], metavar="NAME=PATH",
                        help="also parse this set (Rasa NLU YAML or JSON Lines) and save its "
                             "predictions under NAME; repeatable")
    args = parser.parse_args(argv)

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    from rasa.model_training import train_nlu
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLWriter
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    # INFO while training: Rasa shows its progress bars (DIET's epochs) only at INFO.
    configure_logging_and_warnings(logging.INFO)
    configure_structlog(logging.WARNING)
    sys.path.insert(0, str(Path.cwd()))  # the project's nlu/ components

    train = load_examples(args.train)
    test = load_examples(args.test)
    valid = load_examples(args.valid) if args.valid else None
    sets = {name: load_examples(Path(path))
            for name, _, path in (item.partition("=") for item in args.parse)}
    with tempfile.TemporaryDirectory(prefix="opsbot-bench-") as scratch:
        data_path = Path(scratch) / "nlu.yml"
        if args.train.suffix == ".jsonl":
            data_path.write_text(RasaYAMLWriter().dumps(train), encoding="utf-8")
        else:
            data_path = args.train
        print(f"training on {len(train.training_examples)} examples ...", file=sys.stderr, flush=True)
        start = time.perf_counter()
        model = train_nlu(str(args.config), str(data_path), str(Path(scratch) / "models"),
                          fixed_model_name="bench")
        train_seconds = time.perf_counter() - start
        if model is None:
            print("training failed", file=sys.stderr)
            return 1
        print(f"trained in {train_seconds:.1f}s; parsing {len(test.training_examples)} test messages ...",
              file=sys.stderr, flush=True)
        configure_logging_and_warnings(logging.WARNING)  # nothing logged per parse
        results = asyncio.run(_evaluate(model, test, args.oos_label, valid, sets))
    results["train_seconds"] = train_seconds
    results["train_examples"] = len(train.training_examples)
    results["peak_memory_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    args.out.write_text(json.dumps(results), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
