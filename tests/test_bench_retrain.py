"""bench/retrain.py without a training run: the taught phrases, the file it writes, the table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from bench import retrain as bench

ROOT = Path(__file__).resolve().parent.parent


def read_rasa_yaml(text: str) -> Any:
    """Parse with Rasa's own reader, which validates against Rasa's schema first."""
    from rasa.shared.nlu.training_data.formats.rasa_yaml import RasaYAMLReader

    return RasaYAMLReader().reads(text)


def test_the_phrase_file_is_rasa_nlu_yaml_with_every_phrase_and_entity() -> None:
    data = read_rasa_yaml(bench.taught_yaml(bench.NEW_PHRASES))
    parsed = {m.get("text"): m for m in data.intent_examples}
    assert len(parsed) == len(bench.NEW_PHRASES) == 10
    for intent, annotated in bench.NEW_PHRASES:
        message = parsed[bench.plain_text(annotated)]
        assert message.get("intent") == intent
        entities = sorted((e["entity"], e["value"]) for e in message.get("entities") or [])
        assert entities == sorted(bench.annotated_entities(annotated))


def test_the_phrases_are_new_varied_and_fit_the_domain() -> None:
    assert bench.phrases_already_in(ROOT / "data") == []
    assert bench.phrases_already_in(ROOT / "tests" / "nlu") == []
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    intents = {i for i, _ in bench.NEW_PHRASES}
    assert intents <= set(domain["intents"]) and len(intents) >= 6
    entities = {e for _, t in bench.NEW_PHRASES for e, _ in bench.annotated_entities(t)}
    assert entities <= set(domain["entities"]) and len(entities) >= 4
    texts = [bench.plain_text(t).lower() for _, t in bench.NEW_PHRASES]
    assert len(set(texts)) == len(texts)


def test_the_duplicate_check_sees_what_rasa_reads(tmp_path: Path) -> None:
    from rasa.shared.nlu.training_data.loading import load_data

    rasa_texts = {" ".join(m.get("text").lower().split())
                  for m in load_data(str(ROOT / "data" / "nlu")).intent_examples}
    assert bench.example_texts(ROOT / "data") == rasa_texts
    (tmp_path / "nlu.yml").write_text(bench.taught_yaml([("deploy", "Ship [it](service)  now")]))
    assert bench.phrases_already_in(tmp_path, [("rollback", "ship it now")]) == ["ship it now"]


def test_an_existing_taught_file_is_extended_not_replaced(tmp_path: Path) -> None:
    existing = tmp_path / bench.TAUGHT_FILE
    existing.parent.mkdir(parents=True)
    existing.write_text(
        'version: "3.1"\nnlu:\n- intent: deploy\n  examples: |\n    - ship it\n'
        "- synonym: prod\n  examples: |\n    - the big one\n"
    )
    path = bench.write_taught(tmp_path, [("deploy", "send it"), ("greet", "yo")])
    data = read_rasa_yaml(path.read_text(encoding="utf-8"))
    assert {(m.get("text"), m.get("intent")) for m in data.intent_examples} == {
        ("ship it", "deploy"), ("send it", "deploy"), ("yo", "greet")}
    assert data.entity_synonyms == {"the big one": "prod"}


def test_a_phrase_must_be_one_line() -> None:
    with pytest.raises(ValueError, match="one line"):
        bench.taught_yaml([("deploy", "ship\nit")])


def test_annotations_are_stripped_and_listed() -> None:
    text = ('roll [payments](service) to [2.4.1](version) on '
            '[live]{"entity": "environment", "value": "prod"}')
    assert bench.plain_text(text) == "roll payments to 2.4.1 on live"
    assert bench.annotated_entities(text) == [
        ("service", "payments"), ("version", "2.4.1"), ("environment", "live")]


def test_rasa_default_trains_with_opsbots_policies(tmp_path: Path) -> None:
    config = bench.pipeline_config("rasa-default")
    assert any(c["name"] == "DIETClassifier" for c in config["pipeline"])
    opsbot = yaml.safe_load((ROOT / "config.yml").read_text(encoding="utf-8"))
    assert config["policies"] == opsbot["policies"]
    project = bench.make_project("opsbot", tmp_path / "p")
    assert (project / "domain.yml").is_file() and (project / "nlu" / "__init__.py").is_file()
    assert yaml.safe_load((project / "config.yml").read_text()) == opsbot
    assert bench.example_texts(project / "data") == bench.example_texts(ROOT / "data")


def result(pipeline: str, initial: float, retrains: list[float],
           core: bool = False) -> dict[str, Any]:
    step = {"train_seconds": retrains[0], "process_seconds": retrains[0] + 5, "recognised": 10,
            "phrases": 10, "core_retrained": core, "nodes": [],
            "phases": {"graph nodes": 1.0}, "newly_embedded": 10}
    return {"pipeline": pipeline, "initial": {**step, "train_seconds": initial, "recognised": 7},
            "retrain": step, "retrain_seconds_all": retrains,
            "retrain_process_seconds_all": [r + 5 for r in retrains],
            "retrain_seconds_median": bench.median(retrains)}


def test_the_table_has_every_column_the_speed_up_and_the_verdict() -> None:
    table = bench.format_table([result("opsbot", 30.0, [8.0, 7.0, 9.0]),
                                result("rasa-default", 240.0, [200.0, 210.0, 190.0])])
    for column in ("initial train s", "retrain after 10 phrases s (train call)", "process s",
                   "new phrases recognised", "dialogue retrained", "speed-up vs rasa-default"):
        assert column in table
    assert "8.0 (7.0-9.0)" in table and "10/10 (before: 7)" in table and "| no " in table
    assert "25.0x" in table and "1.0x" in table
    assert "opsbot: retrain 8.0s (limit 10s: ok); 25.0x faster than rasa-default's retrain" in table
    warm = {**result("opsbot", 30.0, [4.0]), "warm": True}
    table = bench.format_table([result("opsbot", 30.0, [12.0]), warm,
                                result("rasa-default", 240.0, [200.0])])
    assert "| opsbot (warm process) " in table and "Warm process:" in table
    assert "opsbot: retrain 12.0s (limit 10s: TOO SLOW)" in table
    assert "opsbot (warm process): retrain 4.0s (limit 10s: ok); 50.0x faster" in table


def test_the_verdict_says_when_it_is_too_slow() -> None:
    table = bench.format_table([result("opsbot", 30.0, [12.0], core=True)])
    assert "TOO SLOW" in table and "n/a" in table and "| yes " in table and "(12.0-" not in table
    slow = bench.format_table([result("opsbot", 30.0, [9.0]), result("rasa-default", 9.0, [50.0])])
    assert "5.6x" in slow and "at least 10x: NO" in slow


def test_the_breakdown_lists_phases_and_embedding_count() -> None:
    text = bench.format_breakdown(result("opsbot", 30.0, [8.0]))
    assert "graph nodes 1.0s" in text and "10 newly embedded" in text


def test_arguments_are_checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = bench.parse_args([])
    assert args.names == ["opsbot", "rasa-default"] and args.repeat == 1 and not args.warm
    for argv, message in (
        (["--pipelines", "bert"], "unknown pipeline"),
        (["--repeat", "0"], "at least 1"),
        (["--opsbot-config", str(tmp_path / "none.yml")], "does not exist"),
    ):
        with pytest.raises(SystemExit):
            bench.parse_args(argv)
        assert message in capsys.readouterr().err
    (tmp_path / "x").write_text("")
    with pytest.raises(SystemExit):
        bench.parse_args(["--keep", str(tmp_path)])
    assert "not empty" in capsys.readouterr().err
    args = bench.parse_args(["--pipelines", "opsbot", "--repeat", "3", "--warm",
                             "--save", str(tmp_path / "r.json"), "--profile", str(tmp_path / "p")])
    assert args.names == ["opsbot"] and args.repeat == 3 and args.warm
    assert (tmp_path / "p").is_dir() and args.profile.is_absolute()


def test_the_saved_results_can_be_reread(tmp_path: Path) -> None:
    path = tmp_path / "out" / "retrain.json"
    bench._save(path, [result("opsbot", 30.0, [8.0])], ["--save", str(path)])
    saved = json.loads(path.read_text())
    assert saved["command"].startswith("python -m bench.retrain --save")
    assert len(saved["phrases"]) == 10 and saved["results"][0]["pipeline"] == "opsbot"
    assert "rasa" in saved["machine"]


def test_the_trainer_row_reads_what_opsbot_train_prints(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """bench.parse_trainer_answer against the real `opsbot train` code, with a trainer
    that answers as opsbot/_trainer.py does."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from opsbot.cli import train_fast
    from opsbot.settings import Settings

    answer = {"model": str(tmp_path / "models" / "m.tar.gz"), "seconds": 6.04,
              "trained": ["CountVectorsFeaturizer", "CountVectorsFeaturizer",
                          "LinearIntentClassifier"],
              "restored": ["RulePolicy", "MemoizationPolicy"]}

    class Trainer(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    monkeypatch.setattr("opsbot.cli.train_model",
                        lambda *a, **k: pytest.fail("fell back to training in this process"))
    server = ThreadingHTTPServer(("127.0.0.1", 0), Trainer)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings = Settings.from_env(ROOT)
    settings = type(settings)(**{**settings.__dict__, "state_dir": tmp_path})
    (tmp_path / "trainer.port").write_text(str(server.server_address[1]))
    try:
        model = train_fast(settings)
    finally:
        server.shutdown()
    assert str(model) == answer["model"]
    printed = capsys.readouterr().out
    assert printed.startswith("Training in the running opsbot's trainer ...")
    assert "trained: CountVectorsFeaturizer x2, LinearIntentClassifier;" in printed
    parsed = bench.parse_trainer_answer(printed)
    assert parsed == {"train_seconds": 6.0, "model": answer["model"],
                      "trained_components": answer["trained"],
                      "restored_components": answer["restored"]}
    assert bench.parse_trainer_answer("Model ready in 19.6s (trained: X; ...): /m.tar.gz") is None


def test_the_policies_are_named_from_the_config(tmp_path: Path) -> None:
    (tmp_path / "config.yml").write_text(
        "policies:\n  - name: RulePolicy\n  - name: my.module.CustomPolicy\n")
    assert bench.policy_names(tmp_path) == {"RulePolicy", "CustomPolicy"}
    assert bench.policy_names(ROOT) == {"RulePolicy", "MemoizationPolicy"}


def test_the_trainer_row_is_judged_on_the_whole_command() -> None:
    trainer = {**result("opsbot", 30.0, [6.0]), "mode": "trainer",
               "retrain_process_seconds_all": [11.0]}
    table = bench.format_table([result("opsbot", 30.0, [19.0]), trainer,
                                result("rasa-default", 240.0, [300.0])])
    assert "| opsbot (opsbot train, trainer running) " in table and "Trainer running:" in table
    assert "opsbot (opsbot train, trainer running): retrain 11.0s (limit 10s: TOO SLOW)" in table
    trainer["retrain_process_seconds_all"] = [7.5]
    table = bench.format_table([trainer, result("rasa-default", 240.0, [300.0])])
    assert "retrain 7.5s (limit 10s: ok)" in table
    trainer["retrain"] = {**trainer["retrain"], "phases": {}, "trained_components": ["A"],
                          "restored_components": ["RulePolicy"]}
    assert "retrained: A; restored from cache: RulePolicy" in bench.format_breakdown(trainer)


def test_the_row_of_a_trainer_started_on_demand_is_judged_on_the_whole_command() -> None:
    started = {**result("opsbot", 30.0, [6.0]), "mode": "trainer-start",
               "retrain_process_seconds_all": [21.0]}
    table = bench.format_table([started])
    assert "| opsbot (opsbot train, trainer started on demand) " in table
    assert "started on demand: the trainer was not running" in table
    assert ("opsbot (opsbot train, trainer started on demand): retrain 21.0s (limit 10s: "
            "TOO SLOW)") in table


def test_a_left_over_port_file_means_training_here(tmp_path: Path) -> None:
    """`opsbot train` falls back to training in its own process when no trainer answers."""
    from opsbot._trainer import train_remotely
    from tests.conftest import free_port

    started: list[bool] = []
    assert train_remotely(tmp_path, False, on_start=started.append) is None
    (tmp_path / "trainer.port").write_text(str(free_port()))  # nothing listens there
    assert train_remotely(tmp_path, False, on_start=started.append) is None
    assert started == []
