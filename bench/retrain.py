"""Retraining benchmark: how long `opsbot train` takes after 10 new phrases.

A team has trained once and then teaches opsbot 10 new phrasings. For each pipeline
(opsbot's config.yml, and Rasa's default pipeline from bench/configs/rasa_default.yml
with the same dialogue policies) the bench copies the project's training inputs into a
scratch directory and, each step in a fresh Python process:

1. trains from scratch (Rasa's training cache and the embedding cache start empty);
2. adds the 10 phrases (NEW_PHRASES) to data/nlu/taught.yml in the copy;
3. retrains with the call `opsbot train` makes: rasa.api.train with
   force_training=False, so Rasa's fingerprint cache restores every unchanged part;
4. loads the new model and parses the 10 phrases.

It reports the retrain's train call and its whole process (interpreter start, imports,
training), which graph components were retrained and which restored from the cache
(so whether the dialogue policies were retrained), and how many phrases are recognised.

For opsbot's pipeline it also retrains the way a running opsbot does: it holds the
trainer's port for the scratch project as `opsbot run` and `opsbot demo` do
(opsbot/_processes.py), and times the `opsbot train` command that hands the trainer the
job, from launching the command to its exit. Twice: the first starts the trainer (the
"trainer started on demand" row: the first retrain after the trainer's idle timeout),
the second finds it warm (the "opsbot train, trainer running" row).

    python -m bench.retrain
    python -m bench.retrain --save bench/results/retrain.json --plot bench/results/retrain.png
    python -m bench.retrain --pipelines opsbot --opsbot-config /tmp/variant.yml --keep /tmp/rt
    python -m bench.retrain --save bench/results/retrain.json --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from bench.nlu import source_commit

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = {
    "opsbot": ROOT / "config.yml",
    "rasa-default": ROOT / "bench" / "configs" / "rasa_default.yml",
}
TAUGHT_FILE = Path("data") / "nlu" / "taught.yml"
LIMIT_SECONDS = 10.0
MIN_SPEEDUP = 10.0

NEW_PHRASES: tuple[tuple[str, str], ...] = (
    ("deploy", "yeet [checkout](service) [3.0.2](version) onto [prod](environment)"),
    ("deploy_history", "who last touched [billing](service) on [staging](environment)"),
    ("rollback", "back out [payments](service) [2.4.1](version) from [prod](environment)"),
    ("rollback", "the [search](service) release is bad, go back to the last good one"),
    ("build_status", "is the [orders](service) pipeline looking healthy"),
    ("build_failure", "what broke [checkout-ci](job) this morning"),
    ("query_logs", "what has [auth](service) been screaming about [since lunch](time_range)"),
    ("run_build", "give [payments-ci](job) a spin on [main](branch)"),
    ("stop_build", "pull the plug on the running [search-ci](job) job"),
    ("create_issue", "file a ticket: the login page hangs on safari"),
)
"""The taught phrasings: (intent, text with [value](entity) annotations). None is in data/."""

_ANNOTATION = re.compile(r"\[(?P<value>[^\]]+)\](?:\((?P<entity>[^)]+)\)|\{(?P<json>[^}]*)\})")


# --- The taught phrases -------------------------------------------------------------------


def plain_text(annotated: str) -> str:
    """The text a user types: ``ship [payments](service)`` becomes ``ship payments``."""
    return _ANNOTATION.sub(lambda m: m.group("value"), annotated)


def annotated_entities(annotated: str) -> list[tuple[str, str]]:
    """The (entity, value) pairs marked in Rasa's ``[value](entity)`` syntax."""
    pairs = []
    for match in _ANNOTATION.finditer(annotated):
        entity = match.group("entity")
        if entity is None:  # [value]{"entity": "x", ...}
            entity = str(json.loads("{" + (match.group("json") or "") + "}").get("entity", ""))
        pairs.append((entity.split(":")[0], match.group("value")))
    return pairs


def _normalise(text: str) -> str:
    return " ".join(text.lower().split())


def taught_yaml(phrases: Iterable[tuple[str, str]], existing: str | None = None) -> str:
    """Rasa NLU YAML with the phrases, one ``- intent:`` block per intent, in order.

    ``existing`` is the text of a taught file already in the project; its items are
    kept (an intent's examples are extended, other items such as synonyms stay).
    """
    items: list[dict[str, Any]] = []
    if existing:
        document = yaml.safe_load(existing) or {}
        items = [dict(item) for item in document.get("nlu") or [] if isinstance(item, dict)]
    blocks: dict[str, dict[str, Any]] = {i["intent"]: i for i in items if "intent" in i}
    for intent, text in phrases:
        if "\n" in text:
            raise ValueError(f"a phrase must be one line: {text!r}")
        block = blocks.get(intent)
        if block is None:
            block = blocks[intent] = {"intent": intent, "examples": ""}
            items.append(block)
        lines = str(block.get("examples") or "").rstrip("\n")
        block["examples"] = (lines + "\n" if lines else "") + f"- {text}\n"
    out = ['version: "3.1"', "", "# Taught phrasings (written by python -m bench.retrain).", "nlu:"]
    for item in items:
        if "intent" in item and set(item) <= {"intent", "examples"}:
            out.append(f"- intent: {item['intent']}")
            out.append("  examples: |")
            out += [f"    {line}" for line in str(item["examples"]).splitlines() if line.strip()]
        else:
            dumped = yaml.safe_dump([item], sort_keys=False, allow_unicode=True)
            out += dumped.rstrip("\n").split("\n")
        out.append("")
    return "\n".join(out)


