"""Load benchmark: closed-loop REST conversations against opsbot and a plain Rasa bot.

N conversations at once (default 50), each a person of the team asking a script of
realistic ops questions (SCRIPT) through the REST channel, one message after the answer
to the last: against the simulated Jenkins, Jira and Loki of ``opsbot demo``, loopback
only. Bounded by a message count and a time limit per row. For each setup it prints
latency p50/p95/p99, throughput, errors and the Rasa server's CPU milliseconds per
message (user + system time of its processes, from /proc, over the measured messages):

1. ``opsbot, 1 replica``: what ``opsbot run`` starts by default (SQLite, one worker);
2. ``opsbot, 1 replica, 2 workers``: ``OPSBOT_WORKERS=2`` on Redis (store and tracker on
   PostgreSQL, as several processes need);
3. ``opsbot, 2 replicas``: two Rasa servers and two action servers on PostgreSQL and
   Redis, the conversations spread over both (as a load balancer would);
4. ``rasa init``: Rasa's starter project (``rasa init``: its default pipeline and
   policies, no action server), the same script through its REST channel. Trained once
   and kept in the bench cache (``OPSBOT_CACHE_DIR``/bench-rasa-init).

PostgreSQL and Redis come from ``scripts/postgres.sh`` and ``scripts/redis.sh`` (root;
or ``OPSBOT_TEST_POSTGRES_URL`` / ``OPSBOT_TEST_REDIS_URL``); without them rows 2 and 3
are skipped with the reason.

    python -m bench.load
    python -m bench.load --concurrency 50 --messages 600 --seconds 120 \\
        --save bench/results/load.json --plot bench/results/load.png
    python -m bench.load --rows opsbot-1 rasa-init
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
ROWS = ("opsbot-1", "opsbot-workers", "opsbot-2", "rasa-init")
TITLES = {
    "opsbot-1": "opsbot, 1 replica",
    "opsbot-workers": "opsbot, 1 replica, 2 workers (Redis)",
    "opsbot-2": "opsbot, 2 replicas (PostgreSQL + Redis)",
    "rasa-init": "plain Rasa (rasa init)",
}
# What an SRE or QA engineer asks in a working day; reads only (no confirmations), so
# every message is one turn and the runs are repeatable.
SCRIPT: tuple[str, ...] = (
    "hi",
    "what's the status of nightly-integration?",
    "errors from payments in the last hour",
    "what version of search is on staging?",
    "why did the last checkout build fail?",
    "status of OPS-101",
    "what's red in CI?",
    "my open tickets",
    "is the payments build green?",
    "list the jobs",
)
ACTION_PIDS: list[int] = []  # of the stacks _opsbot runs now (bench.profile samples them)
WARMUP_MESSAGES = 2  # per conversation, not measured (first-turn costs, caches)


# --- the load ------------------------------------------------------------------------------


@dataclasses.dataclass
class Result:
    row: str
    latencies: list[float]
    errors: int
    seconds: float
    cpu_ms: float | None
    note: str = ""

    @property
    def messages(self) -> int:
        return len(self.latencies)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
        return ordered[k]

    def as_dict(self) -> dict[str, Any]:
        return {"row": self.row, "title": TITLES[self.row], "messages": self.messages,
                "errors": self.errors, "seconds": round(self.seconds, 2),
                "throughput": round(self.messages / self.seconds, 2) if self.seconds else 0,
                "p50": round(self.percentile(50), 4), "p95": round(self.percentile(95), 4),
                "p99": round(self.percentile(99), 4),
                "cpu_ms_per_message": None if self.cpu_ms is None else round(self.cpu_ms, 1),
                "note": self.note, "latencies": [round(x, 4) for x in self.latencies]}


async def _converse(urls: list[str], headers: dict[str, str], sender: str, index: int,
                    budget: dict[str, Any], latencies: list[float], errors: list[int]) -> None:
    import aiohttp

    url = urls[index % len(urls)]
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout, headers=headers) as session:
        turn = index + WARMUP_MESSAGES  # where its warm-up stopped (another point each)
        while budget["left"] > 0 and time.monotonic() < budget["deadline"]:
            budget["left"] -= 1
            text = SCRIPT[turn % len(SCRIPT)]
            turn += 1
            started = time.perf_counter()
            ok = False
            try:
                async with session.post(url, json={"sender": sender, "message": text}) as answer:
                    body = await answer.json(content_type=None)
                    ok = answer.status == 200 and isinstance(body, list) and bool(body)
            except (aiohttp.ClientError, TimeoutError, ValueError):
                ok = False
            latencies.append(time.perf_counter() - started)
            if not ok:
                errors.append(1)


async def _load(urls: list[str], headers: dict[str, str], senders: list[str], messages: int,
                seconds: float, cpu: Callable[[], float],
                measuring: Callable[[], None] | None = None
                ) -> tuple[list[float], int, float, float]:
    latencies: list[float] = []
    errors: list[int] = []
    # Warm up every conversation first (not measured), then measure them all together.
    warm = [_warm(urls, headers, s, i) for i, s in enumerate(senders)]
    await asyncio.gather(*warm)
    if measuring is not None:
        measuring()  # e.g. start a profiler
    cpu_before = cpu()
    started = time.monotonic()
    budget: dict[str, Any] = {"left": messages, "deadline": started + seconds}
    await asyncio.gather(*[_converse(urls, headers, s, i, budget, latencies, errors)
                           for i, s in enumerate(senders)])
    wall = time.monotonic() - started
    return latencies, len(errors), wall, cpu() - cpu_before


async def _warm(urls: list[str], headers: dict[str, str], sender: str, index: int) -> None:
    import aiohttp

    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300),
                                     headers=headers) as session:
        for turn in range(WARMUP_MESSAGES):
            text = SCRIPT[(index + turn) % len(SCRIPT)]
            async with session.post(urls[index % len(urls)],
                                    json={"sender": sender, "message": text}) as answer:
                await answer.read()


# --- CPU of a server's processes -----------------------------------------------------------


_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def group_cpu_seconds(pgids: Sequence[int]) -> float:
    """User + system CPU seconds of every live process in the process groups ``pgids``."""
    wanted = set(pgids)
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # fields[0] is the state (field 3); pgrp is field 5, utime 14, stime 15
        if int(fields[2]) in wanted:
            total += int(fields[11]) + int(fields[12])
    return total / _TICK


# --- the setups ----------------------------------------------------------------------------


def _policy(directory: Path, senders: list[str]) -> Path:
    data = yaml.safe_load((ROOT / "policy.yml").read_text(encoding="utf-8"))
    for name in senders:
        data["people"][name] = {"roles": ["developer"], "identities": {"rest": name}}
    path = directory / "policy.yml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def _backends() -> Iterator[dict[str, str]]:
    from simulators.jenkins import JenkinsSimulator
    from simulators.jira import JiraSimulator
    from simulators.loki import LokiSimulator

    sims: list[Any] = [JenkinsSimulator(queue_delay=0.1, build_seconds=2.0), JiraSimulator(),
            LokiSimulator()]
    env: dict[str, str] = {}
    try:
        for sim in sims:
            sim.start()
            env.update(sim.env())
        yield env
    finally:
        for sim in sims:
            sim.stop()


@contextmanager
def _opsbot(model: Path, work: Path, replicas: int, env: dict[str, str]
            ) -> Iterator[tuple[list[str], list[int]]]:
    """``replicas`` opsbot stacks; yields their REST URLs and their Rasa servers' pgids
    (then their action servers' pids, as ``ACTION_PIDS``)."""
    from opsbot._processes import Stack
    from opsbot.settings import Settings

    stacks = []
    try:
        for n in range(replicas):
            state = work / f"replica-{n}"
            settings = dataclasses.replace(Settings.from_env(ROOT), port=_free_port(),
                                           actions_port=_free_port(), state_dir=state)
            stack = Stack(settings)
            stacks.append(stack)
            stack.start_action_server(env)
            stack.start_rasa_server(model, env)
        for stack in stacks:
            stack.wait_ready(timeout=300)
        pgids = [next(c for c in s.children if c.name == "rasa").process.pid for s in stacks]
        ACTION_PIDS[:] = [next(c for c in s.children if c.name == "actions").process.pid
                          for s in stacks]
        yield [s.settings.rest_url for s in stacks], pgids
    finally:
        for stack in stacks:
            stack.stop()


def _rasa_init_project(cache: Path) -> Path:
    """The ``rasa init`` project, trained once and kept in ``cache``."""
    import rasa

    project = cache / f"bench-rasa-init-{rasa.__version__}"
    if any((project / "models").glob("*.tar.gz")):
        return project
    shutil.rmtree(project, ignore_errors=True)
    project.mkdir(parents=True)  # rasa init wants the directory to exist
    _progress(f"training the rasa init project once into {project} (a few minutes) ...")
    done = subprocess.run([sys.executable, "-m", "rasa", "init", "--no-prompt", "--init-dir",
                           str(project)], cwd=project.parent, capture_output=True, text=True,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"}, check=False)
    if done.returncode != 0 or not any((project / "models").glob("*.tar.gz")):
        raise RuntimeError(f"rasa init failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")
    return project


@contextmanager
def _rasa_init(cache: Path, work: Path) -> Iterator[tuple[list[str], list[int]]]:
    project = _rasa_init_project(cache)
    port = _free_port()
    credentials = work / "credentials.yml"
    credentials.write_text("rest:\n", encoding="utf-8")
    log = open(work / "rasa-init.log", "w", encoding="utf-8")  # noqa: SIM115 - closed below
    process = subprocess.Popen(
        [sys.executable, "-m", "rasa", "run", "--interface", "127.0.0.1", "--port", str(port),
         "--model", str(project / "models"), "--credentials", str(credentials)],
        cwd=project, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    try:
        import urllib.request

        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"rasa run exited with {process.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2):
                    pass
                # up; the model loads before the REST channel answers
                request = urllib.request.Request(
                    f"http://127.0.0.1:{port}/webhooks/rest/webhook", method="POST",
                    data=json.dumps({"sender": "probe", "message": "hi"}).encode(),
                    headers={"Content-Type": "application/json"})
                with urllib.request.urlopen(request, timeout=30) as answer:
                    if json.loads(answer.read() or b"[]"):
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"rasa run did not answer within 300 s; see {log.name}")
            time.sleep(1.0)
        yield [f"http://127.0.0.1:{port}/webhooks/rest/webhook"], [process.pid]
    finally:
        from opsbot._processes import stop_process

        stop_process(process)
        log.close()


def _servers(postgres: bool) -> tuple[dict[str, str], str | None]:
    """(PostgreSQL and Redis URLs as env, or the reason they are missing)."""
    urls: dict[str, str] = {}
    for variable, script, key in (("OPSBOT_TEST_POSTGRES_URL", "postgres.sh", "OPSBOT_DB_URL"),
                                  ("OPSBOT_TEST_REDIS_URL", "redis.sh", "OPSBOT_REDIS_URL")):
        if key == "OPSBOT_DB_URL" and not postgres:
            continue
        url = (os.environ.get(variable) or "").strip()
        if not url:
            done = subprocess.run(["bash", str(ROOT / "scripts" / script)], capture_output=True,
                                  text=True, check=False)
            url = done.stdout.strip().splitlines()[-1] if done.returncode == 0 and \
                done.stdout.strip() else ""
            if not url:
                return {}, f"scripts/{script} failed: {done.stderr.strip()[-300:]}"
        urls[key] = url
    return urls, None


@contextmanager
def _schema(url: str) -> Iterator[str]:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    schema = "opsbot_bench_" + secrets.token_hex(4)
    admin = sa.create_engine(url, future=True, poolclass=NullPool)
    with admin.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    try:
        yield make_url(url).update_query_dict({"options": f"-csearch_path={schema}"}) \
            .render_as_string(hide_password=False)
    finally:
        with admin.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def run_row(row: str, args: argparse.Namespace, model: Path | None, work: Path) -> Result:
    senders = [f"load-{i:03d}" for i in range(args.concurrency)]
    headers: dict[str, str] = {}
    with ExitStack() as stack:
        if row == "rasa-init":
            urls, pgids = stack.enter_context(_rasa_init(args.cache, work))
        else:
            assert model is not None
            env = {**stack.enter_context(_backends()),
                   "OPSBOT_POLICY": str(_policy(work, senders))}
            if row != "opsbot-1":
                servers, missing = _servers(postgres=True)
                if missing:
                    return Result(row, [], 0, 0.0, None, note=f"skipped: {missing}")
                env["OPSBOT_REDIS_URL"] = servers["OPSBOT_REDIS_URL"]
                env["OPSBOT_DB_URL"] = stack.enter_context(_schema(servers["OPSBOT_DB_URL"]))
                if row == "opsbot-workers":
                    env["OPSBOT_WORKERS"] = "2"
            replicas = 2 if row == "opsbot-2" else 1
            urls, pgids = stack.enter_context(_opsbot(model, work, replicas, env))
            from opsbot._tokens import REST_TOKEN

            headers = {"Authorization": f"Bearer {os.environ[REST_TOKEN]}"}
        _progress(f"{TITLES[row]}: {args.concurrency} conversations, up to {args.messages} "
                  f"messages or {args.seconds:g} s ...")
        latencies, errors, wall, cpu = asyncio.run(_load(
            urls, headers, senders, args.messages, args.seconds,
            lambda: group_cpu_seconds(pgids)))
    per_message = cpu * 1000 / len(latencies) if latencies else None
    return Result(row, latencies, errors, wall, per_message)


# --- output --------------------------------------------------------------------------------


def format_table(results: Sequence[Result]) -> str:
    head = (f"{'setup':<42} {'msgs':>5} {'err':>4} {'msg/s':>6} {'p50 s':>6} {'p95 s':>6} "
            f"{'p99 s':>6} {'CPU ms/msg':>10}")
    lines = [head, "-" * len(head)]
    for r in results:
        if not r.latencies:
            lines.append(f"{TITLES[r.row]:<42} {r.note}")
            continue
        cpu = f"{r.cpu_ms:.1f}" if r.cpu_ms is not None else "-"
        lines.append(f"{TITLES[r.row]:<42} {r.messages:>5} {r.errors:>4} "
                     f"{r.messages / r.seconds:>6.1f} {r.percentile(50):>6.2f} "
                     f"{r.percentile(95):>6.2f} {r.percentile(99):>6.2f} {cpu:>10}")
    return "\n".join(lines)


def _plot(results: Sequence[Result], path: Path, concurrency: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6))
    for r in results:
        if not r.latencies:
            continue
        ordered = sorted(r.latencies)
        ax.plot(ordered, [(i + 1) / len(ordered) * 100 for i in range(len(ordered))],
                label=f"{TITLES[r.row]} (p99 {r.percentile(99):.2f} s)")
    ax.set_xlabel("turn latency (s)")
    ax.set_ylabel("% of messages answered within")
    ax.set_title(f"REST turns, {concurrency} concurrent conversations")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _progress(message: str) -> None:
    print(f"[bench.load] {message}", file=sys.stderr, flush=True)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=50,
                        help="conversations at once (default 50)")
    parser.add_argument("--messages", type=int, default=600,
                        help="measured messages per row, at most (default 600)")
    parser.add_argument("--seconds", type=float, default=120.0,
                        help="measured seconds per row, at most (default 120)")
    parser.add_argument("--rows", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--save", type=Path, help="write the results as JSON here")
    parser.add_argument("--plot", type=Path, help="write the latency plot (PNG) here")
    parser.add_argument("--cache", type=Path, default=None,
                        help="where the rasa init project is kept (default OPSBOT_CACHE_DIR)")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.messages < 1 or args.seconds <= 0:
        parser.error("--concurrency, --messages and --seconds must be positive")
    if args.cache is None:
        from opsbot.settings import Settings

        args.cache = Settings.from_env(ROOT).cache_dir
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from opsbot._tokens import ACTIONS_SECRET, API_TOKEN, REST_TOKEN

    for variable in (API_TOKEN, REST_TOKEN, ACTIONS_SECRET):  # one set for every replica
        os.environ.setdefault(variable, secrets.token_urlsafe(24))
    model = None
    if any(r != "rasa-init" for r in args.rows):
        from opsbot._training import current_model, train_model
        from opsbot.settings import Settings

        settings = Settings.from_env(ROOT)
        model = current_model(settings) or train_model(settings, quiet=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="opsbot-load-") as scratch:
        for row in args.rows:
            work = Path(scratch) / row
            work.mkdir()
            try:
                results.append(run_row(row, args, model, work))
            except RuntimeError as exc:
                results.append(Result(row, [], 0, 0.0, None, note=f"failed: {exc}"))
            _progress(format_table(results[-1:]).splitlines()[-1])
    print(format_table(results))
    if args.save:
        args.save.parent.mkdir(parents=True, exist_ok=True)
        from bench.nlu import source_commit

        args.save.write_text(json.dumps({
            "command": "python -m bench.load " + " ".join(argv or sys.argv[1:]),
            "commit": source_commit(), "when": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
            "concurrency": args.concurrency, "script": list(SCRIPT),
            "rows": [r.as_dict() for r in results]}, indent=1) + "\n", encoding="utf-8")
    if args.plot:
        _plot(results, args.plot, args.concurrency)
    return 0 if all(r.latencies and not r.errors for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
