"""NLU benchmark: opsbot's pipeline (config.yml) against Rasa's default pipeline.

Both are trained on the same data in the same run, each in its own process, one
after the other (so neither competes with the other for the CPU), and evaluated on
the same test set. Prints one table: intent accuracy, macro-F1, out-of-scope recall
(when the test set has out-of-scope examples), training seconds, parse latency p50
and p99, and peak memory.

With out-of-scope examples and a validation split (``valid.jsonl`` next to the data,
or ``--valid``), each pipeline's out-of-scope threshold is chosen on validation only
(bench/_metrics.py: the highest out-of-scope recall that keeps in-scope accuracy at
94% or more there) and then applied to the test predictions.

    python -m bench.nlu --data DATA/banking77     # a folder with train.jsonl and test.jsonl
    python -m bench.nlu --data DATA/clinc150      # ... and valid.jsonl
    python -m bench.nlu --train train.jsonl --test test.jsonl [--valid valid.jsonl]
    python -m bench.nlu                      # the project's own ops data
    python -m bench.nlu --test tests/nlu/heldout.yml   # ops data, held-out test set
    python -m bench.nlu --pipelines opsbot --name-check module:function --plot r.png

The project's own data is trained as ``opsbot train`` trains it: ``data/nlu`` plus the
examples of the team-defined operations (``operations/*.yml``). Each pipeline trained on
it also parses the near-miss set (``--near-misses``, tests/nlu/near_misses.yml), the
held-out set and the development set, for three more columns: in-scope accuracy on the
held-out set, the share of near misses it would act on (issue 27: requests it cannot
serve, answered with the nearest intent), and its expected calibration error on the
development set (regression.yml and the near misses; bench/_calibration.py).
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import json
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import yaml

from bench._calibration import (
    Bin,
    expected_calibration_error,
    labelled,
    plot_reliability,
    reliability,
)
from bench._metrics import (
    STRICT_ACCURACY,
    TARGET_ACCURACY,
    Prediction,
    acted_on,
    choose_threshold,
    score_predictions,
)

ROOT = Path(__file__).resolve().parent.parent
PROJECT_NLU = ROOT / "data" / "nlu"
PIPELINES = {
    "opsbot": ROOT / "config.yml",
    "rasa-default": ROOT / "bench" / "configs" / "rasa_default.yml",
}
OOS_LABELS = ("oos", "out_of_scope")
VALIDATION_FILES = ("valid.jsonl", "validation.jsonl", "dev.jsonl")
OPS_SETS = ROOT / "tests" / "nlu"
UNKNOWN_NAME = "unknown_name"
"""Near misses in scope for the classifier that only a name check refuses."""
NameCheck = Callable[[Prediction], bool]


def _opsbot_config(
    source: Path, cache_dir: Path, target: Path, oos_label: str | None = None,
    threshold_from_validation: bool = False,
) -> None:
    """config.yml without policies and with a fresh (cold) embedding cache; the
    classifier told the data's out-of-scope label, and with no threshold of its own
    when the bench chooses one on validation."""
    config = yaml.safe_load(source.read_text(encoding="utf-8"))
    config["policies"] = []
    for component in config.get("pipeline", []):
        if component.get("name", "").endswith("SentenceEmbeddingFeaturizer"):
            component["cache_dir"] = str(cache_dir)
        if component.get("name", "").endswith("LinearIntentClassifier"):
            if oos_label:
                component["out_of_scope_intent"] = oos_label
            if threshold_from_validation:
                component["out_of_scope_threshold"] = None
    target.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")


def _oos_label(test: Path) -> str | None:
    if test.suffix != ".jsonl":
        return "out_of_scope"
    with test.open(encoding="utf-8") as handle:
        intents = {json.loads(line).get("intent") for line in handle if line.strip()}
    return next((label for label in OOS_LABELS if label in intents), None)


def fingerprint(
    name: str, train: Path, test: Path, valid: Path | None = None, sets: tuple[Path, ...] = ()
) -> str:
    """What a result depends on: the pipeline's config, the data and the bench code.
    What is computed from the saved predictions of ``sets`` (measure_sets) is computed
    again on every run, so bench/_calibration.py and a name check are not part of it."""
    digest = hashlib.sha256(name.encode())
    sources = [PIPELINES[name], ROOT / "bench" / "_nlu_worker.py", ROOT / "bench" / "_metrics.py"]
    if name == "opsbot":
        sources += sorted((ROOT / "nlu").glob("*.py"))
    for path in [*sources, train, test, *([valid] if valid else []), *sets]:
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(file.name.encode())
            digest.update(file.read_bytes())
    return digest.hexdigest()[:16]


def apply_validation_threshold(result: dict[str, Any], oos_label: str) -> None:
    """Choose the out-of-scope threshold on the validation predictions only, then
    score the test predictions with it (in place; the numbers without it are kept)."""
    choice = choose_threshold(result["valid_predictions"], oos_label)
    keys = ("accuracy", "macro_f1", "oos_recall", "oos_precision", "oos_f1")
    result["without_threshold"] = {k: result.get(k) for k in keys}
    result.update(score_predictions(result["predictions"], oos_label, choice.threshold))
    result["oos_threshold"] = {
        "threshold": choice.threshold,
        "score": result.get("oos_score", "confidence"),
        "target_accuracy": TARGET_ACCURACY,
        "reached_on_validation": choice.feasible,
        "valid_accuracy": choice.accuracy,
        "valid_oos_recall": choice.oos_recall,
    }
    # A stricter operating point (issue 27: out-of-scope recall at 95% in scope), also
    # chosen on validation only; the row above keeps its meaning.
    strict = choose_threshold(result["valid_predictions"], oos_label, STRICT_ACCURACY)
    scored = score_predictions(result["predictions"], oos_label, strict.threshold)
    result["at_strict_accuracy"] = {
        "target_accuracy": STRICT_ACCURACY, "threshold": strict.threshold,
        "reached_on_validation": strict.feasible, "accuracy": scored["accuracy"],
        "oos_recall": scored["oos_recall"],
    }


def thresholds(config: Path) -> tuple[float, float | None]:
    """The config's fallback threshold (its FallbackClassifier's, Rasa's default when it
    sets none, 0 without one) and out-of-scope threshold (None: off): below either,
    opsbot asks or declines instead of acting."""
    from rasa.core.constants import DEFAULT_NLU_FALLBACK_THRESHOLD

    fallback, oos = 0.0, None
    for component in yaml.safe_load(config.read_text(encoding="utf-8")).get("pipeline") or []:
        if component.get("name", "").endswith("FallbackClassifier"):
            fallback = float(component.get("threshold", DEFAULT_NLU_FALLBACK_THRESHOLD))
        if component.get("name", "").endswith("LinearIntentClassifier"):
            oos = component.get("out_of_scope_threshold")
    return fallback, oos


def run_pipeline(
    name: str, train: Path, test: Path, scratch: Path, valid: Path | None = None,
    sets: dict[str, Path] | None = None,
) -> dict[str, Any]:
    """Train and evaluate one pipeline in a child process; its progress shows live."""
    sets = sets or {}
    oos = _oos_label(test)
    # The validation split serves only the out-of-scope threshold.
    threshold_split = valid if oos else None
    config = PIPELINES[name]
    if name == "opsbot":
        config = scratch / "opsbot_config.yml"
        _opsbot_config(PIPELINES["opsbot"], scratch / "embedding-cache", config, oos,
                       threshold_from_validation=threshold_split is not None)
    out = scratch / f"{name}.json"
    command = [
        sys.executable, "-m", "bench._nlu_worker", "--config", str(config),
        "--train", str(train), "--test", str(test), "--out", str(out),
    ]
    if oos:
        command += ["--oos-label", oos]
    if threshold_split:
        command += ["--valid", str(threshold_split)]
    for set_name, path in sets.items():
        command += ["--parse", f"{set_name}={path}"]
    print(f"\n== {name}: {config.name} ==", file=sys.stderr, flush=True)
    # A cold start for every pipeline: Rasa's training cache (.rasa/cache) would otherwise
    # restore components trained by an earlier run and make training look instant.
    env = {**os.environ, "PYTHONPATH": str(ROOT),
           "RASA_CACHE_DIRECTORY": str(scratch / f"rasa-cache-{name}"), "RASA_MAX_CACHE_SIZE": "0"}
    started = time.perf_counter()
    started_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    completed = subprocess.run(command, cwd=ROOT, env=env)
    if completed.returncode != 0 or not out.exists():
        raise SystemExit(f"bench: the {name} pipeline failed (exit {completed.returncode}).")
    result = json.loads(out.read_text(encoding="utf-8"))
    result["pipeline"] = name
    result["fallback_threshold"], result["out_of_scope_threshold"] = thresholds(config)
    if threshold_split and oos:
        apply_validation_threshold(result, oos)
    result["wall_seconds"] = time.perf_counter() - started
    result["fingerprint"] = fingerprint(name, train, test, valid, tuple(sets.values()))
    result["started_at"] = started_at
    result["finished_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result["commit"] = source_commit()
    return result


def measure_sets(result: dict[str, Any], name_check: NameCheck | None = None) -> None:
    """From the predictions of the near-miss, held-out and development sets (in place):
    the near misses acted on, per gold label and with the name check; held-out in-scope
    accuracy; the development set's ECE and reliability bins. ``unknown_name`` rows
    leave calibration out: the classifier is right to read them as an intent."""
    sets = result.get("set_predictions")
    if not sets:
        return
    fallback, chosen = result["fallback_threshold"], result.get("oos_threshold")
    # The threshold chosen on a validation split, if any, replaces the config's.
    oos = chosen["threshold"] if chosen else result["out_of_scope_threshold"]

    def acted(check: NameCheck | None) -> dict[str, dict[str, int]]:
        near = sets["near_misses"]
        groups = {"all": near, **{label: [r for r in near if r["gold"] == label]
                                  for label in sorted({r["gold"] for r in near})}}
        return {group: {"acted_on": sum(acted_on(r, fallback, oos, name_check=check)
                                        for r in rows), "total": len(rows)}
                for group, rows in groups.items()}

    result["near_misses"] = acted(None)
    result["near_misses_name_check"] = acted(name_check) if name_check else None
    result["heldout_accuracy"] = score_predictions(sets["heldout"], "out_of_scope", oos)[
        "accuracy"]
    dev = [*sets["regression"], *(r for r in sets["near_misses"] if r["gold"] != UNKNOWN_NAME)]
    confidences, correct = labelled(dev, "out_of_scope", oos)
    result["ece_dev"] = expected_calibration_error(confidences, correct)
    result["reliability_dev"] = [asdict(b) for b in reliability(confidences, correct)]


def source_commit() -> str:
    """The commit the bench ran at (with ``+changes`` when the work tree differed from it),
    so a saved result says which code it measured; ``unknown`` outside a git checkout."""
    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                              check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    commit = git("rev-parse", "--short=7", "HEAD")
    if not commit:
        return "unknown"
    changed = git("status", "--porcelain", "--untracked-files=no", "--", ".",
                  ":(exclude)bench/results")  # the results it writes are not the code
    return commit + ("+changes" if changed else "")


def format_table(results: list[dict[str, Any]], title: str) -> str:
    """The results as a Markdown table (it reads well in a terminal too)."""
    has_oos = any(r.get("oos_recall") is not None for r in results)
    thresholded = any(r.get("oos_threshold") for r in results)
    near = any(r.get("near_misses") for r in results)
    checked = any(r.get("near_misses_name_check") for r in results)
    header = ["pipeline", "intent accuracy", "macro-F1"]
    header += ["out-of-scope recall"] if has_oos else []
    header += ["OOS precision", "threshold (valid)"] if thresholded else []
    header += ["in-scope accuracy (held-out)", "near misses acted on"] if near else []
    header += ["acted on after name check"] if checked else []
    header += ["ECE (dev)"] if near else []
    header += ["train s", "parse p50 ms", "parse p99 ms", "peak memory MB"]
    rows = []
    for r in results:
        row = [r["pipeline"], f"{r['accuracy'] * 100:.2f}%", f"{r['macro_f1'] * 100:.2f}"]
        if has_oos:
            row.append("n/a" if r.get("oos_recall") is None else f"{r['oos_recall'] * 100:.1f}%")
        if thresholded:
            precision = r.get("oos_precision")
            row.append("n/a" if precision is None else f"{precision * 100:.1f}%")
            row.append(_threshold_cell(r.get("oos_threshold")))
        if near:
            row += [_percent(r.get("heldout_accuracy"), 2),
                    _share((r.get("near_misses") or {}).get("all"))]
        if checked:
            row.append(_share((r.get("near_misses_name_check") or {}).get("all")))
        if near:
            row.append("n/a" if r.get("ece_dev") is None else f"{r['ece_dev']:.3f}")
        row += [f"{r['train_seconds']:.1f}", f"{r['latency_p50_ms']:.1f}",
                f"{r['latency_p99_ms']:.1f}", f"{r['peak_memory_mb']:.0f}"]
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = [f"{title}", ""]
    for i, row in enumerate([header, *rows]):
        cells = (str(x).ljust(w) for x, w in zip(row, widths, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    if len(results) == 2 and results[0]["train_seconds"] > 0:
        a, b = results
        lines.append("")
        lines.append(
            f"{a['pipeline']} trains {b['train_seconds'] / a['train_seconds']:.1f}x faster than "
            f"{b['pipeline']}; accuracy {(a['accuracy'] - b['accuracy']) * 100:+.2f} points."
        )
    if thresholded:
        lines += ["", _threshold_notes(results)]
    if near:
        notes = [NEAR_MISS_NOTE, *(line for r in results for line in _near_miss_split(r))]
        lines += ["", "\n".join(textwrap.fill(note, 92) for note in notes)]
    lines += ["", *(f"{r['pipeline']}: measured {r.get('started_at', '?')} to "
                    f"{r.get('finished_at', '?')} at commit {r.get('commit', 'unknown')}"
                    for r in results)]
    return "\n".join(lines)


def _percent(value: float | None, digits: int = 1) -> str:
    return "n/a" if value is None else f"{value * 100:.{digits}f}%"


def _share(counts: dict[str, int] | None) -> str:
    if not counts:
        return "n/a"
    share = _percent(counts["acted_on"] / max(1, counts["total"]))
    return f"{share} ({counts['acted_on']}/{counts['total']})"


NEAR_MISS_NOTE = (
    "Near misses acted on: requests opsbot cannot serve (out_of_scope) or that name what it "
    f"does not know ({UNKNOWN_NAME}), predicted as an in-scope intent at or above the config's "
    "fallback threshold and not rejected by its out-of-scope threshold. ECE (dev): expected "
    f"calibration error, 10 bins, on regression.yml and the near misses but {UNKNOWN_NAME}; a "
    "rejection predicts out_of_scope."
)


def _near_miss_split(result: dict[str, Any]) -> list[str]:
    """A pipeline's near misses acted on per gold label, and after the name check."""
    found = []
    for key, what in (("near_misses", "acted on"),
                      ("near_misses_name_check", "after the name check")):
        if groups := result.get(key):
            split = ", ".join(f"{label} {_share(counts)}" for label, counts in groups.items()
                              if label != "all")
            found.append(f"{result['pipeline']}: near misses {what}: {split}.")
    return found


