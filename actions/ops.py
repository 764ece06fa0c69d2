"""The action every ops intent is routed to."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions.requests import BACKEND_OF_INTENT, OpsRequest

logger = logging.getLogger(__name__)


class ActionOpsRequest(Action):
    """Answers an ops request from its backend, or says honestly that none is connected."""

    def name(self) -> str:
        return "action_ops_request"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        request = OpsRequest.from_tracker(tracker)
        try:
            backend = BACKEND_OF_INTENT.get(request.intent)
            if backend is None:
                dispatcher.utter_message(response="utter_default")
                return []
            dispatcher.utter_message(
                response="utter_not_connected", request=request.describe(), backend=backend
            )
        except Exception:  # noqa: BLE001 - the user gets a reference, the log the trace
            reference = uuid.uuid4().hex[:8]
            logger.exception("action_ops_request failed (reference %s)", reference)
            dispatcher.utter_message(response="utter_internal_error", reference=reference)
        return []
