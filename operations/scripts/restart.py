#!/usr/bin/env python3
"""The demo's "restart a service" script (operations/restart_service.yml, last_restart.yml).

Run by opsbot as a child process with only PATH and the variables the operation declares:

    restart.py restart SERVICE ENVIRONMENT [--mode graceful|hard]
    restart.py last SERVICE [ENVIRONMENT]

Each restart is one JSON line in $RESTARTS_FILE (default restarts.jsonl in the working
directory), so "when was payments last restarted?" can be answered. Stdlib only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ENVIRONMENTS = ("dev", "staging", "prod")
SERVICE = re.compile(r"^[a-z0-9][a-z0-9-]*$")


def _records(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _ago(moment: datetime) -> str:
    seconds = int((datetime.now(UTC) - moment).total_seconds())
    for size, unit in ((86400, "day"), (3600, "hour"), (60, "minute")):
        if seconds >= size:
            n = seconds // size
            return f"{n} {unit}{'s' if n != 1 else ''} ago"
    return "just now"


def restart(service: str, environment: str, mode: str, path: Path) -> int:
    seconds = float(os.environ.get("RESTART_SECONDS") or 1.0)
    started = time.monotonic()
    pods = 3 if environment == "prod" else 2
    verb = "draining" if mode == "graceful" else "killing"
    print(f"Restarting {service} on {environment} ({mode}): {verb} {pods} pods ...")
    if os.environ.get("DEPLOY_KEY"):
        print("(authenticated with a deploy key)")
    reason = os.environ.get("RESTART_REASON")
    if reason:
        print(f"reason: {reason}")
    for i in range(1, pods + 1):
        time.sleep(seconds / pods)
        print(f"pod {service}-7f9c-{i} restarted")
    path.parent.mkdir(parents=True, exist_ok=True)
    record = {"service": service, "environment": environment, "mode": mode,
              "at": datetime.now(UTC).isoformat(timespec="seconds"),
              "by": os.environ.get("OPSBOT_REQUESTER", "")}
    with path.open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
    print(f"{service} on {environment} restarted in {time.monotonic() - started:.1f}s")
    return 0


def last(service: str, environment: str | None, path: Path) -> int:
    found = [r for r in _records(path) if r.get("service") == service
             and (environment is None or r.get("environment") == environment)]
    if not found:
        where = f" on {environment}" if environment else ""
        print(f"{service} has not been restarted{where} (no record in {path}).")
        return 0
    envs = [environment] if environment else ENVIRONMENTS
    for env in envs:
        mine = [r for r in found if r.get("environment") == env]
        if not mine:
            continue
        r = mine[-1]
        at = datetime.fromisoformat(r["at"])
        by = f", by {r['by']}" if r.get("by") else ""
        print(f"{service} was last restarted on {env} at {at:%Y-%m-%d %H:%M} UTC "
              f"({r.get('mode', '?')}{by}), {_ago(at)}.")
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="restart.py", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("restart")
    r.add_argument("service")
    r.add_argument("environment")
    r.add_argument("--mode", default="graceful")
    q = sub.add_parser("last")
    q.add_argument("service")
    q.add_argument("environment", nargs="?")
    args = parser.parse_args(argv)
    if not SERVICE.match(args.service):
        print(f"restart.py: {args.service!r} is not a service name", file=sys.stderr)
        return 2
    if args.environment is not None and args.environment not in ENVIRONMENTS:
        print(f"restart.py: {args.environment!r} is not one of {', '.join(ENVIRONMENTS)}",
              file=sys.stderr)
        return 2
    if args.command == "restart" and args.mode not in ("graceful", "hard"):
        print(f"restart.py: --mode {args.mode!r}: use graceful or hard", file=sys.stderr)
        return 2
    path = Path(os.environ.get("RESTARTS_FILE") or "restarts.jsonl")
    if args.command == "restart":
        return restart(args.service, args.environment, args.mode, path)
    return last(args.service, args.environment, path)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