def _threshold_cell(choice: dict[str, Any] | None) -> str:
    if not choice:
        return "n/a"
    if choice["threshold"] is None:
        if choice["reached_on_validation"]:
            return "none"
        return f"none (<{choice.get('target_accuracy', TARGET_ACCURACY):.0%} on valid)"
    return f"{choice['threshold']:.6g} ({choice['score']})"


def _threshold_notes(results: list[dict[str, Any]]) -> str:
    """How the thresholds were chosen, and each pipeline's numbers without one."""
    notes = [
        "Out-of-scope threshold chosen on the validation split only: the highest out-of-scope "
        f"recall there with in-scope accuracy >= {TARGET_ACCURACY:.0%}. On test a message is "
        "rejected when the pipeline predicts the out-of-scope intent or falls back, or its "
        "score (opsbot: out_of_scope_score; others: the top intent's confidence) is below "
        "the threshold. Intent accuracy is in-scope accuracy; a rejection counts as wrong."
    ]
    for r in results:
        choice, before = r.get("oos_threshold"), r.get("without_threshold")
        if not choice or not before:
            continue
        note = (f"{r['pipeline']}: without the threshold {before['accuracy'] * 100:.2f}% in scope, "
                f"{(before['oos_recall'] or 0) * 100:.1f}% out-of-scope recall; on validation "
                f"with it {choice['valid_accuracy'] * 100:.2f}% and "
                f"{choice['valid_oos_recall'] * 100:.1f}%.")
        if not choice["reached_on_validation"]:
            note += (f" In-scope accuracy is below {TARGET_ACCURACY:.0%} on validation even "
                     "without one.")
        strict = r.get("at_strict_accuracy")
        if strict and strict["reached_on_validation"]:
            note += (f" With the threshold for {strict['target_accuracy']:.0%} on validation "
                     f"({strict['threshold']:.6g}): {strict['accuracy'] * 100:.2f}% in scope, "
                     f"{(strict['oos_recall'] or 0) * 100:.1f}% out-of-scope recall.")
        elif strict:
            note += f" No threshold keeps {strict['target_accuracy']:.0%} on validation."
        notes.append(note)
    return "\n".join(textwrap.fill(note, 92) for note in notes)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.nlu", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, help="a folder with train.jsonl and test.jsonl")
    parser.add_argument("--train", type=Path, help="training data: JSON Lines or Rasa NLU YAML")
    parser.add_argument("--test", type=Path, help="test data: JSON Lines or Rasa NLU YAML")
    parser.add_argument("--valid", type=Path,
                        help="validation data (JSON Lines or Rasa NLU YAML): the out-of-scope "
                             "threshold is chosen on it; with --data, found there")
    parser.add_argument("--pipelines", default="opsbot,rasa-default",
                        help="comma-separated, from: " + ", ".join(PIPELINES))
    parser.add_argument("--save", type=Path,
                        help="write the results as JSON here, after each pipeline finishes")
    parser.add_argument("--resume", action="store_true",
                        help="with --save: keep the results in that file whose config, data and "
                             "bench code are unchanged, and run only the missing pipelines "
                             "(DIET on 10,000 examples trains for hours on 2 cores)")
    parser.add_argument("--near-misses", type=Path,
                        help="with the project's own data (the default there: "
                             "tests/nlu/near_misses.yml): requests opsbot must not act on")
    parser.add_argument("--name-check", metavar="MODULE:FUNCTION",
                        help="with the project's own data: a function that gets a prediction "
                             "(bench/_nlu_worker.py) and returns True when the request names "
                             "something unknown and would be refused; reported next to the "
                             "near misses acted on without it")
    parser.add_argument("--plot", type=Path,
                        help="with the project's own data: draw the development set's "
                             "reliability diagram (PNG) here")
    args = parser.parse_args(argv)
    if args.data:
        if args.train or args.test:
            parser.error("give either --data or --train/--test, not both")
        if args.valid:
            parser.error("with --data the validation split is found in the folder")
        args.train, args.test = args.data / "train.jsonl", args.data / "test.jsonl"
        args.valid = next(
            (args.data / n for n in VALIDATION_FILES if (args.data / n).exists()), None
        )
    elif args.train and not args.test:
        parser.error("--train needs --test")
    elif not args.train:
        if args.valid:
            parser.error("--valid goes with --train and --test")
        args.train = PROJECT_NLU
        args.test = args.test or OPS_SETS / "regression.yml"
    args.sets = {}
    if args.train.resolve() == PROJECT_NLU:
        args.sets = {"near_misses": args.near_misses or OPS_SETS / "near_misses.yml",
                     "heldout": OPS_SETS / "heldout.yml", "regression": OPS_SETS / "regression.yml"}
    else:
        for option in ("near_misses", "name_check", "plot"):
            if getattr(args, option):
                parser.error(f"--{option.replace('_', '-')} measures the project's own data: "
                             "it goes without --data and --train")
    args.name_check = _load_name_check(parser, args.name_check) if args.name_check else None
    for path in (args.train, args.test, *([args.valid] if args.valid else []),
                 *args.sets.values()):
        if not path.exists():
            parser.error(f"{path} does not exist")
    names = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    unknown = [n for n in names if n not in PIPELINES]
    if unknown or not names:
        parser.error(f"unknown pipeline(s) {unknown}; choose from {', '.join(PIPELINES)}")
    if args.resume and not args.save:
        parser.error("--resume needs --save FILE")
    args.names = names
    return args