def write_taught(project: Path, phrases: Iterable[tuple[str, str]] = NEW_PHRASES) -> Path:
    """Add the phrases to data/nlu/taught.yml in ``project`` (kept if it already exists)."""
    path = project / TAUGHT_FILE
    existing = path.read_text(encoding="utf-8") if path.exists() else None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(taught_yaml(phrases, existing), encoding="utf-8")
    return path


def example_texts(data_dir: Path) -> set[str]:
    """Every intent example's plain text under ``data_dir``, lower-cased (a YAML read,
    no Rasa import, so the bench can check its phrases before it starts)."""
    texts: set[str] = set()
    for path in sorted(data_dir.rglob("*.yml")) + sorted(data_dir.rglob("*.yaml")):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except yaml.YAMLError:
            continue
        for item in (document or {}).get("nlu") or [] if isinstance(document, dict) else []:
            if isinstance(item, dict) and "intent" in item:
                for line in str(item.get("examples") or "").splitlines():
                    line = line.strip()
                    if line.startswith("- "):
                        texts.add(_normalise(plain_text(line[2:])))
    return texts


def phrases_already_in(data_dir: Path,
                       phrases: Iterable[tuple[str, str]] = NEW_PHRASES) -> list[str]:
    """The phrases whose text is already an example in ``data_dir``."""
    known = example_texts(data_dir)
    return [plain_text(t) for _, t in phrases if _normalise(plain_text(t)) in known]


# --- Scratch projects -----------------------------------------------------------------------


def pipeline_config(name: str, opsbot_config: Path = PIPELINES["opsbot"]) -> dict[str, Any]:
    """The config a pipeline trains with: opsbot's as is; Rasa's default pipeline with
    opsbot's dialogue policies, so both train the same kind of model."""
    opsbot = yaml.safe_load(opsbot_config.read_text(encoding="utf-8"))
    if name == "opsbot":
        return opsbot
    config = yaml.safe_load(PIPELINES[name].read_text(encoding="utf-8"))
    config["policies"] = opsbot.get("policies") or []
    return config


