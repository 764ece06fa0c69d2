"""Where a turn's CPU goes: the Rasa server and the action server sampled under load.

Starts one opsbot replica (as ``bench.load``'s first row: SQLite, one worker, the
simulated backends), runs the same closed-loop REST conversations, and samples both
servers with py-spy (``pip install py-spy``; it attaches to the processes, so it needs
root or ptrace rights) while they run. Prints, per server, the functions that hold the
most samples (inclusive: the function or anything it called), as a share of all samples,
and the CPU milliseconds per message.

    python -m bench.profile
    python -m bench.profile --concurrency 50 --seconds 30 --top 25 --save bench/results/profile.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from bench import load

_FRAME = re.compile(r"^(?P<function>.*?) \((?P<file>[^:()]+)(?::\d+)?\)$")


def _short(path: str) -> str:
    for marker in ("site-packages/", "/work/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return path.split("main/", 1)[1] if path.startswith("main/") else path


def summarise(raw: str, top: int) -> list[tuple[str, float]]:
    """py-spy's raw (collapsed) stacks -> the ``top`` functions by inclusive share."""
    inclusive: Counter[str] = Counter()
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        samples = int(count)
        total += samples
        seen = set()
        for frame in stack.split(";"):
            match = _FRAME.match(frame.strip())
            name = (f"{match['function']} ({_short(match['file'])})" if match
                    else frame.strip())
            if name not in seen:
                seen.add(name)
                inclusive[name] += samples
    if not total:
        return []
    boring = ("<module>", "run_forever", "_run_once", "_run (asyncio", "run (asyncio",
              "serve (", "run (threading", "_bootstrap", "main (", "<lambda>",
              "runpy", "run_module", "_run_code", "_run_module_as_main", "start (sanic",
              "run (sanic", "serve_single", "_process_request (")
    ranked = [(name, count / total * 100) for name, count in inclusive.most_common()
              if not any(b in name for b in boring)]
    return ranked[:top]


# Where a Rasa-server turn goes, by the function that does it (inclusive shares).
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("NLU: parse the message", ("MessageProcessor._parse_message_with_graph",)),
    ("  sentence embedding", ("SentenceEmbeddingFeaturizer.process",)),
    ("  intent classifier", ("LinearIntentClassifier.process",)),
    ("  entities (CRF)", ("CRFEntityExtractor.process",)),
    ("dialogue policies: next action", ("MessageProcessor.predict_next_with_tracker_if_should",
                                        "MessageProcessor._predict_next_with_tracker")),
    ("read the conversation (tracker store)", ("SQLTrackerStore.retrieve",
                                               "CachingSQLTrackerStore.retrieve")),
    ("write the conversation (tracker store)", ("SQLTrackerStore.save",
                                                "CachingSQLTrackerStore.save")),
    ("call the action server", ("RemoteAction.run",)),
    ("  check its answer (jsonschema)", ("RemoteAction._validate_action_result",
                                         "install.<locals>._validate_action_result")),
    ("  JSON of the tracker it is sent", ("JsonPayload.__init__",)),
)


def areas(raw: str) -> list[tuple[str, float]]:
    """The share of samples in each of AREAS."""
    counts = dict.fromkeys((name for name, _ in AREAS), 0)
    total = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        total += int(count)
        functions = {frame.strip().split(" (")[0] for frame in stack.split(";")}
        for name, patterns in AREAS:
            if functions.intersection(patterns):
                counts[name] += int(count)
    return [(name, counts[name] / total * 100 if total else 0.0) for name, _ in AREAS]


def _record(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    log = open(out.with_suffix(".log"), "wb")  # noqa: SIM115 - the child holds it
    return subprocess.Popen([spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                             "--rate", "200", "--format", "raw", "--output", str(out),
                             "--nonblocking", "--subprocesses"],
                            stdout=log, stderr=subprocess.STDOUT)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--save", type=Path)
    parser.add_argument("--raw", type=Path, help="keep py-spy's collapsed stacks here")
    args = parser.parse_args(argv)
    if not (shutil.which("py-spy") or (Path(sys.executable).parent / "py-spy").exists()):
        print("bench.profile needs py-spy: pip install py-spy", file=sys.stderr)
        return 2
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from opsbot._tokens import ACTIONS_SECRET, API_TOKEN, REST_TOKEN
    from opsbot._training import current_model, train_model
    from opsbot.settings import Settings

    for variable in (API_TOKEN, REST_TOKEN, ACTIONS_SECRET):
        os.environ.setdefault(variable, secrets.token_urlsafe(24))
    settings = Settings.from_env(load.ROOT)
    model = current_model(settings) or train_model(settings, quiet=True)
    senders = [f"load-{i:03d}" for i in range(args.concurrency)]
    report: dict[str, Any] = {"concurrency": args.concurrency, "seconds": args.seconds,
                              "commit": _commit(), "servers": {}}
    with tempfile.TemporaryDirectory(prefix="opsbot-profile-") as scratch, ExitStack() as stack:
        work = Path(scratch)
        env = {**stack.enter_context(load._backends()),
               "OPSBOT_POLICY": str(load._policy(work, senders))}
        urls, pgids = stack.enter_context(load._opsbot(model, work, 1, env))
        actions = load.ACTION_PIDS[0]
        headers = {"Authorization": f"Bearer {os.environ[REST_TOKEN]}"}
        outputs = {"rasa": work / "rasa.txt", "actions": work / "actions.txt"}
        spies: dict[str, subprocess.Popen[bytes]] = {}

        def start_spies() -> None:  # after the warm-up: the steady state only
            for name, pid in (("rasa", pgids[0]), ("actions", actions)):
                spies[name] = _record(pid, args.seconds, outputs[name])
            time.sleep(0.5)

        latencies, errors, wall, cpu = asyncio.run(load._load(
            urls, headers, senders, 10 ** 6, args.seconds,
            lambda: load.group_cpu_seconds(pgids), start_spies))
        for spy in spies.values():
            spy.wait(timeout=120)
        report["messages"] = len(latencies)
        report["errors"] = errors
        report["rasa_cpu_ms_per_message"] = round(cpu * 1000 / max(1, len(latencies)), 1)
        print(f"{len(latencies)} messages in {wall:.1f} s, {errors} errors; Rasa server "
              f"{report['rasa_cpu_ms_per_message']} ms CPU per message")
        for name, path in outputs.items():
            if not path.exists():
                said = path.with_suffix(".log")
                problem = said.read_text(errors="replace")[-300:] if said.exists() else ""
                print(f"\n{name}: py-spy recorded nothing {problem}")
                continue
            if args.raw:
                args.raw.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, args.raw / f"{name}.txt")
            raw = path.read_text(encoding="utf-8", errors="replace")
            ranked = summarise(raw, args.top)
            report["servers"][name] = ranked
            if name == "rasa":
                report["areas"] = areas(raw)
                print("\nrasa server: where a turn goes (share of samples)")
                for area, share in report["areas"]:
                    print(f"  {share:5.1f}%  {area}")
            print(f"\n{name} server: share of samples (inclusive)")
            for function, share in ranked:
                print(f"  {share:5.1f}%  {function}")
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    return 0


def _commit() -> str:
    from bench.nlu import source_commit

    return source_commit()


if __name__ == "__main__":
    sys.exit(main())
