"""Hot reload: a running Rasa server takes a new model without a restart or a lost message.

Rasa's own ``PUT /model`` loads the model on the server's event loop (every
conversation waits meanwhile) and swaps it in unchecked. This channel adds
``POST /webhooks/opsbot/reload`` (``{"model": "<path to .tar.gz>"}``, default the newest
model in ``OPSBOT_MODELS``), which:

1. loads the model in a worker thread, with the running agent's tracker store, lock
   store, action endpoint and response generator, while the old model keeps answering;
2. checks it: it must load, hold NLU and dialogue, and classify a few probe texts into
   intents of its domain;
3. only then swaps it in. A message already being handled finishes with the old model;
   the next one gets the new. A model that fails to load or to pass the check is
   refused (HTTP 422, with the reason) and the old one stays.

``opsbot train --reload`` and an accepted review call it. Only models inside
``OPSBOT_MODELS`` are loaded (a model archive is code, in effect), and the request must
carry ``OPSBOT_API_TOKEN`` as ``?token=`` (as Rasa's API takes it) or as
``Authorization: Bearer``; without that variable the endpoint refuses every request.
``GET /webhooks/opsbot/health`` says that an opsbot is running, and nothing else.

With replicas (a store on a database server), a model reloaded here is also published
to the others, which take it through the same check (``connectors.model_share``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from actions.guard.identity import api_token_of, same_secret
from connectors._model_check import ModelRefused, load_checked

__all__ = ["ModelRefused", "ModelReload", "load_checked"]

logger = logging.getLogger(__name__)

def _models_dir() -> Path:
    return Path(os.environ.get("OPSBOT_MODELS") or "models").expanduser().resolve()


def _choose(requested: str | None) -> Path:
    models = _models_dir()
    if requested:
        path = Path(requested).expanduser().resolve()
        if models not in path.parents:
            raise ModelRefused(f"{path} is not in the models directory {models} (OPSBOT_MODELS).")
    else:
        found = sorted(models.glob("*.tar.gz"), key=lambda p: p.stat().st_mtime)
        if not found:
            raise ModelRefused(f"There is no model in {models}.")
        path = found[-1]
    if not path.is_file():
        raise ModelRefused(f"There is no model file {path}.")
    return path


class ModelReload(InputChannel):
    """``connectors.reload.ModelReload`` in credentials.yml (``opsbot run`` adds it)."""

    @classmethod
    def name(cls) -> str:
        return "opsbot"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> ModelReload:
        return cls()

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._follower: asyncio.Task[None] | None = None

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        hook = Blueprint("opsbot_reload", __name__)

        @hook.route("/health", methods=["GET"])
        async def health(_request: Request) -> HTTPResponse:
            return response.json({"status": "ok", "opsbot": True})

        @hook.route("/reload", methods=["POST"])
        async def reload(request: Request) -> HTTPResponse:
            token = os.environ.get("OPSBOT_API_TOKEN") or ""
            if not token:
                return response.json({"error": "reloading is off: OPSBOT_API_TOKEN is not set"},
                                     status=403)
            if not same_secret(api_token_of(request), token):
                return response.json({"error": "the API token is required (?token=)"}, status=401)
            try:
                body = request.json if request.body else {}
            except Exception:  # noqa: BLE001 - Sanic's own JSON error
                body = None
            if not isinstance(body, dict) or not isinstance(body.get("model"), (str, type(None))):
                return response.json({"error": 'the body must be {"model": "<path>"} or empty'},
                                     status=400)
            async with self._lock:  # one reload at a time
                running = request.app.ctx.agent
                try:
                    path = _choose(body.get("model"))
                    if running is not None and running.processor is not None and \
                            Path(str(running.processor.model_filename or "")).name == path.name:
                        return response.json({"model": path.name, "reloaded": False,
                                              "reason": "that model is already running",
                                              "shared": await _share(path)})
                    agent = await load_checked(path, running)
                except ModelRefused as exc:
                    logger.warning("model refused: %s", exc)
                    return response.json({"error": str(exc), "reloaded": False}, status=422)
                request.app.ctx.agent = agent
                # Published before the lock is let go: this replica's follower must not
                # see the older published model as newer and swap it back.
                shared = await _share(path)
            logger.info("now answering with model %s", path.name)
            return response.json({"model": path.name, "reloaded": True, "shared": shared})

        @hook.listener("after_server_start")
        async def follow_shared(app: Any, _loop: Any) -> None:
            from connectors import model_share

            if model_share.enabled():
                self._follower = asyncio.create_task(
                    model_share.follow(app, self._lock, _models_dir()))

        return hook


async def _share(path: Path) -> bool:
    """Publish a model this replica checked and runs, for the others (connectors.model_share)."""
    from actions.leases import process_owner
    from connectors import model_share

    if not model_share.enabled():
        return False
    try:
        await asyncio.to_thread(model_share.publish, path, process_owner())
    except Exception as exc:  # noqa: BLE001 - this replica has it; the others keep theirs
        logger.error("could not publish model %s for the other replicas: %s", path.name, exc)
        return False
    return True