def make_project(name: str, target: Path, opsbot_config: Path = PIPELINES["opsbot"]) -> Path:
    """A copy of what training reads (domain, data, nlu/ components) with the pipeline's config."""
    target.mkdir(parents=True, exist_ok=True)
    shutil.copy2(ROOT / "domain.yml", target / "domain.yml")
    shutil.copytree(ROOT / "data", target / "data")
    shutil.copytree(ROOT / "nlu", target / "nlu", ignore=shutil.ignore_patterns("__pycache__"))
    config = pipeline_config(name, opsbot_config)
    (target / "config.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return target


_BENCH_TOKEN = secrets.token_urlsafe(32)


def _environment(project: Path, work: Path) -> dict[str, str]:
    """The environment of every process that trains ``project``: its caches in ``work``."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(project), str(ROOT)]),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "OPSBOT_CACHE_DIR": str(work / "embedding-cache"),
        "RASA_CACHE_DIRECTORY": str(work / "rasa-cache"),
        "OPSBOT_MODELS": str(project / "models"),
        "OPSBOT_STATE_DIR": str(work / "opsbot-state"),
        # The warm trainer serves only callers with the run's API token, as in opsbot run.
        "OPSBOT_API_TOKEN": os.environ.get("OPSBOT_API_TOKEN") or _BENCH_TOKEN,
    }
    env.pop("RASA_MAX_CACHE_SIZE", None)  # Rasa's default (1000 MB): the cache must work
    return env


def _run_step(name: str, step: str, project: Path, work: Path, verbose: bool,
              warm: bool = False, label: str | None = None,
              profile: Path | None = None, model: Path | None = None) -> dict[str, Any]:
    """One step in a fresh interpreter (a training, or with ``model`` only the check of
    that model); returns what the worker measured."""
    label = label or step
    out = work / f"{label}.json"
    log = work / f"{label}.log"
    env = _environment(project, work)
    command = [sys.executable, "-m", "bench.retrain", "_worker", "--project", str(project),
               "--step", step, "--out", str(out), "--launched-at", repr(time.time())]
    command += ["--warm"] if warm else []
    command += ["--profile", str(profile)] if profile else []
    command += ["--model", str(model)] if model else []
    with log.open("w", encoding="utf-8") as handle:
        completed = subprocess.run(command, cwd=project, env=env,
                                   stdout=None if verbose else handle, stderr=subprocess.STDOUT)
    if completed.returncode != 0 or not out.exists():
        tail = "" if verbose else "\n".join(log.read_text(encoding="utf-8").splitlines()[-30:])
        raise SystemExit(f"bench: {name} {label} failed (exit {completed.returncode}).\n{tail}")
    result: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))
    return result


def _progress(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def _trained_summary(step: dict[str, Any]) -> str:
    trained = step.get("trained_components")
    cached = step.get("restored_components")
    if trained is None:
        trained = [n["component"] for n in step["nodes"] if n["trains"] and not n["cached"]]
        cached = [n["component"] for n in step["nodes"] if n["trains"] and n["cached"]]
    return (f"retrained: {', '.join(trained) or 'nothing'}; "
            f"restored from cache: {', '.join(cached or []) or 'nothing'}")


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


_STATE = ("rasa-cache", "embedding-cache")
"""What a training run changes besides the models: restored before every repeat."""


def _snapshot(work: Path) -> None:
    for name in _STATE:
        if (work / name).is_dir():  # Rasa's default pipeline has no embedding cache
            shutil.copytree(work / name, work / f"{name}.after-initial")


def _restore(work: Path, project: Path, initial_model: str) -> None:
    for name in _STATE:
        shutil.rmtree(work / name, ignore_errors=True)
        if (work / f"{name}.after-initial").is_dir():
            shutil.copytree(work / f"{name}.after-initial", work / name)
    for model in (project / "models").glob("*.tar.gz"):
        if model.name != Path(initial_model).name:
            model.unlink()


def _retrains(name: str, project: Path, work: Path, initial: dict[str, Any], repeat: int,
              warm: bool, verbose: bool, profile: Path | None, first: bool) -> list[dict[str, Any]]:
    runs = []
    kind = "warm" if warm else "cold"
    for number in range(1, repeat + 1):
        if not (first and number == 1):
            _restore(work, project, initial["model"])
        _progress(f"{name}: retraining in a {kind} process ({number}/{repeat}) ...")
        label = f"retrain-{kind}-{number}"
        prof = profile / f"{name}-{label}.prof" if profile else None
        run = _run_step(name, "retrain", project, work, verbose, warm, label, prof)
        _progress(f"{name}: retrained in {run['train_seconds']:.1f}s (process "
                  f"{run['process_seconds']:.1f}s); {run['recognised']}/{len(NEW_PHRASES)} "
                  f"new phrases recognised; dialogue retrained: {run['core_retrained']}")
        runs.append(run)
    return runs


def _row(name: str, config: Path, initial: dict[str, Any], runs: list[dict[str, Any]],
         mode: str) -> dict[str, Any]:
    # The run with the median train time stands for the row; all times are kept.
    ordered = sorted(runs, key=lambda r: r["train_seconds"])
    return {"pipeline": name, "config": str(config), "mode": mode, "warm": mode == "warm",
            "initial": initial, "retrain": ordered[(len(ordered) - 1) // 2],
            "retrain_seconds_all": [r["train_seconds"] for r in runs],
            "retrain_process_seconds_all": [r["process_seconds"] for r in runs],
            "retrain_seconds_median": median([r["train_seconds"] for r in runs]),
            "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}


# --- `opsbot train` with the warm trainer running ---------------------------------------------

_TRAINED_BY_TRAINER = re.compile(
    r"^Model ready in (?P<seconds>[\d.]+)s by the running opsbot's trainer "
    r"\(trained: (?P<trained>.*); restored from the cache: (?P<restored>.*)\): (?P<model>.+)$",
    re.MULTILINE)


def parse_trainer_answer(output: str) -> dict[str, Any] | None:
    """What `opsbot train` printed when the trainer did the work, or None if it trained in
    its own process (no trainer answered)."""
    match = _TRAINED_BY_TRAINER.search(output)
    if match is None:
        return None

    def names(text: str) -> list[str]:  # "A, B x2" -> [A, B, B]
        found: list[str] = []
        for item in ([] if text == "nothing" else text.split(",")):
            name, _, count = item.strip().partition(" x")
            found += [name] * (int(count) if count.isdigit() else 1)
        return found

    return {"train_seconds": float(match.group("seconds")), "model": match.group("model"),
            "trained_components": names(match.group("trained")),
            "restored_components": names(match.group("restored"))}


def policy_names(project: Path) -> set[str]:
    """The class names of the project's dialogue policies (config.yml ``policies``)."""
    config = yaml.safe_load((project / "config.yml").read_text(encoding="utf-8")) or {}
    return {str(p.get("name", "")).rsplit(".", 1)[-1] for p in config.get("policies") or []
            if isinstance(p, dict)}


def _hold_trainer_port(project: Path, work: Path) -> Any:
    """The trainer's port for ``project``, held as `opsbot run` holds it
    (opsbot._processes.TrainerOnDemand), with no trainer running yet: the next `opsbot
    train` starts one. Returns the stack to stop."""
    import dataclasses

    from opsbot._processes import Stack
    from opsbot.settings import Settings

    env = _environment(project, work)
    settings = dataclasses.replace(
        Settings.from_env(project), state_dir=Path(env["OPSBOT_STATE_DIR"]),
        cache_dir=Path(env["OPSBOT_CACHE_DIR"]), models=project / "models",
        trainer_idle_seconds=600.0)  # no idle exit between the two retrains of a repeat
    stack = Stack(settings)
    stack.start_trainer({name: env[name] for name in (
        "PYTHONPATH", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "TF_CPP_MIN_LOG_LEVEL",
        "RASA_CACHE_DIRECTORY", "OPSBOT_API_TOKEN")})
    return stack


def _opsbot_train(name: str, project: Path, work: Path, label: str, verbose: bool,
                  policies: set[str]) -> dict[str, Any]:
    """`opsbot train` in ``project``, timed from launch to exit, through the trainer; what
    the trainer said it did, and the check of the model."""
    launched = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", "opsbot", "train"], cwd=project,
                               env=_environment(project, work), capture_output=True, text=True)
    process_seconds = time.perf_counter() - launched
    output = completed.stdout + completed.stderr
    (work / f"{label}.log").write_text(output, encoding="utf-8")
    if verbose:
        print(output, file=sys.stderr)
    answer = parse_trainer_answer(completed.stdout)
    if completed.returncode != 0 or answer is None:
        raise SystemExit(f"bench: `opsbot train` did not train through the trainer "
                         f"(exit {completed.returncode}).\n{output[-3000:]}")
    check = _run_step(name, "check", project, work, verbose, label=f"{label}-check",
                      model=Path(answer["model"]))
    run = {**check, **answer, "step": "retrain", "process_seconds": process_seconds,
           "phases": {}, "nodes": [], "newly_embedded": None,
           "core_retrained": any(c in policies for c in answer["trained_components"]),
           "nlu_retrained": any(c not in policies for c in answer["trained_components"])}
    _progress(f"{name}: `opsbot train` took {process_seconds:.1f}s (the trainer's train call "
              f"{run['train_seconds']:.1f}s); {run['recognised']}/{len(NEW_PHRASES)} new "
              f"phrases recognised; {_trained_summary(run)}")
    return run