def _load_name_check(parser: argparse.ArgumentParser, spec: str) -> NameCheck:
    module_name, _, function = spec.partition(":")
    try:
        found = getattr(importlib.import_module(module_name), function, None)
    except ImportError as exc:
        parser.error(f"--name-check {spec}: cannot import {module_name} ({exc})")
    if not function or not callable(found):
        parser.error(f"--name-check {spec}: expected MODULE:FUNCTION, a function that takes a "
                     "prediction and returns True when it would be refused")
    return found


def with_operations(folder: Path) -> Path:
    """``data/nlu`` plus the team-defined operations' examples, in ``folder``: the NLU data
    ``opsbot train`` trains (the operations' intents would otherwise count as misses)."""
    from actions.operations import load_operations

    loaded = load_operations(ROOT)
    if loaded.errors:
        raise SystemExit("bench: the operation files have problems:\n" + "\n".join(loaded.errors))
    folder.mkdir(parents=True)
    for source in sorted(p for p in PROJECT_NLU.rglob("*") if p.is_file()):
        target = folder / source.relative_to(PROJECT_NLU)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(source.read_bytes())
    specs = [loaded.operations[name] for name in sorted(loaded.operations)]
    data = {"version": "3.1",
            "nlu": [{"intent": s.name, "examples": "".join(f"- {e}\n" for e in s.examples)}
                    for s in specs]}
    (folder / "zz_operations.yml").write_text(
        yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=1000), encoding="utf-8")
    return folder


