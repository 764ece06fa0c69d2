"""The actions the dialogue calls: ops requests, yes/no on pending operations, notifications.

Thin on purpose: each reads the turn, hands it to a handler (``actions.flows``) or to
the confirmation layer, and utters what they produced. An unexpected error gives the
user a short reference that is also in the log, never a trace.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from rasa_sdk import Action, FormValidationAction, Tracker
from rasa_sdk.events import ActionExecuted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from actions import _runtime, confirmations, intents
from actions.errors import OpsbotError, Refused
from actions.flows import jira as jira_flows
from actions.flows import open_world
from actions.flows import teach as teach_flows
from actions.flows.jira import MAX_SUMMARY, summary_from
from actions.operations import flow as operation_flow
from actions.registry import kind_of
from actions.requests import ENTITY_NAMES, OpsRequest
from actions.turn import OPERATIONS_KEY, Turn, Who

logger = logging.getLogger(__name__)

# The action server imports this module to find its actions: the one place that installs
# every intent's declaration.
intents.install()



def _is_read(intent: str) -> bool:
    """Reads are answered at once, but shown only once the policy allowed them and audited."""
    kind = kind_of(intent)
    return kind is not None and kind.read
# Slots the handlers read (the create_issue form's answers, entities kept across turns).
_TURN_SLOTS = ("issue_summary", "issue_request_text", "project", "priority")
# How long a question opsbot asked ("Which environment?") waits for a typed answer.
_PENDING_TTL = timedelta(minutes=10)


def _entity(tracker: Tracker, name: str) -> str | None:
    for entity in (tracker.latest_message or {}).get("entities") or []:
        if entity.get("entity") == name and entity.get("value"):
            return str(entity["value"])
    return None


def _stranger_refused(turn: Turn, decides: bool = False) -> bool:
    """Default deny: someone policy.yml does not name gets help only, unless a rule says so.

    ``decides``: a yes or no to a pending operation, which a stranger can only have if
    some rule lets strangers ask for something (the guard binds it to its requester).
    """
    policy, who = turn.runtime.policy, turn.who
    if policy.knows(who.person) or policy.strangers_may(turn.request.intent):
        return False
    if decides and policy.strangers_may_ask():
        return False
    reason = policy.stranger_reason(who.person)
    confirmations.record_refusal(turn, turn.request.intent, {}, "read", reason)
    turn.say(f"{reason} Say 'help' to see what I do.")
    return True


async def _run_turn(
    dispatcher: CollectingDispatcher, tracker: Tracker, name: str,
    body: Callable[[Turn], Awaitable[None]], request: OpsRequest | None = None,
    gated: bool = True, decides: bool = False,
) -> list[dict[str, Any]]:
    """Build the turn, run ``body``, utter its replies; errors become chat messages.

    ``gated``: a stranger's turn stops at the door (all but proactive notifications);
    ``decides``: the turn confirms or cancels (see ``_stranger_refused``).
    """
    turn: Turn | None = None
    try:
        rt = _runtime.runtime()
        turn = Turn(request or OpsRequest.from_tracker(tracker), Who.from_tracker(tracker, rt), rt,
                    slots={name: tracker.get_slot(name) for name in _TURN_SLOTS},
                    metadata=dict((tracker.latest_message or {}).get("metadata") or {}))
        from actions._watcher import WATCHER

        WATCHER.ensure_started()
        confirmations.deliver_completions(turn)
        if not (gated and _stranger_refused(turn, decides)):
            answered = len(turn.replies)
            try:
                await body(turn)
            except Refused as exc:  # a read the policy refuses: its answer is not shown
                del turn.replies[answered:]
                turn.say(f"I can't show you that: {exc} Nothing was shown.")
            except Exception:
                if _is_read(turn.request.intent):
                    # A read that could not be checked and audited is not shown either.
                    del turn.replies[answered:]
                raise
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
    extra: dict[str, Any] = {}
    if turn.operations:
        extra[OPERATIONS_KEY] = _current_states(turn)
    for reply in turn.replies:
        dispatcher.utter_message(**reply, **extra)
    return turn.events


def _current_states(turn: Turn) -> list[dict[str, str | bool]]:
    """The operations this turn concerned, in the state they are in now, and whether
    this turn moved them (``changed``)."""
    states: list[dict[str, str | bool]] = []
    for operation_id, state in turn.operations.items():
        try:
            current = turn.runtime.store.get(operation_id)
        except OpsbotError:
            current = None
        states.append({"id": operation_id, "state": current.state if current else state,
                       "changed": operation_id in turn.changed})
    return states


def _with_pending_answer(tracker: Tracker, request: OpsRequest) -> OpsRequest | None:
    """Merge a typed answer ("prod") into the request opsbot asked about, if there is one."""
    pending = tracker.get_slot("pending_request")
    kind = kind_of(request.intent)
    # Low confidence, or an intent the NLU often takes a bare word for ("prod", "2.4.1").
    may_answer = request.intent == "nlu_fallback" or (kind is not None and kind.answers)
    if not isinstance(pending, dict) or not may_answer:
        return None
    try:
        asked_at = datetime.fromisoformat(str(pending.get("at")))
    except ValueError:
        return None
    if datetime.now(UTC) - asked_at > _PENDING_TTL:
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
    kept = {k: v for k, v in request.entities.items() if k != asked}
    merged = {**entities, **kept, asked: answer}
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
        kind = kind_of(request.intent)
        if kind is not None and kind.entities:
            request = OpsRequest.from_tracker(tracker, kind.entities)
        answered = _with_pending_answer(tracker, request)
        if answered is not None:
            request = answered
            kind = kind_of(request.intent)
        message = dict(tracker.latest_message or {})
        if kind is not None and kind.handler is not None:
            handler = kind.handler
            if answered is not None:
                return await _run_turn(dispatcher, tracker, self.name(), handler, request)

            async def checked(turn: Turn) -> None:
                # A name opsbot never learnt is said, not dropped ("Which service?").
                if not await open_world.unknown_name(turn, kind, message):
                    await handler(turn)

            return await _run_turn(dispatcher, tracker, self.name(), checked, request)
        if open_world.is_out_of_scope(message):

            async def refuse(turn: Turn) -> None:
                open_world.cannot_do(turn)

            return await _run_turn(dispatcher, tracker, self.name(), refuse, request)
        if request.intent == "nlu_fallback":

            async def ask(turn: Turn) -> None:
                teach_flows.offer_meanings(turn, message)

            return await _run_turn(dispatcher, tracker, self.name(), ask, request)
        dispatcher.utter_message(response="utter_default")
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

        # The guard binds a decision to the operation's requester and roles.
        return await _run_turn(dispatcher, tracker, self.name(), body, decides=True)


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

        # The guard binds a decision to the operation's requester and roles.
        return await _run_turn(dispatcher, tracker, self.name(), body, decides=True)


class ActionChooseMeaning(Action):
    """A "did you mean" button: records the phrasing and carries on as if it had been said."""

    def name(self) -> str:
        return "action_choose_meaning"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        meaning = _entity(tracker, "meaning")
        pending = tracker.get_slot(teach_flows.PENDING_SLOT)
        chosen: dict[str, Any] = {}

        async def record(turn: Turn) -> None:
            chosen.update(teach_flows.chosen(turn, meaning, pending) or {})

        events = await _run_turn(dispatcher, tracker, self.name(), record,
                                 OpsRequest("choose_meaning", "", 1.0, {}))
        if not chosen:
            return events
        intent = str(chosen["intent"])
        kind = kind_of(intent)
        if kind is not None and kind.handler is not None:
            names = set(ENTITY_NAMES) | set(kind.entities)
            request = OpsRequest(intent=intent, text=str(chosen["text"]), confidence=1.0,
                                 entities={k: v for k, v in chosen["entities"].items()
                                           if k in names})
            return [*events, *await _run_turn(dispatcher, tracker, self.name(), kind.handler,
                                              request)]
        dispatcher.utter_message(response=f"utter_{intent}")
        return events


class ActionTeach(Action):
    """ "When I say 'ship it' I mean deploy": a candidate phrasing (policy decides who may)."""

    def name(self) -> str:
        return "action_teach"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        return await _run_turn(dispatcher, tracker, self.name(), teach_flows.teach)


class ActionReviewTaught(Action):
    """A reviewer in the chat lists taught phrasings, or accepts / rejects one (a button)."""

    def name(self) -> str:
        return "action_review_taught"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        taught_id, decision = _entity(tracker, "taught_id"), _entity(tracker, "decision")

        async def body(turn: Turn) -> None:
            await teach_flows.review(turn, taught_id, decision)

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
                                 OpsRequest("notify", "", 1.0, {}), gated=False)
        # Run through Rasa's /execute endpoint, outside a user turn: end the turn with a
        # listen, so the rules see the next user message as they would without us.
        return [*events, ActionExecuted("action_listen")]


class ValidateCreateIssueForm(FormValidationAction):
    """Fills create_issue_form's summary: from the request itself, or from the answer."""

    def name(self) -> str:
        return "validate_create_issue_form"

    async def extract_issue_summary(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        message = tracker.latest_message or {}
        intent = (message.get("intent") or {}).get("name")
        text = str(message.get("text") or "").strip()
        if tracker.get_slot("requested_slot") == "issue_summary":
            # A "no" / "cancel" is not a summary: the form rejects it and the rules cancel.
            if intent == "deny" or not text or text.startswith("/"):
                return {}
            return {"issue_summary": " ".join(text.split())}
        if intent == "create_issue" and not text.startswith("/"):
            return {"issue_summary": summary_from(text), "issue_request_text": text}
        if intent == "create_issue":
            # A signed button ("Open a ticket" on an alert) carries the summary it proposes.
            given = " ".join(str(_entity(tracker, "summary") or "").split())
            if given:
                return {"issue_summary": given[:MAX_SUMMARY], "issue_request_text": given}
        return {}

    def validate_issue_summary(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
        domain: dict[str, Any],
    ) -> dict[str, Any]:
        summary = str(value or "").strip()
        if not summary:
            return {"issue_summary": None}
        if len(summary) > MAX_SUMMARY:
            dispatcher.utter_message(
                text=f"That is {len(summary)} characters; a Jira summary holds {MAX_SUMMARY}. "
                     "Give a shorter one (details can go in a comment later).")
            return {"issue_summary": None}
        return {"issue_summary": summary}


class ActionSubmitIssue(Action):
    """The form is complete: propose the new issue (Confirm / Cancel), then forget the answers."""

    def name(self) -> str:
        return "action_submit_issue"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        original = str(tracker.get_slot("issue_request_text") or "")
        entities = {k: str(v) for k in ("project", "priority")
                    if (v := tracker.get_slot(k))}
        request = OpsRequest("create_issue", original or str(
            (tracker.latest_message or {}).get("text") or ""), 1.0, entities)
        events = await _run_turn(dispatcher, tracker, self.name(), jira_flows.create_issue, request)
        return [*events, SlotSet("issue_summary", None), SlotSet("issue_request_text", None),
                SlotSet("project", None), SlotSet("priority", None)]


class ValidateOperationForm(FormValidationAction):
    """operation_form: the next message is the answer to the question a team operation asked."""

    def name(self) -> str:
        return "validate_operation_form"

    async def extract_operation_answer(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> dict[str, Any]:
        if tracker.get_slot("requested_slot") != operation_flow.ANSWER_SLOT:
            return {}
        message = tracker.latest_message or {}
        intent = (message.get("intent") or {}).get("name")
        text = str(message.get("text") or "").strip()
        # A "no" / "cancel" is not an answer: the form rejects it and the rules cancel.
        if intent == "deny" or not text or text.startswith("/"):
            return {}
        return {operation_flow.ANSWER_SLOT: text}

    def validate_operation_answer(
        self, value: Any, dispatcher: CollectingDispatcher, tracker: Tracker,
        domain: dict[str, Any],
    ) -> dict[str, Any]:
        if value is None or not str(value).strip():
            return {operation_flow.ANSWER_SLOT: None}  # cleared (the question is being asked)
        request = tracker.get_slot(operation_flow.REQUEST_SLOT)
        if not isinstance(request, dict):
            return {operation_flow.ANSWER_SLOT: "complete"}  # the submit says what is wrong
        updated, next_or_problem = operation_flow.answer(request, str(value or ""))
        if updated is None:  # not acceptable: ask the same again, saying why
            return {operation_flow.ANSWER_SLOT: None,
                    operation_flow.REQUEST_SLOT: {**request, "problem": next_or_problem}}
        if next_or_problem is None:
            return {operation_flow.ANSWER_SLOT: "complete", operation_flow.REQUEST_SLOT: updated}
        return {operation_flow.ANSWER_SLOT: None, operation_flow.REQUEST_SLOT: updated}


class ActionAskOperationAnswer(Action):
    """operation_form's question: the value a team operation still needs, with buttons."""

    def name(self) -> str:
        return "action_ask_operation_answer"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        request = tracker.get_slot(operation_flow.REQUEST_SLOT)
        if not isinstance(request, dict):
            dispatcher.utter_message(text="I lost track of that request; ask again. Nothing ran.")
            return []
        text, buttons = operation_flow.ask_message(request)
        dispatcher.utter_message(text=text, buttons=buttons or None)
        return []


class ActionSubmitOperation(Action):
    """operation_form is complete: carry on with the request, now with the answers."""

    def name(self) -> str:
        return "action_submit_operation"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        request = tracker.get_slot(operation_flow.REQUEST_SLOT)
        cleared = [SlotSet(operation_flow.ANSWER_SLOT, None)]
        if not isinstance(request, dict):
            dispatcher.utter_message(text="I lost track of that request; ask again. Nothing ran.")
            return cleared
        intent = str(request.get("intent"))
        values = {str(k): str(v) for k, v in (request.get("values") or {}).items()}
        ops_request = OpsRequest(intent, str(request.get("text") or ""), 1.0, values)

        async def body(turn: Turn) -> None:
            spec = operation_flow.operations().get(intent)
            if spec is None:
                turn.say(f"The operation {intent} is no longer defined; nothing ran.")
                return
            await operation_flow.handle(turn, spec, from_text=False)

        return [*cleared, *await _run_turn(dispatcher, tracker, self.name(), body, ops_request)]


class ActionHelp(Action):
    """What opsbot does: the built-in examples, then the team's own operations."""

    def name(self) -> str:
        return "action_help"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        lines = []
        for spec in sorted(operation_flow.operations().values(), key=lambda s: s.name):
            example = (re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", spec.examples[0])
                       if spec.examples else "")
            risk = "" if spec.risk == "read" else f", {spec.risk}"
            lines.append(f"• {spec.description.rstrip('.')}: \"{example}\"{risk}")
        dispatcher.utter_message(response="utter_help")
        if lines:
            dispatcher.utter_message(text="Your team's operations:\n" + "\n".join(lines))
        return []