def _trainer_retrains(name: str, project: Path, work: Path, initial: dict[str, Any],
                      repeat: int, verbose: bool
                      ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Retrain with `opsbot train` through the trainer of a running opsbot: (the runs
    that started it on demand, the runs while it was warm).

    Every repeat holds a new trainer port as `opsbot run` does. Its first `opsbot train`
    starts the trainer (as the first retrain after the idle timeout does: the command
    waits for its start and warm-up); then the caches the initial training left are
    restored and a second `opsbot train` finds it warm.
    """
    policies = policy_names(project)
    cold, warm = [], []
    for number in range(1, repeat + 1):
        _restore(work, project, initial["model"])
        stack = _hold_trainer_port(project, work)
        try:
            _progress(f"{name}: `opsbot train`, the trainer started on demand "
                      f"({number}/{repeat}) ...")
            cold.append(_opsbot_train(name, project, work, f"retrain-trainer-cold-{number}",
                                      verbose, policies))
            _restore(work, project, initial["model"])
            _progress(f"{name}: `opsbot train`, the trainer warm ({number}/{repeat}) ...")
            warm.append(_opsbot_train(name, project, work, f"retrain-trainer-{number}",
                                      verbose, policies))
        finally:
            stack.stop()
    return cold, warm


def run_pipeline(name: str, scratch: Path, opsbot_config: Path, verbose: bool = False,
                 repeat: int = 1, warm: bool = False, profile: Path | None = None,
                 trainer: bool = True) -> list[dict[str, Any]]:
    """Initial training, 10 new phrases, retraining and a check, for one pipeline.

    One row for the retrain in a fresh process (`opsbot train` with no opsbot running);
    for opsbot's pipeline, with ``trainer``, one for `opsbot train` with the warm trainer
    running, and with ``warm`` one for the train call alone in a warm process. Every
    retrain starts from the state the initial training left.
    """
    work = scratch / name
    config = opsbot_config if name == "opsbot" else PIPELINES[name]
    project = make_project(name, work / "project", opsbot_config)
    _progress(f"{name}: initial training from scratch (cold caches) ...")
    initial = _run_step(name, "initial", project, work, verbose)
    _progress(f"{name}: initial training {initial['train_seconds']:.1f}s "
              f"(process {initial['process_seconds']:.1f}s); "
              f"{initial['recognised']}/{len(NEW_PHRASES)} new phrases recognised before teaching")
    _snapshot(work)
    taught = write_taught(project)
    _progress(f"{name}: wrote {len(NEW_PHRASES)} phrases to {taught.relative_to(project)}")
    cold = _retrains(name, project, work, initial, repeat, False, verbose, profile, True)
    rows = [_row(name, config, initial, cold, "cold")]
    _progress(f"{name}: {_trained_summary(rows[0]['retrain'])}")
    if name == "opsbot" and trainer:
        started, warm_runs = _trainer_retrains(name, project, work, initial, repeat, verbose)
        rows.append(_row(name, config, initial, warm_runs, "trainer"))
        rows.append(_row(name, config, initial, started, "trainer-start"))
    if name == "opsbot" and warm:
        runs = _retrains(name, project, work, initial, repeat, True, verbose, profile, False)
        rows.append(_row(name, config, initial, runs, "warm"))
    return rows


# --- Report ---------------------------------------------------------------------------------


def _retrain_seconds(result: dict[str, Any]) -> float:
    return float(result.get("retrain_seconds_median", result["retrain"]["train_seconds"]))


def _mode(result: dict[str, Any]) -> str:
    return str(result.get("mode") or ("warm" if result.get("warm") else "cold"))


def _through_trainer(result: dict[str, Any]) -> bool:
    return _mode(result) in ("trainer", "trainer-start")


def row_name(result: dict[str, Any]) -> str:
    suffix = {"cold": "", "warm": " (warm process)", "trainer": " (opsbot train, trainer running)",
              "trainer-start": " (opsbot train, trainer started on demand)"}
    return result["pipeline"] + suffix[_mode(result)]


def _process_seconds(result: dict[str, Any]) -> float:
    runs = result.get("retrain_process_seconds_all") or [result["retrain"]["process_seconds"]]
    return median(runs)


def format_table(results: Sequence[dict[str, Any]]) -> str:
    """The results as a Markdown table, with the acceptance check under it."""
    base = next((r for r in results if r["pipeline"] == "rasa-default" and _mode(r) == "cold"),
                None)
    header = ["pipeline", "initial train s", "retrain after 10 phrases s (train call)",
              "process s", "new phrases recognised", "dialogue retrained",
              "speed-up vs rasa-default"]
    rows = []
    for r in results:
        retrain = r["retrain"]
        seconds = _retrain_seconds(r)
        runs = r.get("retrain_seconds_all") or [seconds]
        speedup = "n/a"
        # The trainer rows are judged on the whole command, as in the verdict below.
        judged = _process_seconds(r) if _through_trainer(r) else seconds
        if base is not None and judged > 0:
            speedup = f"{_retrain_seconds(base) / judged:.1f}x"
        spread = f" ({min(runs):.1f}-{max(runs):.1f})" if len(runs) > 1 else ""
        rows.append([
            row_name(r), f"{r['initial']['train_seconds']:.1f}", f"{seconds:.1f}{spread}",
            "n/a" if _mode(r) == "warm" else f"{_process_seconds(r):.1f}",
            f"{retrain['recognised']}/{retrain['phrases']} (before: {r['initial']['recognised']})",
            "yes" if retrain["core_retrained"] else "no", speedup,
        ])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    lines = []
    for i, row in enumerate([header, *rows]):
        cells = (str(x).ljust(w) for x, w in zip(row, widths, strict=True))
        lines.append("| " + " | ".join(cells) + " |")
        if i == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    notes = []
    if any(len(r.get("retrain_seconds_all") or []) > 1 for r in results):
        notes.append("Retrain seconds: the median of the repeats, (min-max) in brackets.")
    if any(_through_trainer(r) for r in results):
        notes.append("Trainer running: `opsbot train` handed the job to the trainer of a "
                     "running `opsbot run` or `opsbot demo` (opsbot/_trainer.py), warm; started "
                     "on demand: the trainer was not running (it exits when idle), and the "
                     "command waited for it to start and warm up. Their process seconds are "
                     "the command's, launch to exit, and are what the verdict and the speed-up "
                     "use.")
    if any(_mode(r) == "warm" for r in results):
        notes.append("Warm process: the train call alone, in a process that has already "
                     "imported Rasa and torch and loaded the embedding model.")
    for r in results:
        if r["pipeline"] != "opsbot":
            continue
        # The trainer rows are judged on what their user waits for: the whole command.
        seconds = _process_seconds(r) if _through_trainer(r) else _retrain_seconds(r)
        verdict = [f"{row_name(r)}: retrain {seconds:.1f}s (limit {LIMIT_SECONDS:.0f}s: "
                   f"{'ok' if seconds <= LIMIT_SECONDS else 'TOO SLOW'})"]
        if base is not None and seconds > 0:
            ratio = _retrain_seconds(base) / seconds
            enough = "ok" if ratio >= MIN_SPEEDUP else "NO"
            verdict.append(f"{ratio:.1f}x faster than rasa-default's retrain "
                           f"(at least {MIN_SPEEDUP:.0f}x: {enough})")
        notes.append("; ".join(verdict) + ".")
    return "\n".join(lines + ([""] + notes if notes else []))


def format_breakdown(result: dict[str, Any], top: int = 8) -> str:
    """Where one row's retrain went: phases and the slowest graph nodes."""
    retrain = result["retrain"]
    if not retrain.get("phases"):  # timed from outside (the trainer): no phases or nodes
        return (f"{row_name(result)} retrain {retrain['train_seconds']:.1f}s in the trainer, "
                f"{retrain['process_seconds']:.1f}s for the command; "
                f"{_trained_summary(retrain)}")
    lines = [f"{row_name(result)} retrain {retrain['train_seconds']:.1f}s: "
             + ", ".join(f"{k} {v:.1f}s" for k, v in retrain["phases"].items())]
    nodes = sorted(retrain["nodes"], key=lambda n: -n["seconds"])[:top]
    lines += [f"  {n['seconds']:6.2f}s  {n['node']}{' (cached)' if n['cached'] else ''}"
              for n in nodes]
    if retrain.get("newly_embedded") is not None:
        lines.append(f"  sentence embeddings: {retrain['newly_embedded']} newly embedded")
    return "\n".join(lines)


def _plot(results: Sequence[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [row_name(r) for r in results]
    initial = [r["initial"]["train_seconds"] for r in results]
    retrain = [_retrain_seconds(r) for r in results]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    positions = range(len(names))
    ax.barh([p + 0.2 for p in positions], initial, height=0.4, label="initial training")
    ax.barh([p - 0.2 for p in positions], retrain, height=0.4, label="retrain after 10 phrases")
    for p, value in zip(positions, retrain, strict=True):
        ax.text(value, p - 0.2, f" {value:.1f}s", va="center", fontsize=8)
    ax.axvline(LIMIT_SECONDS, color="grey", linestyle=":", linewidth=1)
    ax.set_yticks(list(positions), names)
    if max(initial + retrain) > 20 * max(1e-9, min(initial + retrain)):
        ax.set_xscale("log")  # DIET's minutes next to opsbot's seconds
    ax.set_xlabel(f"seconds (train call; dotted: the {LIMIT_SECONDS:.0f} s limit)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.retrain", description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pipelines", default="opsbot,rasa-default",
                        help="comma-separated, from: " + ", ".join(PIPELINES))
    parser.add_argument("--save", type=Path, help="write the results as JSON here")
    parser.add_argument("--plot", type=Path, help="draw the training times as a PNG here")
    parser.add_argument("--opsbot-config", type=Path, default=PIPELINES["opsbot"],
                        help="train opsbot with this config instead of config.yml "
                             "(to try a change)")
    parser.add_argument("--keep", type=Path,
                        help="keep the scratch projects, models, caches and logs in this "
                             "new directory")
    parser.add_argument("--repeat", type=int, default=1,
                        help="retrain N times from the same trained state and report the median "
                             "(for a shared, noisy machine)")
    parser.add_argument("--warm", action="store_true",
                        help="also time opsbot's train call alone in a process that has already "
                             "imported Rasa and loaded the embedding model")
    parser.add_argument("--no-trainer", dest="trainer", action="store_false",
                        help="skip the row for `opsbot train` with the warm trainer running")
    parser.add_argument("--profile", type=Path,
                        help="write a cProfile of every retrain's train call into this directory")
    parser.add_argument("--verbose", action="store_true", help="show Rasa's training output")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.pipelines.split(",") if n.strip()]
    unknown = [n for n in names if n not in PIPELINES]
    if unknown or not names:
        parser.error(f"unknown pipeline(s) {unknown}; choose from {', '.join(PIPELINES)}")
    if not args.opsbot_config.is_file():
        parser.error(f"{args.opsbot_config} does not exist")
    if args.profile:
        args.profile = args.profile.resolve()
        args.profile.mkdir(parents=True, exist_ok=True)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.keep and args.keep.exists() and any(args.keep.iterdir()):
        parser.error(f"{args.keep} is not empty; give a new directory to --keep")
    args.names = names
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    duplicates = phrases_already_in(ROOT / "data")
    if duplicates:
        raise SystemExit(f"bench: these phrases are already in data/, so they teach nothing: "
                         f"{duplicates}. Change NEW_PHRASES in bench/retrain.py.")
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="opsbot-retrain-") as tmp:
        scratch = args.keep.resolve() if args.keep else Path(tmp)
        for name in args.names:
            results += run_pipeline(name, scratch, args.opsbot_config.resolve(), args.verbose,
                                    args.repeat, args.warm, args.profile, args.trainer)
            if args.save:
                _save(args.save, results, argv if argv is not None else sys.argv[1:])
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\nRetraining after 10 new phrases (python -m bench.retrain; {os.cpu_count()} CPUs, "
          f"load average now {load})\n")
    print(format_table(results))
    print("\nWhere the retrain time goes:")
    for result in results:
        print(format_breakdown(result))
    if args.plot:
        _plot(results, args.plot)
        print(f"\nplot: {args.plot}")
    return 0


def _save(path: Path, results: list[dict[str, Any]], argv: Sequence[str]) -> None:
    import rasa

    path.parent.mkdir(parents=True, exist_ok=True)
    summary = {
        "command": " ".join(["python -m bench.retrain", *argv]),
        "phrases": [{"intent": i, "text": t} for i, t in NEW_PHRASES],
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "rasa": rasa.__version__, "load_average": list(os.getloadavg())},
        "commit": source_commit(),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "results": results,
    }
    path.write_text(json.dumps(summary, indent=1), encoding="utf-8")


