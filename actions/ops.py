"""The actions the dialogue calls: ops requests, yes/no on pending operations, notifications.

Thin on purpose: each reads the turn, hands it to a handler (``jenkins_flows``) or to
the confirmation layer, and utters what they produced. An unexpected error gives the
user a short reference that is also in the log, never a trace.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted
from rasa_sdk.executor import CollectingDispatcher

from actions import _runtime, confirmations
from actions.errors import OpsbotError
from actions.jenkins_flows import HANDLERS
from actions.requests import BACKEND_OF_INTENT, OpsRequest
from actions.turn import Turn, Who

logger = logging.getLogger(__name__)

# How long a question opsbot asked ("Which environment?") waits for a typed answer.
_PENDING_TTL = timedelta(minutes=10)
# Intents whose text may be a bare answer ("prod", "2.4.1") to such a question.
_ANSWER_INTENTS = frozenset({"nlu_fallback", "deploy", "rollback", "deploy_history",
                             "run_build", "stop_build", "build_status", "build_failure"})


def _entity(tracker: Tracker, name: str) -> str | None:
    for entity in (tracker.latest_message or {}).get("entities") or []:
        if entity.get("entity") == name and entity.get("value"):
            return str(entity["value"])
    return None


async def _run_turn(
    dispatcher: CollectingDispatcher, tracker: Tracker, name: str,
    body: Callable[[Turn], Awaitable[None]], request: OpsRequest | None = None,
) -> list[dict[str, Any]]:
    """Build the turn, run ``body``, utter its replies; errors become chat messages."""
    turn: Turn | None = None
    try:
        rt = _runtime.runtime()
        turn = Turn(request or OpsRequest.from_tracker(tracker), Who.from_tracker(tracker, rt), rt)
        from actions._watcher import WATCHER

        WATCHER.ensure_started()
        confirmations.deliver_completions(turn)
        await body(turn)
    except OpsbotError as exc:
        logger.warning("%s: %s", name, exc)
        if turn is None:
            dispatcher.utter_message(text=f"{exc} Nothing ran.")
        else:
            turn.say(f"{exc} Nothing was changed.")
    except Exception:  # noqa: BLE001 - the user gets a reference, the log the trace
        reference = uuid.uuid4().hex[:8]
        logger.exception("%s failed (reference %s)", name, reference)
        dispatcher.utter_message(response="utter_internal_error", reference=reference)
    if turn is None:
        return []
    for reply in turn.replies:
        dispatcher.utter_message(**reply)
    return turn.events


def _with_pending_answer(tracker: Tracker, request: OpsRequest) -> OpsRequest | None:
    """Merge a typed answer ("prod") into the request opsbot asked about, if there is one."""
    pending = tracker.get_slot("pending_request")
    if not isinstance(pending, dict) or request.intent not in _ANSWER_INTENTS:
        return None
    try:
        asked_at = datetime.fromisoformat(str(pending.get("at")))
    except ValueError:
        return None
    if datetime.now(timezone.utc) - asked_at > _PENDING_TTL:
        return None
    asked = str(pending.get("asked") or "")
    entities = {str(k): str(v) for k, v in (pending.get("entities") or {}).items()}
    answer = request.entities.get(asked)
    if answer is None and asked in ("service", "job"):
        answer = request.entities.get("service") or request.entities.get("job")
    if answer is None:
        text = request.text.strip()
        # A bare word typed in reply to "Which service/job?" is the answer itself.
        if asked in ("service", "job") and text and " " not in text and not text.startswith("/"):
            answer = text
    if answer is None:
        return None
    same_target = all(request.entities.get(k) in (None, entities.get(k), answer)
                      for k in ("service", "job") if k != asked)
    if not same_target:
        return None
    merged = {**entities, **{k: v for k, v in request.entities.items() if k != asked}, asked: answer}
    return OpsRequest(intent=str(pending.get("intent")), text=request.text,
                      confidence=request.confidence, entities=merged)


class ActionOpsRequest(Action):
    """Routes an ops request (or an answer to opsbot's question) to its handler."""

    def name(self) -> str:
        return "action_ops_request"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        request = OpsRequest.from_tracker(tracker)
        answered = _with_pending_answer(tracker, request)
        if answered is not None:
            request = answered
        handler = HANDLERS.get(request.intent)
        if handler is not None:
            return await _run_turn(dispatcher, tracker, self.name(), handler, request)
        if request.intent == "nlu_fallback":
            dispatcher.utter_message(response="utter_default")
            return []
        backend = BACKEND_OF_INTENT.get(request.intent)
        if backend is None:
            dispatcher.utter_message(response="utter_default")
            return []
        dispatcher.utter_message(
            response="utter_not_connected", request=request.describe(), backend=backend
        )
        return []


class ActionConfirm(Action):
    """A yes: confirms (or approves) the pending operation the button or the user means."""

    def name(self) -> str:
        return "action_confirm"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        operation_id, digest = _entity(tracker, "operation_id"), _entity(tracker, "digest")

        async def body(turn: Turn) -> None:
            await confirmations.confirm(turn, operation_id, digest)

        return await _run_turn(dispatcher, tracker, self.name(), body)


class ActionCancel(Action):
    """A no: cancels (or, for an approver, rejects) a pending operation."""

    def name(self) -> str:
        return "action_cancel"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        operation_id = _entity(tracker, "operation_id")

        async def body(turn: Turn) -> None:
            await confirmations.cancel(turn, operation_id)

        return await _run_turn(dispatcher, tracker, self.name(), body)


class ActionNotifyOperations(Action):
    """Run by the watcher through Rasa's HTTP API: announces finished operations."""

    def name(self) -> str:
        return "action_notify_operations"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        async def body(turn: Turn) -> None:
            return None  # _run_turn delivers the completions before every body

        events = await _run_turn(dispatcher, tracker, self.name(), body,
                                 OpsRequest("notify", "", 1.0, {}))
        # Run through Rasa's /execute endpoint, outside a user turn: end the turn with a
        # listen, so the rules see the next user message as they would without us.
        return [*events, ActionExecuted("action_listen")]
