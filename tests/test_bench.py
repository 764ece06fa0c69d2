"""bench/nlu.py: arguments, the table, resuming, and a tiny real run."""

from __future__ import annotations

import json
import random
from pathlib import Path

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