# --- The worker: one training step in its own process -----------------------------------------


class _Recorder:
    """Times every graph node Rasa runs, notes whether it came from the cache, and times
    the parts of a training run that are not graph nodes.

    Installed inside the timed region: the modules it imports are ones rasa.api.train
    imports anyway, so the train call's time stays what `opsbot train` would see.
    """

    def __init__(self) -> None:
        self.nodes: list[dict[str, Any]] = []
        self.classes: dict[str, type] = {}
        self.phases: dict[str, float] = {}
        self.newly_embedded: int | None = None

    def install(self) -> None:
        import logging

        import rasa.shared.utils.io
        import rasa.utils.common
        from rasa.engine.storage.local_model_storage import LocalModelStorage
        from rasa.engine.training import graph_trainer, hooks
        from rasa.engine.training.components import PrecomputedValueProvider

        recorder = self

        class RecordingHook(graph_trainer.LoggingHook):  # type: ignore[misc]
            def on_before_node(self, node_name: str, execution_context: Any, config: Any,
                               received_inputs: Any) -> dict[str, Any]:
                data = super().on_before_node(node_name, execution_context, config, received_inputs)
                return {**data, "started": time.perf_counter()}

            def on_after_node(self, node_name: str, execution_context: Any, config: Any,
                              output: Any, input_hook_data: dict[str, Any]) -> None:
                seconds = time.perf_counter() - input_hook_data["started"]
                super().on_after_node(node_name, execution_context, config, output, input_hook_data)
                node = self._pruned_schema.nodes[node_name]
                component = execution_context.graph_schema.nodes[node_name].uses
                recorder.classes[node_name] = component
                recorder.nodes.append({
                    "node": node_name, "component": component.__name__, "seconds": seconds,
                    "cached": node.uses == PrecomputedValueProvider,
                    "trains": self._does_node_train(node),
                })

        graph_trainer.LoggingHook = RecordingHook
        # Hooks run in order [LoggingHook, TrainingHook], so a node's own time above
        # includes TrainingHook.on_before_node (fingerprinting its inputs) and excludes
        # TrainingHook.on_after_node (fingerprinting and caching its output).
        self._time(graph_trainer.GraphTrainer, "fingerprint", "fingerprint run")
        self._time(graph_trainer.GraphTrainer, "train", "graph training")
        self._time(LocalModelStorage, "create_model_package", "packaging")
        self._time(hooks.TrainingHook, "on_before_node", "cache: fingerprint node inputs")
        self._time(hooks.TrainingHook, "on_after_node", "cache: fingerprint and store node outputs")
        self._time(rasa.utils.common, "find_unavailable_packages",
                   "importing packages components require")
        self._time(rasa.shared.utils.io, "read_yaml", "YAML parsing")

        class EmbeddingCount(logging.Handler):
            def emit(self, record: logging.LogRecord) -> None:
                if record.getMessage().startswith("Sentence embeddings:") and record.args:
                    recorder.newly_embedded = int(record.args[-1])  # type: ignore[index]

        logger = logging.getLogger("nlu.embedding_featurizer")
        logger.addHandler(EmbeddingCount())
        logger.setLevel(logging.INFO)

    def _time(self, owner: Any, name: str, phase: str) -> None:
        original = getattr(owner, name)
        phases = self.phases

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - started

        setattr(owner, name, timed)

    def breakdown(self, train_seconds: float) -> dict[str, float]:
        """Where the train call's time went, in seconds."""
        p = self.phases
        graph = p.get("graph training", 0.0)
        fingerprint = p.get("fingerprint run", 0.0)
        packaging = p.get("packaging", 0.0)
        nodes = sum(n["seconds"] for n in self.nodes)
        store = p.get("cache: fingerprint and store node outputs", 0.0)
        return {
            "before the graph (imports, reading data, validation)": train_seconds - graph,
            "fingerprint run": fingerprint,
            "graph nodes": nodes,
            "caching node outputs": store,
            "packaging": packaging,
            "other": graph - fingerprint - nodes - store - packaging,
            # Cross-cutting; already counted above.
            "of which: importing packages components require":
                p.get("importing packages components require", 0.0),
            "of which: YAML parsing": p.get("YAML parsing", 0.0),
            "of which: fingerprinting node inputs": p.get("cache: fingerprint node inputs", 0.0),
        }

    def classify(self) -> None:
        """Mark the dialogue policies' nodes (imported only now, after the timed call)."""
        from rasa.core.policies.policy import Policy

        for node in self.nodes:
            component = self.classes.get(node["node"])
            node["core"] = isinstance(component, type) and issubclass(component, Policy)


