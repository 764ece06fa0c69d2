"""NLU benchmark: opsbot's pipeline (config.yml) against Rasa's default pipeline.

Both are trained on the same data in the same run, each in its own process, one
after the other (so neither competes with the other for the CPU), and evaluated on
the same test set. Prints one table: intent accuracy, macro-F1, out-of-scope recall
(when the test set has out-of-scope examples), training seconds, parse latency p50
and p99, and peak memory.

    python -m bench.nlu --data ../shared/data/banking77
    python -m bench.nlu --data ../shared/data/clinc150
    python -m bench.nlu --train train.jsonl --test test.jsonl
    python -m bench.nlu                      # the project's own ops data
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = {
    "opsbot": ROOT / "config.yml",
    "rasa-default": ROOT / "bench" / "configs" / "rasa_default.yml",
}
OOS_LABELS = ("oos", "out_of_scope")


def _opsbot_config(source: Path, cache_dir: Path, target: Path) -> None:
    """config.yml without policies and with a fresh (cold) embedding cache."""
    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    config["policies"] = []
    for component in config.get("pipeline", []):
        if component.get("name", "").endswith("SentenceEmbeddingFeaturizer"):
            component["cache_dir"] = str(cache_dir)
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _oos_label(test: Path) -> str | None:
    if test.suffix != ".jsonl":
        return "out_of_scope"
    with test.open(encoding="utf-8") as handle:
        intents = {json.loads(line).get("intent") for line in handle if line.strip()}
    return next((label for label in OOS_LABELS if label in intents), None)


def run_pipeline(name: str, train: Path, test: Path, scratch: Path) -> dict[str, Any]:
    """Train and evaluate one pipeline in a child process; its progress shows live."""
    config = PIPELINES[name]
    if name == "opsbot":
        config = scratch / "opsbot_config.yml"
        _opsbot_config(PIPELINES["opsbot"], scratch / "embedding-cache", config)
    out = scratch / f"{name}.json"
    command = [
        sys.executable, "-m", "bench._nlu_worker", "--config", str(config),
        "--train", str(train), "--test", str(test), "--out", str(out),
    ]
    oos = _oos_label(test)
    if oos:
        command += ["--oos-label", oos]
    print(f"\n== {name}: {config.name} ==", file=sys.stderr, flush=True)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=ROOT, env=env)
    if completed.returncode != 0 or not out.exists():
        raise SystemExit(f"bench: the {name} pipeline failed (exit {completed.returncode}).")
    result = json.loads(out.read_text(encoding="utf-8"))
    result["pipeline"] = name
    result["wall_seconds"] = time.perf_counter() - started
    return result


def format_table(results: list[dict[str, Any]], title: str) -> str:
    """The results as a Markdown table (it reads well in a terminal too)."""
    has_oos = any(r.get("oos_recall") is not None for r in results)
    header = ["pipeline", "intent accuracy", "macro-F1"]
    header += ["out-of-scope recall"] if has_oos else []
    header += ["train s", "parse p50 ms", "parse p99 ms", "peak memory MB"]
    rows = []
    for r in results:
        row = [r["pipeline"], f"{r['accuracy'] * 100:.2f}%", f"{r['macro_f1'] * 100:.2f}"]
        if has_oos:
            row.append("n/a" if r.get("oos_recall") is None else f"{r['oos_recall'] * 100:.1f}%")
        row += [f"{r['train_seconds']:.1f}", f"{r['latency_p50_ms']:.1f}",
                f"{r['latency_p99_ms']:.1f}", f"{r['peak_memory_mb']:.0f}"]
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    lines = [f"{title}", ""]
    for i, row in enumerate([header, *rows]):
        lines.append("| " + " | ".join(str(x).ljust(w) for x, w in zip(row, widths)) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    if len(results) == 2 and results[0]["train_seconds"] > 0:
        a, b = results
        lines.append("")
        lines.append(
            f"{a['pipeline']} trains {b['train_seconds'] / a['train_seconds']:.1f}x faster than "
            f"{b['pipeline']}; accuracy {(a['accuracy'] - b['accuracy']) * 100:+.2f} points."
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.nlu", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, help="a folder with train.jsonl and test.jsonl")
    parser.add_argument("--train", type=Path, help="training data: JSON Lines or Rasa NLU YAML")
    parser.add_argument("--test", type=Path, help="test data: JSON Lines or Rasa NLU YAML")
    parser.add_argument("--pipelines", default="opsbot,rasa-default",
                        help="comma-separated, from: " + ", ".join(PIPELINES))
    parser.add_argument("--save", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)
    if args.data:
        if args.train or args.test:
            parser.error("give either --data or --train/--test, not both")
        args.train, args.test = args.data / "train.jsonl", args.data / "test.jsonl"
    elif bool(args.train) != bool(args.test):
        parser.error("--train and --test go together")
    elif not args.train:
        args.train, args.test = ROOT / "data" / "nlu", ROOT / "tests" / "nlu" / "regression.yml"
    for path in (args.train, args.test):
        if not path.exists():
            parser.error(f"{path} does not exist")
    names = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    unknown = [n for n in names if n not in PIPELINES]
    if unknown or not names:
        parser.error(f"unknown pipeline(s) {unknown}; choose from {', '.join(PIPELINES)}")
    args.names = names
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="opsbot-bench-") as scratch:
        results = [run_pipeline(n, args.train, args.test, Path(scratch)) for n in args.names]
    title = f"NLU benchmark: train {args.train} / test {args.test}"
    print("\n" + format_table(results, title))
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        summary = {"train": str(args.train), "test": str(args.test), "results": results}
        args.save.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
