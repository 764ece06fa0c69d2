"""Memory benchmark: what `opsbot demo --serve` holds resident, process by process.

Runs `opsbot demo --serve` as a newcomer would (its simulators, action server, Rasa
server and trainer) in a copy of the project, on free ports, with its state in a scratch
directory, and reads every process of it from /proc: RSS, PSS and USS
(``/proc/PID/smaps_rollup``; PSS splits the pages processes share, such as the libraries'
code, so the PSS total is what the stack really holds). Phases:

1. ``idle``: ready, after a few chat messages through the REST channel (so what loads
   lazily has loaded) and once the stack's CPU has gone quiet;
2. ``retrain`` (the peak, sampled every 0.2 s) and ``after retrain``: ``opsbot train
   --reload`` after bench.retrain's 10 new phrases, through the running opsbot's trainer;
   then a second retrain after one more phrase (the trainer is warm by then);
3. ``idle again``: after the trainer's idle timeout (``--idle-seconds``, passed as
   OPSBOT_TRAINER_IDLE_SECONDS).

Next to it, measured in the same run: plain ``rasa run`` of Rasa's starter bot (``rasa
init``; trained once and kept in the bench cache, as bench.load's baseline), after the
same chat messages.

    python -m bench.memory
    python -m bench.memory --save bench/results/memory.json --plot bench/results/memory.png \
        --before bench/results/memory-before.json
    python -m bench.memory --no-retrain --no-baseline
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
LIMIT_MB = 1500.0  # issue 27's limit for the whole stack's RSS, 1.5 GB as it counts them
# (its 2.14 GB were 2,145 MB)
MB = 1024 * 1024
# Asked through the REST channel before the first reading: reads that reach the simulated
# Jenkins, Jira and Loki, so the NLU, the policies and every backend client have loaded.
MESSAGES = ("hi", "what's red in CI?", "errors from payments in the last hour",
            "status of OPS-101", "what version of search is on staging?")
SENDERS = ("alice", "bob")
ONE_MORE = ("deploy", "roll [orders](service) [1.9.0](version) out to [staging](environment)")
"""The phrase of the second retrain (the first teaches bench.retrain's NEW_PHRASES)."""

# What each process of the stack is, by what its command line runs.
ROLES = (("opsbot._rasa_server", "Rasa server"), ("opsbot._action_server", "action server"),
         ("opsbot._trainer", "trainer"), ("-m opsbot train", "opsbot train"),
         ("rasa run", "rasa run"))


# --- reading a process's memory ----------------------------------------------------------


@dataclass(frozen=True)
class Usage:
    """One process's resident memory, in bytes."""

    pid: int
    name: str
    rss: int
    pss: int
    uss: int

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), **{f"{k}_mb": round(getattr(self, k) / MB, 1)
                                   for k in ("rss", "pss", "uss")}}


def parse_smaps_rollup(text: str) -> tuple[int, int, int]:
    """(RSS, PSS, USS) in bytes from the text of /proc/PID/smaps_rollup."""
    fields: dict[str, int] = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            fields[key.strip()] = int(parts[0]) * 1024
    uss = fields.get("Private_Clean", 0) + fields.get("Private_Dirty", 0)
    return fields.get("Rss", 0), fields.get("Pss", 0), uss


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read()
    except OSError:
        return None


def descendants(root: int) -> list[int]:
    """``root`` and every live process under it (children, their children ...)."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _read(f"/proc/{entry}/stat")
            if stat:
                parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = [root], [root]
    while frontier:
        frontier = [pid for pid, parent in parents.items() if parent in frontier]
        found += frontier
    return [pid for pid in found if pid in parents]


def role(cmdline: str, root: bool, root_name: str) -> str:
    """What a process of the stack is, from its command line."""
    if root:
        return root_name
    return next((name for marker, name in ROLES if marker in cmdline),
                cmdline.split(" ")[0].rsplit("/", 1)[-1] or "?")


def usage(root: int, root_name: str) -> list[Usage]:
    """The memory of ``root`` and of every process under it, named by what they are."""
    found = []
    for pid in descendants(root):
        rollup = _read(f"/proc/{pid}/smaps_rollup")
        cmdline = (_read(f"/proc/{pid}/cmdline") or "").replace("\0", " ").strip()
        if not rollup:
            continue
        rss, pss, uss = parse_smaps_rollup(rollup)
        found.append(Usage(pid, role(cmdline, pid == root, root_name), rss, pss, uss))
    return found


def _cpu_seconds(pids: Sequence[int]) -> float:
    ticks = 0
    for pid in pids:
        stat = _read(f"/proc/{pid}/stat")
        if stat:
            fields = stat.rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def settle(root: int, quiet: float = 0.1, window: float = 3.0, timeout: float = 300.0) -> float:
    """Wait until the processes under ``root`` use less than ``quiet`` of a core over
    ``window`` seconds (what starts in the background has finished); the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        pids = descendants(root)
        before = _cpu_seconds(pids)
        time.sleep(window)
        if _cpu_seconds(pids) - before < quiet * window:
            break
    return time.monotonic() - started