async def _recognise(model: str) -> list[dict[str, Any]]:
    from rasa.core.agent import Agent

    agent = Agent.load(model)
    checks = []
    for intent, annotated in NEW_PHRASES:
        parsed = await agent.parse_message(plain_text(annotated))
        got = parsed.get("intent") or {}
        expected = sorted(annotated_entities(annotated))
        found = sorted((e.get("entity"), str(e.get("value"))) for e in parsed.get("entities") or [])
        checks.append({
            "text": plain_text(annotated), "intent": intent, "predicted": got.get("name"),
            "confidence": float(got.get("confidence") or 0.0), "correct": got.get("name") == intent,
            "entities_expected": expected, "entities_found": found,
        })
    return checks


def _warm_up(project: Path) -> None:
    """What a warm trainer has done before a retrain: imported Rasa (and TensorFlow, if
    the pipeline needs it) and, for opsbot's pipeline, imported torch and loaded the
    embedding model."""
    import rasa.engine.recipes.default_components  # noqa: F401
    import rasa.model_training  # noqa: F401

    if "nlu.SentenceEmbeddingFeaturizer" in (project / "config.yml").read_text(encoding="utf-8"):
        from nlu._encoder import load_model

        load_model(None, "float32").embed(["warm up"])


def worker(argv: Sequence[str]) -> int:
    """Train the scratch project once, the way `opsbot train` does, and check the model."""
    parser = argparse.ArgumentParser(prog="python -m bench.retrain _worker")
    parser.add_argument("--project", required=True, type=Path)
    parser.add_argument("--step", required=True, choices=["initial", "retrain", "check"])
    parser.add_argument("--model", type=Path, help="the model to check (step check)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--launched-at", required=True, type=float)
    parser.add_argument("--warm", action="store_true")
    parser.add_argument("--profile", type=Path)
    args = parser.parse_args(argv)

    import asyncio
    import logging
    import warnings

    for category in (DeprecationWarning, PendingDeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    from opsbot._no_tensorflow import install_for

    install_for(args.project / "config.yml")  # as `opsbot train` does: no TensorFlow if unused
    from rasa.api import train
    from rasa.utils.common import configure_logging_and_warnings
    from rasa.utils.log_utils import configure_structlog

    # As `opsbot train` does: INFO logging, the project on sys.path for nlu/.
    configure_logging_and_warnings(logging.INFO, warn_only_once=True)
    configure_structlog(logging.INFO)
    sys.path.insert(0, str(args.project))
    if args.step == "check":  # a model trained elsewhere: only the check
        configure_logging_and_warnings(logging.WARNING)
        checks = asyncio.run(_recognise(str(args.model)))
        args.out.write_text(json.dumps({
            "phrases": len(checks), "recognised": sum(c["correct"] for c in checks),
            "checks": checks}, indent=1), encoding="utf-8")
        return 0
    recorder = _Recorder()
    if args.warm:
        _warm_up(args.project)

    project = args.project
    # The inputs `opsbot train` trains on: data/ plus the routes of the built-in intents
    # and the team-defined operations (none in the scratch copy), with their domain. The
    # trainer rows train through `opsbot train`: on other inputs, Rasa's cache would
    # restore nothing there.
    from opsbot._training import operations_training_files
    from opsbot.settings import Settings

    domain, operations_data, _ = operations_training_files(Settings.from_env(project))
    print(f"== {args.step}: rasa.api.train in {project}", flush=True)
    profiler = None
    if args.profile:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    started = time.perf_counter()
    recorder.install()
    result = train(domain=str(domain), config=str(project / "config.yml"),
                   training_files=[str(project / "data"), str(operations_data)],
                   output=str(project / "models"), force_training=False)
    train_seconds = time.perf_counter() - started
    torch_imported = "torch" in sys.modules
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(str(args.profile))
    process_seconds = time.time() - args.launched_at
    if result.code != 0 or not result.model:
        print(f"training failed (code {result.code})", file=sys.stderr)
        return 1
    recorder.classify()
    configure_logging_and_warnings(logging.WARNING)
    checks = asyncio.run(_recognise(result.model))
    summary = {
        "step": args.step, "model": result.model, "train_seconds": train_seconds,
        "process_seconds": process_seconds, "phases": recorder.breakdown(train_seconds),
        "nodes": recorder.nodes,
        "core_retrained": any(n["core"] and not n["cached"] for n in recorder.nodes),
        "nlu_retrained": any(n["trains"] and not n["core"] and not n["cached"]
                             for n in recorder.nodes),
        "newly_embedded": recorder.newly_embedded,
        "torch_imported_by_training": torch_imported and not args.warm,
        "phrases": len(checks), "recognised": sum(c["correct"] for c in checks), "checks": checks,
    }
    args.out.write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return 0


if __name__ == "__main__":
    if sys.argv[1:2] == ["_worker"]:
        raise SystemExit(worker(sys.argv[2:]))
    raise SystemExit(main())
