"""The check a model passes before it answers: it loads, holds NLU and dialogue, and
classifies a few probe texts into intents of its own domain.

Shared by the hot reload (``connectors.reload``) and the replicas that take a model
another one published (``connectors.model_share``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from rasa.core.agent import Agent

__all__ = ["PROBES", "ModelRefused", "load_checked"]

PROBES = ("hi", "help", "deploy payments 2.4.1 to prod", "what's red in CI?")



class ModelRefused(Exception):
    """The model cannot replace the running one; the message says why."""


async def load_checked(path: Path, running: Agent) -> Agent:
    """The model at ``path`` as an agent sharing ``running``'s stores, checked; or ModelRefused."""
    agent = Agent(generator=running.nlg, tracker_store=running.tracker_store,
                  lock_store=running.lock_store, action_endpoint=running.action_endpoint,
                  http_interpreter=running.http_interpreter)
    try:
        await asyncio.to_thread(agent.load_model, str(path))
    except Exception as exc:  # noqa: BLE001 - whatever breaks loading, the old model stays
        raise ModelRefused(f"{path.name} does not load: {type(exc).__name__}: {exc}") from None
    if not agent.is_ready() or agent.processor is None:
        raise ModelRefused(f"{path.name} loaded without a usable model.")
    intents = set(agent.domain.intents) if agent.domain else set()
    if not intents:
        raise ModelRefused(f"{path.name} has no intents in its domain.")
    for text in PROBES:
        try:
            parsed = await agent.parse_message(text)
        except Exception as exc:  # noqa: BLE001
            raise ModelRefused(f"{path.name} fails to parse {text!r}: {exc}") from None
        intent = (parsed.get("intent") or {}).get("name")
        if intent is None or (intent not in intents and intent != "nlu_fallback"):
            raise ModelRefused(f"{path.name} classifies {text!r} as {intent!r}, not an intent "
                               "of its domain.")
    return agent