def _load_saved(path: Path) -> dict[str, dict[str, Any]]:
    try:
        saved = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {r["pipeline"]: r for r in saved.get("results", []) if "pipeline" in r}


def _save(
    path: Path, train: Path, test: Path, results: list[dict[str, Any]], valid: Path | None = None
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    summary: dict[str, Any] = {"train": str(train), "test": str(test)}
    if valid:
        summary["valid"] = str(valid)
    summary["results"] = results
    path.write_text(json.dumps(summary, indent=1), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    saved = _load_saved(args.save) if args.resume else {}
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="opsbot-bench-") as scratch:
        train = args.train
        if train.resolve() == PROJECT_NLU:
            train = with_operations(Path(scratch) / "ops-train")
        for name in args.names:
            previous = saved.get(name)
            current = fingerprint(name, train, args.test, args.valid, tuple(args.sets.values()))
            if previous and previous.get("fingerprint") == current:
                print(f"== {name}: unchanged since {previous.get('finished_at')}, result reused ==",
                      file=sys.stderr)
                result = previous
            else:
                result = run_pipeline(name, train, args.test, Path(scratch), args.valid,
                                      args.sets)
            measure_sets(result, args.name_check)
            results.append(result)
            if args.save:
                # Results of pipelines not run this time stay in the file.
                others = [r for n, r in _load_saved(args.save).items() if n not in args.names]
                _save(args.save, args.train, args.test, [*results, *others], args.valid)
    operations = " + operations/*.yml" if train != args.train else ""
    title = f"NLU benchmark: train {args.train}{operations} / test {args.test}"
    if args.valid and any(r.get("oos_threshold") for r in results):
        title += f" / out-of-scope threshold from {args.valid}"
    if args.sets:
        title += f" / near misses {args.sets['near_misses']}"
    print("\n" + format_table(results, title))
    if args.plot:
        measured = [r for r in results if r.get("reliability_dev")]
        curves = {f"{r['pipeline']} (ECE {r['ece_dev']:.3f})":
                  [Bin(**b) for b in r["reliability_dev"]] for r in measured}
        plot_reliability(curves, args.plot, "Reliability on the ops development set "
                                            "(regression.yml + near misses)")
        print(f"\nReliability diagram: {args.plot}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
