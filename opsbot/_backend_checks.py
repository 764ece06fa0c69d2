"""The backends' health, asked where people look: at start-up (``opsbot run``, ``opsbot
demo``) and in ``/ready``.

A malformed setting stops start-up with the variable and the fix (a ConfigError); a
backend that does not answer does not: opsbot still serves everything else, and a
request that needs it says so. ``/ready`` reports each backend beside the checks that
decide readiness, but a backend never makes a replica unready: every replica shares the
same Jenkins, so taking one out of the load balancer would not help.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

from actions.backends import KINDS, Backend, Backends
from actions.errors import BackendError

__all__ = ["ping_all", "startup_lines"]


async def _ping(backend: Backend, seconds: float) -> tuple[bool, str]:
    try:
        return True, await asyncio.wait_for(backend.ping(), seconds)
    except TimeoutError:
        return False, f"no answer within {seconds:g}s"
    except BackendError as exc:
        return False, str(exc)


async def ping_all(backends: Backends, seconds: float) -> dict[str, tuple[bool, str]]:
    """Each backend's answer to its health check, by name: (reached, what it said); all at
    once, each within ``seconds``."""
    connected = list(backends.items())
    answers = await asyncio.gather(*(_ping(backend, seconds) for _, backend in connected))
    return {name: answer for (name, _), answer in zip(connected, answers, strict=True)}


def startup_lines(env: Mapping[str, str], seconds: float = 10.0) -> list[str]:
    """What start-up prints about each backend; ConfigError for a malformed setting."""
    backends = Backends.from_env(KINDS, env)
    answers = asyncio.run(ping_all(backends, seconds))
    lines = []
    for kind in KINDS:
        if kind.name not in answers:
            lines.append(f"  {kind.product:<11} not configured ({kind.setup} to use it)")
            continue
        reached, said = answers[kind.name]
        lines.append(f"  {kind.product:<11} " + (
            f"ok: {said}" if reached else f"NOT REACHED: {said} Requests that need it will "
            "say so."))
    return lines