class Peak:
    """Samples the stack's memory in a thread; keeps the reading with the largest RSS total."""

    def __init__(self, root: int, root_name: str, every: float = 0.2) -> None:
        self.root, self.root_name, self.every = root, root_name, every
        self.best: list[Usage] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = usage(self.root, self.root_name)
            if sum(u.rss for u in now) > sum(u.rss for u in self.best):
                self.best = now
            self._stop.wait(self.every)

    def __enter__(self) -> Peak:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --- the stack ---------------------------------------------------------------------------


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def make_project(target: Path) -> Path:
    """A copy of the project that a retrain may write to: its files copied, its code
    linked, Rasa's training cache (``.rasa``) copied if there is one."""
    target.mkdir(parents=True)
    for name in ("domain.yml", "config.yml", "credentials.yml", "endpoints.yml", "policy.yml"):
        shutil.copy(ROOT / name, target / name)
    shutil.copytree(ROOT / "data", target / "data")
    if (ROOT / ".rasa").is_dir():
        shutil.copytree(ROOT / ".rasa", target / ".rasa")
    for package in ("actions", "nlu", "connectors", "simulators", "opsbot", "operations"):
        (target / package).symlink_to(ROOT / package)
    return target


@dataclass
class Demo:
    process: subprocess.Popen[str]
    project: Path
    env: dict[str, str]
    port: int

    def say(self, sender: str, text: str) -> None:
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/webhooks/rest/webhook",
            data=json.dumps({"sender": sender, "message": text}).encode(), method="POST",
            headers={"Content-Type": "application/json",
                     "Authorization": f"Bearer {self.env['OPSBOT_REST_TOKEN']}"})
        with urllib.request.urlopen(request, timeout=120) as answer:
            answer.read()

    def train(self) -> dict[str, Any]:
        """``opsbot train --reload`` in the project, as the chat's teaching and ``opsbot
        review`` run it: its wall time and what it printed."""
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "opsbot", "train", "--reload",
                               "--port", str(self.port)], cwd=self.project, env=self.env,
                              capture_output=True, text=True, timeout=1800, check=False)
        seconds = time.perf_counter() - started
        if done.returncode != 0:
            raise RuntimeError(f"opsbot train failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
        from bench.retrain import parse_trainer_answer

        answer = parse_trainer_answer(done.stdout)
        return {"seconds": round(seconds, 2), "through_trainer": answer is not None,
                "train_seconds": answer["train_seconds"] if answer else None,
                "trained": answer["trained_components"] if answer else None,
                "output": done.stdout.strip().splitlines()[-3:]}


@contextmanager
def demo(work: Path, idle_seconds: float) -> Iterator[Demo]:
    """``opsbot demo --serve`` in a copy of the project; yields once it is ready."""
    project = make_project(work / "project")
    env = {**os.environ, "OPSBOT_STATE_DIR": str(work / "state"),
           "OPSBOT_MODELS": str(project / "models"), "PYTHONPATH": str(project),
           "OPSBOT_REST_TOKEN": secrets.token_urlsafe(24),
           "OPSBOT_API_TOKEN": secrets.token_urlsafe(24),
           "OPSBOT_TRAINER_IDLE_SECONDS": f"{idle_seconds:g}", "HF_HUB_OFFLINE": "1"}
    _progress("training the copy's model (its Rasa cache is the project's, if any) ...")
    trained = subprocess.run([sys.executable, "-m", "opsbot", "train"], cwd=project, env=env,
                             capture_output=True, text=True, check=False)
    if trained.returncode != 0:
        raise RuntimeError(f"opsbot train failed: {trained.stdout[-2000:]}{trained.stderr[-2000:]}")
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "opsbot", "demo", "--serve", "--port", str(port),
         "--actions-port", str(_free_port())], cwd=project, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        assert process.stdout is not None
        printed = []
        for line in process.stdout:
            printed.append(line)
            if "Stop it with Ctrl-C" in line:
                break
        else:
            raise RuntimeError("opsbot demo --serve exited early:\n" + "".join(printed[-30:]))
        threading.Thread(target=process.stdout.read, daemon=True).start()
        yield Demo(process, project, env, port)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_gone(root: int, name: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(u.name == name for u in usage(root, "?")):
            return True
        time.sleep(1.0)
    return False


def measure_opsbot(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from bench.retrain import NEW_PHRASES, write_taught

    phases: dict[str, list[Usage]] = {}
    retrains = []
    name = "supervisor (opsbot demo, simulators)"
    with demo(work, args.idle_seconds) as stack:
        root = stack.process.pid
        _progress(f"chatting: {len(MESSAGES)} messages from each of {', '.join(SENDERS)} ...")
        for sender in SENDERS:
            for text in MESSAGES:
                stack.say(sender, text)
        _progress(f"waiting for the stack to go quiet ({settle(root):.0f} s) ...")
        phases["idle"] = usage(root, name)
        _progress(_total_line("idle", phases["idle"]))
        if args.retrain:
            for number, phrases in ((1, NEW_PHRASES), (2, (ONE_MORE,))):
                write_taught(stack.project, phrases)
                _progress(f"retrain {number}: opsbot train --reload after {len(phrases)} new "
                          "phrase(s) ...")
                with Peak(root, name) as peak:
                    retrains.append(stack.train())
                phases.setdefault("retrain (peak)", [])
                if sum(u.rss for u in peak.best) > sum(u.rss for u in phases["retrain (peak)"]):
                    phases["retrain (peak)"] = peak.best
                _progress(f"retrain {number}: {retrains[-1]['seconds']:.1f} s "
                          f"(through the trainer: {retrains[-1]['through_trainer']})")
                settle(root)
                phases[f"after retrain {number}"] = usage(root, name)
                _progress(_total_line(f"after retrain {number}", phases[f"after retrain {number}"]))
            _progress(f"waiting up to {args.idle_seconds + 60:.0f} s for the trainer's idle "
                      "timeout ...")
            gone = _wait_gone(root, "trainer", args.idle_seconds + 60)
            settle(root)
            phases["idle again" if gone else "idle again (trainer still running)"] = \
                usage(root, name)
    return {"phases": {k: [u.as_dict() for u in v] for k, v in phases.items()},
            "retrains": retrains}


def measure_baseline(args: argparse.Namespace, work: Path) -> list[Usage]:
    """Plain ``rasa run`` of the ``rasa init`` bot (bench.load's), after the same messages."""
    from bench.load import _rasa_init

    with _rasa_init(args.cache, work) as (urls, pids):
        for sender in SENDERS:
            for text in MESSAGES:
                request = urllib.request.Request(
                    urls[0], data=json.dumps({"sender": sender, "message": text}).encode(),
                    headers={"Content-Type": "application/json"}, method="POST")
                with urllib.request.urlopen(request, timeout=120) as answer:
                    answer.read()
        settle(pids[0])
        return usage(pids[0], "rasa run (rasa init bot)")


# --- output ------------------------------------------------------------------------------


def totals(processes: Sequence[dict[str, Any]]) -> dict[str, float]:
    return {k: round(sum(p[k] for p in processes) / MB, 1) for k in ("rss", "pss", "uss")}


def _total_line(phase: str, found: Sequence[Usage]) -> str:
    total = totals([u.as_dict() for u in found])
    return f"{phase}: RSS {total['rss']:.0f} MB, PSS {total['pss']:.0f} MB in all"


def format_table(result: dict[str, Any]) -> str:
    """One block per phase: each process's RSS, PSS and USS in MB, then the total."""
    lines = []
    phases = dict(result["opsbot"]["phases"])
    if result.get("baseline"):
        phases["baseline: plain rasa run of the rasa init bot"] = result["baseline"]
    for phase, processes in phases.items():
        lines.append(f"\n{phase}")
        lines.append(f"  {'process':<40} {'pid':>7} {'RSS MB':>8} {'PSS MB':>8} {'USS MB':>8}")
        for p in sorted(processes, key=lambda p: -p["rss"]):
            lines.append(f"  {p['name']:<40} {p['pid']:>7} {p['rss_mb']:>8.0f} "
                         f"{p['pss_mb']:>8.0f} {p['uss_mb']:>8.0f}")
        total = totals(processes)
        lines.append(f"  {'total':<40} {'':>7} {total['rss']:>8.0f} {total['pss']:>8.0f} "
                     f"{total['uss']:>8.0f}")
    lines.append("")
    for phase, processes in (result.get("before") or {}).get("phases", {}).items():
        total = totals(processes)
        lines.append(f"before ({result['before']['commit']}), {phase}: {total['rss']:.0f} MB "
                     f"RSS, {total['pss']:.0f} MB PSS in all")
    for phase, processes in result["opsbot"]["phases"].items():
        rss = totals(processes)["rss"]
        verdict = "ok" if rss <= LIMIT_MB else "OVER"
        lines.append(f"{phase}: {rss:.0f} MB RSS in all (limit {LIMIT_MB:.0f} MB: {verdict})")
    for number, retrain in enumerate(result["opsbot"].get("retrains") or [], 1):
        lines.append(f"retrain {number}: `opsbot train --reload` {retrain['seconds']:.1f} s, "
                     f"through the trainer: {'yes' if retrain['through_trainer'] else 'no'}"
                     + (f" (its train call {retrain['train_seconds']:.1f} s)"
                        if retrain["train_seconds"] is not None else ""))
    return "\n".join(lines)


def plot(result: dict[str, Any], path: Path) -> bool:
    """A stacked bar per phase (RSS by process), and the baseline; False without matplotlib."""
    try:
        import matplotlib
    except ImportError:
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = {f"before ({result['before']['commit']}): {k}": v
              for k, v in (result.get("before") or {}).get("phases", {}).items()}
    phases.update(result["opsbot"]["phases"])
    if result.get("baseline"):
        phases["plain rasa run (rasa init bot)"] = result["baseline"]
    first = ["Rasa server", "trainer", "action server"]  # the same colours in every plot
    names = sorted({p["name"] for ps in phases.values() for p in ps},
                   key=lambda n: (first.index(n) if n in first else len(first), n))
    fig, ax = plt.subplots(figsize=(9, 4))
    labels = [textwrap.fill(k, 14) for k in phases]
    bottoms = [0.0] * len(phases)
    for name in names:
        heights = [sum(p["rss"] for p in ps if p["name"] == name) / MB for ps in phases.values()]
        ax.bar(labels, heights, bottom=bottoms, label=name)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    for x, top in enumerate(bottoms):
        ax.text(x, top, f"{top:.0f}", ha="center", va="bottom", fontsize=8)
    ax.axhline(LIMIT_MB, color="grey", linestyle=":", linewidth=1)
    ax.set_ylabel(f"RSS, MB (dotted: {LIMIT_MB:.0f} MB)")
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    ax.set_title("opsbot demo --serve, resident memory by process", fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _progress(message: str) -> None:
    print(f"[bench.memory {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.memory",
                                     description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--no-retrain", dest="retrain", action="store_false",
                        help="measure the idle stack only")
    parser.add_argument("--no-baseline", dest="baseline", action="store_false",
                        help="skip plain `rasa run` of the rasa init bot")
    parser.add_argument("--idle-seconds", type=float, default=30.0,
                        help="the trainer's idle timeout in the measured stack "
                             "(OPSBOT_TRAINER_IDLE_SECONDS; default 30)")
    parser.add_argument("--save", type=Path, help="write the results as JSON here")
    parser.add_argument("--plot", type=Path, help="draw the totals as a PNG here")
    parser.add_argument("--before", type=Path,
                        help="a result saved by an earlier run (--save): its idle and peak "
                             "readings are shown first, to compare")
    parser.add_argument("--cache", type=Path, default=None,
                        help="where the rasa init project is kept (default OPSBOT_CACHE_DIR)")
    args = parser.parse_args(argv)
    if args.cache is None:
        from opsbot.settings import Settings

        args.cache = Settings.from_env(ROOT).cache_dir
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    result: dict[str, Any] = {}
    if args.before:
        earlier = json.loads(args.before.read_text(encoding="utf-8"))
        result["before"] = {"commit": earlier.get("commit"), "file": str(args.before),
                            "phases": {k: v for k, v in earlier["opsbot"]["phases"].items()
                                       if k in ("idle", "retrain (peak)")}}
    with tempfile.TemporaryDirectory(prefix="opsbot-memory-") as scratch:
        (Path(scratch) / "opsbot").mkdir()
        result["opsbot"] = measure_opsbot(args, Path(scratch) / "opsbot")
        if args.baseline:
            (Path(scratch) / "rasa-init").mkdir()
            _progress("plain rasa run of the rasa init bot ...")
            result["baseline"] = [u.as_dict() for u in
                                  measure_baseline(args, Path(scratch) / "rasa-init")]
    print(format_table(result))
    if args.save:
        from bench.nlu import source_commit

        args.save.parent.mkdir(parents=True, exist_ok=True)
        args.save.write_text(json.dumps({
            "command": " ".join(["python -m bench.memory",
                                 *(argv if argv is not None else sys.argv[1:])]),
            "commit": source_commit(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "limit_mb": LIMIT_MB, "idle_seconds": args.idle_seconds, **result}, indent=1) + "\n",
            encoding="utf-8")
    if args.plot and not plot(result, args.plot):
        print("matplotlib is not installed: no plot", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
