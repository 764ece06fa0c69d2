"""bench/nlu.py: arguments, the table, resuming, and a tiny real run."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from bench import nlu as bench


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"text": t, "intent": i}) + "\n" for t, i in rows))
    return path


def test_arguments_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        bench.parse_args(["--train", str(tmp_path / "x.jsonl")])
    assert "--train needs --test" in capsys.readouterr().err
    # --test alone measures the project's own data (data/nlu and the operations) on it.
    other = bench.ROOT / "tests" / "nlu" / "regression.yml"
    assert bench.parse_args(["--test", str(other)]).train == bench.PROJECT_NLU
    with pytest.raises(SystemExit):
        bench.parse_args(["--data", str(tmp_path)])
    assert "does not exist" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--pipelines", "bert"])
    assert "unknown pipeline" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        bench.parse_args(["--resume"])
    assert "--resume needs --save" in capsys.readouterr().err


def test_table_has_every_column_and_the_speed_ratio() -> None:
    row = {"accuracy": 0.9393, "macro_f1": 0.94, "oos_recall": 0.4, "train_seconds": 100.0,
           "latency_p50_ms": 15.0, "latency_p99_ms": 40.0, "peak_memory_mb": 1400.0}
    table = bench.format_table(
        [{**row, "pipeline": "opsbot"},
         {**row, "pipeline": "rasa-default", "train_seconds": 2500.0}],
        "t",
    )
    for column in ("intent accuracy", "macro-F1", "out-of-scope recall", "train s",
                   "parse p50 ms", "parse p99 ms", "peak memory MB"):
        assert column in table
    assert "93.93%" in table and "40.0%" in table
    assert "opsbot trains 25.0x faster than rasa-default" in table


def test_resume_reuses_an_unchanged_result(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [("hi", "greet"), ("bye", "goodbye")])
    test = write_jsonl(tmp_path / "test.jsonl", [("hello", "greet")])
    result = {"pipeline": "rasa-default", "accuracy": 1.0, "macro_f1": 1.0, "oos_recall": None,
              "train_seconds": 9000.0, "latency_p50_ms": 9.0, "latency_p99_ms": 9.0,
              "peak_memory_mb": 1.0, "fingerprint": bench.fingerprint("rasa-default", train, test)}
    saved = tmp_path / "r.json"
    saved.write_text(json.dumps({"results": [result]}))
    assert bench.main(["--train", str(train), "--test", str(test), "--pipelines", "rasa-default",
                       "--save", str(saved), "--resume"]) == 0
    captured = capsys.readouterr()
    assert "result reused" in captured.err and "9000.0" in captured.out
    test.write_text(test.read_text() + json.dumps({"text": "hey", "intent": "greet"}) + "\n")
    assert bench.fingerprint("rasa-default", train, test) != result["fingerprint"]


def test_a_small_real_run_of_opsbots_pipeline(tmp_path: Path, cache_dir: Path) -> None:
    rng = random.Random(7)
    phrases = {
        "deploy": ["deploy {s} to prod", "ship {s} now", "release {s} to staging", "push {s} live"],
        "logs": ["errors from {s}", "show {s} logs", "tail the {s} log", "{s} exceptions today"],
        "status": ["is {s} green", "status of {s} build", "did {s} pass", "{s} ci state"],
    }
    services = ["payments", "checkout", "search", "billing", "auth", "orders"]
    rows = [(p.format(s=s), i) for i, ps in phrases.items() for p in ps for s in services]
    rng.shuffle(rows)
    train = write_jsonl(tmp_path / "train.jsonl", rows[:54])
    test = write_jsonl(tmp_path / "test.jsonl", rows[54:])
    saved = tmp_path / "out.json"
    assert bench.main(["--train", str(train), "--test", str(test), "--pipelines", "opsbot",
                       "--save", str(saved)]) == 0
    result = json.loads(saved.read_text())["results"][0]
    assert result["pipeline"] == "opsbot" and result["examples"] == len(rows) - 54
    assert result["accuracy"] >= 0.8
    assert result["latency_p50_ms"] > 0 and result["peak_memory_mb"] > 100


def test_table_shows_the_validation_threshold_next_to_each_pipeline() -> None:
    row = {"accuracy": 0.9429, "macro_f1": 0.9569, "oos_recall": 0.875, "oos_precision": 0.861,
           "train_seconds": 100.0, "latency_p50_ms": 15.0, "latency_p99_ms": 40.0,
           "peak_memory_mb": 1400.0}
    opsbot = {**row, "pipeline": "opsbot",
              "oos_threshold": {"threshold": 2.26555, "score": "out_of_scope_score",
                                "reached_on_validation": True, "valid_accuracy": 0.94,
                                "valid_oos_recall": 0.93},
              "without_threshold": {"accuracy": 0.9618, "oos_recall": 0.312}}
    diet = {**row, "pipeline": "rasa-default", "accuracy": 0.91, "oos_recall": 0.5,
            "oos_threshold": {"threshold": None, "score": "confidence",
                              "reached_on_validation": False, "valid_accuracy": 0.92,
                              "valid_oos_recall": 0.5},
            "without_threshold": {"accuracy": 0.91, "oos_recall": 0.5}}
    table = bench.format_table([opsbot, diet], "t")
    assert "OOS precision" in table and "threshold (valid)" in table
    assert "94.29%" in table and "87.5%" in table and "2.26555 (out_of_scope_score)" in table
    assert "none (<94% on valid)" in table
    assert "without the threshold 96.18% in scope, 31.2% out-of-scope recall" in table


def test_the_validation_split_is_found_next_to_the_data(tmp_path: Path) -> None:
    for name in ("train.jsonl", "test.jsonl"):
        write_jsonl(tmp_path / name, [("hi", "greet")])
    assert bench.parse_args(["--data", str(tmp_path)]).valid is None
    write_jsonl(tmp_path / "valid.jsonl", [("hey", "greet")])
    assert bench.parse_args(["--data", str(tmp_path)]).valid == tmp_path / "valid.jsonl"
    args = bench.parse_args([
        "--train", str(tmp_path / "train.jsonl"), "--test", str(tmp_path / "test.jsonl"),
        "--valid", str(tmp_path / "valid.jsonl"),
    ])
    assert args.valid == tmp_path / "valid.jsonl"


def test_opsbots_config_names_the_out_of_scope_label_and_leaves_the_threshold_to_the_bench(
    tmp_path: Path,
) -> None:
    import yaml

    source = tmp_path / "config.yml"
    source.write_text(yaml.safe_dump({"pipeline": [
        {"name": "nlu.SentenceEmbeddingFeaturizer"},
        {"name": "nlu.LinearIntentClassifier", "out_of_scope_threshold": 1.5},
    ], "policies": [{"name": "RulePolicy"}]}))
    target = tmp_path / "out.yml"
    bench._opsbot_config(source, tmp_path / "cache", target, "oos", threshold_from_validation=True)
    config = yaml.safe_load(target.read_text())
    classifier = config["pipeline"][1]
    assert classifier["out_of_scope_intent"] == "oos"
    assert classifier["out_of_scope_threshold"] is None
    assert config["policies"] == []
    bench._opsbot_config(source, tmp_path / "cache", target, "out_of_scope")
    assert yaml.safe_load(target.read_text())["pipeline"][1]["out_of_scope_threshold"] == 1.5


def test_the_project_data_is_trained_with_the_operations_examples(tmp_path: Path) -> None:
    from rasa.shared.nlu.training_data.loading import load_data

    from actions.operations import load_operations

    folder = bench.with_operations(tmp_path / "ops-train")
    intents = load_data(str(folder)).intents
    assert set(load_operations(bench.ROOT).operations) <= intents
    assert set(load_data(str(bench.PROJECT_NLU)).intents) <= intents
    # The same inputs give the same files, so an unchanged result is recognised.
    again = bench.with_operations(tmp_path / "again")
    assert bench.fingerprint("opsbot", folder, bench.PROJECT_NLU) == \
        bench.fingerprint("opsbot", again, bench.PROJECT_NLU)


# -- near misses, held-out accuracy and calibration (issue 27) ------------------------


def prediction(gold: str, predicted: str, confidence: float = 0.95, score: float = 3.0,
               entities: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"gold": gold, "predicted": predicted, "confidence": confidence, "score": score,
            "text": "", "entities": entities or []}


def names_the_frobnicator(row: dict[str, Any]) -> bool:
    """A name check for the tests: refuses what names the frobnicator."""
    return any(e["value"] == "frobnicator" for e in row["entities"])


def test_acted_on_means_in_scope_confident_enough_and_not_refused() -> None:
    from bench._metrics import acted_on

    assert acted_on(prediction("out_of_scope", "deploy"), 0.7)
    assert not acted_on(prediction("out_of_scope", "deploy", confidence=0.69), 0.7)
    assert not acted_on(prediction("out_of_scope", "nlu_fallback", confidence=0.7), 0.7)
    assert not acted_on(prediction("out_of_scope", "out_of_scope"), 0.7)
    assert acted_on(prediction("out_of_scope", "deploy", score=1.0), 0.7)
    assert not acted_on(prediction("out_of_scope", "deploy", score=1.0), 0.7, oos_threshold=2.0)
    frobnicator = prediction("unknown_name", "deploy",
                             entities=[{"entity": "service", "value": "frobnicator"}])
    assert acted_on(frobnicator, 0.7)
    assert not acted_on(frobnicator, 0.7, name_check=names_the_frobnicator)


def test_the_sets_are_measured_from_their_predictions_with_and_without_the_name_check() -> None:
    frobnicator = [{"entity": "service", "value": "frobnicator", "start": 8, "end": 19}]
    result: dict[str, Any] = {
        "pipeline": "opsbot", "fallback_threshold": 0.7, "out_of_scope_threshold": None,
        "set_predictions": {
            "near_misses": [
                prediction("out_of_scope", "deploy", 0.9),  # acted on
                prediction("out_of_scope", "nlu_fallback", 0.7),
                prediction("out_of_scope", "out_of_scope", 0.8),
                prediction("out_of_scope", "query_logs", 0.5),  # below the fallback
                prediction("unknown_name", "deploy", 0.9, entities=frobnicator),
                prediction("unknown_name", "rollback", 0.99),
            ],
            "heldout": [prediction("deploy", "deploy"), prediction("rollback", "deploy"),
                        prediction("out_of_scope", "out_of_scope")],
            "regression": [prediction("deploy", "deploy", 1.0)],
        },
    }
    bench.measure_sets(result)
    assert result["near_misses"] == {"all": {"acted_on": 3, "total": 6},
                                     "out_of_scope": {"acted_on": 1, "total": 4},
                                     "unknown_name": {"acted_on": 2, "total": 2}}
    assert result.get("near_misses_name_check") is None
    assert result["heldout_accuracy"] == 0.5
    # Development set: regression (1.0, right) and the four out_of_scope near misses:
    # 0.9 wrong, 0.7 right, 0.8 right, 0.5 wrong; unknown_name rows are left out.
    # ECE = (1 * 0 + 1 * 0.9 + 1 * 0.3 + 1 * 0.2 + 1 * 0.5) / 5.
    assert result["ece_dev"] == pytest.approx((0.9 + 0.3 + 0.2 + 0.5) / 5)
    assert sum(b["count"] for b in result["reliability_dev"]) == 5
    bench.measure_sets(result, names_the_frobnicator)
    assert result["near_misses_name_check"]["unknown_name"] == {"acted_on": 1, "total": 2}
    table = bench.format_table([{**result, "accuracy": 0.95, "macro_f1": 0.95,
                                 "oos_recall": 1.0, "train_seconds": 10.0,
                                 "latency_p50_ms": 8.0, "latency_p99_ms": 20.0,
                                 "peak_memory_mb": 1000.0}], "t")
    for column in ("in-scope accuracy (held-out)", "near misses acted on",
                   "acted on after name check", "ECE (dev)"):
        assert column in table
    assert "50.00%" in table and "50.0% (3/6)" in table and "0.380" in table
    notes = " ".join(table.split())
    assert "near misses acted on: out_of_scope 25.0% (1/4), unknown_name 100.0% (2/2)" in notes
    assert "after the name check: out_of_scope 25.0% (1/4), unknown_name 50.0% (1/2)" in notes


def test_the_project_data_run_parses_the_near_misses_and_takes_a_name_check(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = bench.parse_args([])
    assert set(args.sets) == {"near_misses", "heldout", "regression"}
    assert args.sets["near_misses"] == bench.ROOT / "tests" / "nlu" / "near_misses.yml"
    assert args.name_check is None
    checked = bench.parse_args(["--name-check", "tests.test_bench:names_the_frobnicator"])
    assert checked.name_check is names_the_frobnicator
    for bad in ("tests.test_bench:no_such_function", "no_such_module:f", "tests.test_bench"):
        with pytest.raises(SystemExit):
            bench.parse_args(["--name-check", bad])
        assert "--name-check" in capsys.readouterr().err
    for name in ("train.jsonl", "test.jsonl"):
        write_jsonl(tmp_path / name, [("hi", "greet")])
    assert bench.parse_args(["--data", str(tmp_path)]).sets == {}
    with pytest.raises(SystemExit):
        bench.parse_args(["--data", str(tmp_path), "--near-misses", str(tmp_path / "x.yml")])
    assert "--near-misses measures the project's own data" in capsys.readouterr().err


def test_the_fingerprint_covers_the_near_miss_set_and_the_thresholds_come_from_the_config(
    tmp_path: Path,
) -> None:
    train = write_jsonl(tmp_path / "train.jsonl", [("hi", "greet")])
    test = write_jsonl(tmp_path / "test.jsonl", [("hello", "greet")])
    near = tmp_path / "near.yml"
    near.write_text('version: "3.1"\nnlu:\n- intent: out_of_scope\n  examples: |\n    - a\n')
    before = bench.fingerprint("rasa-default", train, test, sets=(near,))
    assert before != bench.fingerprint("rasa-default", train, test)
    near.write_text(near.read_text() + "    - b\n")
    assert bench.fingerprint("rasa-default", train, test, sets=(near,)) != before
    assert bench.thresholds(bench.PIPELINES["opsbot"])[0] == 0.5
    assert bench.thresholds(bench.PIPELINES["rasa-default"]) == (0.3, None)


@pytest.mark.slow
def test_a_small_real_run_saves_the_sets_predictions_with_their_entities(
    tmp_path: Path, cache_dir: Path
) -> None:
    train = tmp_path / "train.yml"
    deploys = "".join(f"    - deploy {s} [{v}](version) to prod\n    - ship {s} [{v}](version)\n"
                      for s in ("payments", "checkout", "search", "billing")
                      for v in ("1.2.3", "2.0.1", "4.5.6"))
    logs = "".join(f"    - errors from {s}\n    - show the {s} logs\n    - tail {s} log\n"
                   for s in ("payments", "checkout", "search", "billing", "auth", "orders"))
    train.write_text(
        'version: "3.1"\nnlu:\n- regex: version\n  examples: |\n'
        "    - \\bv?[0-9]+\\.[0-9]+\\.[0-9]+\\b\n"
        f"- intent: deploy\n  examples: |\n{deploys}- intent: logs\n  examples: |\n{logs}"
    )
    test = write_jsonl(tmp_path / "test.jsonl", [("deploy auth 3.3.3 to prod", "deploy"),
                                                  ("errors from inventory", "logs")])
    near = tmp_path / "near.yml"
    near.write_text('version: "3.1"\nnlu:\n'
                    "- intent: out_of_scope\n  examples: |\n    - bake a cake\n"
                    "- intent: unknown_name\n  examples: |\n    - deploy frobnicator 9.9.9\n")
    sets = {"near_misses": near, "heldout": test, "regression": test}
    result = bench.run_pipeline("opsbot", train, test, tmp_path, sets=sets)
    assert result["fallback_threshold"] == 0.5
    assert result["fingerprint"] == bench.fingerprint("opsbot", train, test,
                                                      sets=(near, test, test))
    frobnicator = result["set_predictions"]["near_misses"][1]
    assert frobnicator["gold"] == "unknown_name"
    assert frobnicator["text"] == "deploy frobnicator 9.9.9"
    assert {"entity": "version", "value": "9.9.9", "start": 19, "end": 24} in (
        frobnicator["entities"])
    bench.measure_sets(result)
    assert result["near_misses"]["all"]["total"] == 2 and result["ece_dev"] is not None
