"""Previews, confirmations, approvals and exactly-once execution (docs/safety.md).

A change is never run by the message that asks for it. ``propose`` checks the policy,
records a pending operation (bound to the requester, the exact parameters and an
expiry) and shows the preview with Confirm and Cancel buttons whose payloads carry
the operation id and the parameters' digest. ``confirm`` runs it only if the same
person confirms the same parameters in time; a second approver, when the policy asks
for one, must be a different person with the right role. The store's compare-and-set
transitions and its unique execution key make the backend call happen exactly once,
whatever is clicked twice, redelivered or raced between replicas.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from actions._runtime import Runtime
from actions.errors import (
    BackendAuthError,
    BackendError,
    BackendUnavailable,
    OutcomeUnknown,
    Refused,
)
from actions.guard import (
    CANCELLED,
    ERROR,
    EXECUTING,
    EXPIRED,
    FAILED,
    PENDING_APPROVAL,
    PENDING_CONFIRMATION,
    REFUSED,
    SUCCEEDED,
    SUPERSEDED,
    UNKNOWN,
    Decision,
    Operation,
    StoreError,
)
from actions.metrics import confirmation_refused
from actions.registry import IntentKind, Outcome, kind_of
from actions.turn import Turn

__all__ = ["cancel", "check_read", "clearance", "confirm", "decide", "deliver_completions",
           "permitted", "propose", "record_read", "record_refusal"]

logger = logging.getLogger(__name__)

_OPEN = {PENDING_CONFIRMATION, PENDING_APPROVAL}


def _now() -> datetime:
    return datetime.now(UTC)


def _clock(moment: datetime) -> str:
    return moment.astimezone().strftime("%H:%M:%S")


def _span(seconds: float) -> str:
    """A confirmation's lifetime as people say it: "5 minutes", "30 seconds", "1 hour".

    Whole minutes (or hours) only when it is one: a 30s policy is not "1 minute".
    """
    total = max(1, round(seconds))
    if total % 3600 == 0:
        count, unit = total // 3600, "hour"
    elif total % 60 == 0:
        count, unit = total // 60, "minute"
    else:
        count, unit = total, "second"
    return f"{count} {unit}{'s' if count != 1 else ''}"


def _create(turn: Turn, intent: str, parameters: Mapping[str, str], risk: str,
            approval_roles: tuple[str, ...] = ()) -> Operation:
    rt, who, request = turn.runtime, turn.who, turn.request
    return rt.store.create(
        intent=intent, risk=risk, requester=who.person, sender_id=who.sender_id,
        channel=who.channel, text=request.text, confidence=request.confidence,
        parameters=dict(parameters), ttl_seconds=rt.policy.confirmation_ttl,
        approval_roles=approval_roles, reply_to=who.reply_to(),
    )


def record_read(turn: Turn, parameters: Mapping[str, str], *, result: str = "answered",
                detail: Mapping[str, object] | None = None) -> None:
    """Check and audit a read request (reads need no confirmation).

    The policy decides on the parameters the answer resolved (the job, the service):
    when it refuses, the refusal is audited and ``Refused`` raised, and ``_run_turn``
    drops the answer the handler prepared, so nothing of it reaches the chat.
    """
    clean = {k: v for k, v in parameters.items() if v}
    decision = check_read(turn, clean)
    operation = _create(turn, turn.request.intent, clean, decision.risk)
    turn.runtime.store.transition(operation.id, {PENDING_CONFIRMATION}, SUCCEEDED,
                                  actor=turn.who.person, channel=turn.who.channel,
                                  event="answered", detail=detail, result=result,
                                  finished_at=_now())


def check_read(turn: Turn, parameters: Mapping[str, str]) -> Decision:
    """The policy's decision on a read, before it looks anything up; a refusal is audited
    and raised as ``Refused`` (its reason is what the person is told)."""
    clean = {k: v for k, v in parameters.items() if v}
    decision = decide(turn, turn.request.intent, clean)
    if not decision.allowed:
        reason = decision.reason or "policy.yml does not allow it."
        record_refusal(turn, turn.request.intent, clean, decision.risk, reason)
        raise Refused(reason)
    return decision


def record_refusal(turn: Turn, intent: str, parameters: Mapping[str, str], risk: str,
                   reason: str) -> None:
    operation = _create(turn, intent, parameters, risk)
    turn.runtime.store.transition(operation.id, {PENDING_CONFIRMATION}, REFUSED,
                                  actor="policy", channel=turn.who.channel, event="refused",
                                  detail={"reason": reason}, result="refused",
                                  result_detail=reason, finished_at=_now())


async def propose(turn: Turn, intent: str, parameters: Mapping[str, str],
                  summary: str) -> Operation | None:
    """Check the policy, record the pending operation and show its preview (None: refused)."""
    rt, who = turn.runtime, turn.who
    decision = decide(turn, intent, parameters)
    reason = decision.reason or "policy.yml does not allow it."
    if decision.allowed and decision.needs_approval and who.channel == "rest":
        # Its Approve button would be shown in this REST conversation only, and an approval
        # through the REST token proves no second person: it could never run.
        decision = dataclasses.replace(decision, allowed=False)
        reason = (f"It needs a second person with the {' or '.join(decision.approval_roles)} "
                  "role to approve it, and approvals are given in a chat (Telegram, Teams or "
                  "Slack), where opsbot knows who presses Approve; the REST channel cannot show "
                  "them the button. Ask for it in your team's chat.")
    if not decision.allowed:
        record_refusal(turn, intent, parameters, decision.risk, reason)
        turn.say(f"I can't do that for you: {reason} Nothing ran.")
        return None
    for older in rt.store.open_for(who.sender_id):
        moved = rt.store.transition(older.id, _OPEN, SUPERSEDED, actor=who.person,
                                    channel=who.channel, event="superseded")
        turn.note(moved or older, moved=moved is not None)
    operation = _create(turn, intent, parameters, decision.risk, tuple(decision.approval_roles))
    turn.note(operation, moved=True)
    approval = ""
    if operation.approval_roles:
        holders = _holders(turn, operation.approval_roles, exclude=who.person)
        approval = (f" After you confirm, a second person with the "
                    f"{' or '.join(operation.approval_roles)} role must approve"
                    f"{' (' + holders + ')' if holders else ''}.")
    turn.say(
        f"{summary}{approval}\nConfirm within {_span(rt.policy.confirmation_ttl)} "
        f"(until {_clock(operation.expires_at)}); only {who.person} can confirm.",
        _decision_buttons(turn, operation, "Confirm"),
    )
    return operation


def _decision_buttons(turn: Turn, operation: Operation, verb: str) -> list[dict[str, str]]:
    """Confirm (or Approve) and Cancel, pressable in this chat until the operation expires.

    The guard refuses an expired operation too; the payload's own expiry means a copied
    button is refused before anything looks the operation up. A typed "yes" after the
    expiry gets the guard's answer, which says when it expired."""
    ids = {"operation_id": operation.id, "digest": operation.digest}
    until = operation.expires_at
    return [turn.button(verb, "affirm", ids, until=until),
            turn.button("Cancel", "deny", {"operation_id": operation.id}, until=until)]


def _holders(turn: Turn, roles: tuple[str, ...], exclude: str | None = None) -> str:
    people: list[str] = []
    for role in roles:
        people += [p for p in turn.runtime.policy.people_with(role)
                   if p != exclude and p not in people]
    return ", ".join(people)


def _which(turn: Turn, operation_id: str | None, verb: str) -> Operation | None:
    """The operation a yes/no is about: the one named by the button, or the only open one."""
    store = turn.runtime.store
    if operation_id:
        operation = store.get(operation_id)
        if operation is None:
            turn.say(f"I have no operation {operation_id}; nothing ran. "
                     "Ask again for a new preview.")
        else:
            turn.note(operation)
        return operation
    open_now = store.open_for(turn.who.sender_id)
    if not open_now:
        turn.say("There's nothing waiting for a yes or no right now. What would you like to do?")
        return None
    if len(open_now) > 1:
        turn.say(f"Several operations are waiting; which one should I {verb}?",
                 [turn.button(f"{verb.title()} {op.intent} {op.id}",
                              "affirm" if verb == "confirm" else "deny",
                              {"operation_id": op.id, "digest": op.digest}, until=op.expires_at)
                  for op in open_now[:5]])
        return None
    turn.note(open_now[0])
    return open_now[0]


def _closed_reason(operation: Operation) -> str:
    state = operation.state
    if state == UNKNOWN:
        backend = _backend(operation.intent)
        return (f"That operation ({operation.id}) was already confirmed; I could not yet confirm "
                f"whether {backend} did it, and I am checking. It runs once and only once, so "
                "nothing new ran; I will post what I find.")
    if state in (EXECUTING, SUCCEEDED, FAILED, ERROR):  # it was confirmed and has run
        ref = operation.backend_ref
        build = f" as {ref.get('job')} #{ref['build_number']}" if ref.get("build_number") else ""
        who = f"confirmed by {operation.confirmed_by}" if operation.confirmed_by else "confirmed"
        return (f"That operation ({operation.id}) was already {who}; it runs once and only once"
                f"{build}. Nothing new ran.")
    return {
        CANCELLED: f"That operation ({operation.id}) was cancelled; nothing ran. "
                   "Ask again for a new preview.",
        EXPIRED: f"That confirmation expired at {_clock(operation.expires_at)}; nothing ran. "
                 "Ask again for a fresh preview.",
        SUPERSEDED: f"That preview ({operation.id}) was replaced by a newer request; nothing ran "
                    "from it. Use the buttons of the latest preview.",
        REFUSED: f"That operation ({operation.id}) was refused; nothing ran.",
    }.get(state, f"That operation ({operation.id}) is {state.replace('_', ' ')}; nothing new ran.")


def _refuse(turn: Turn, operation: Operation, verb: str, reason: str, metric: str,
            said: str) -> str:
    """Audit and say a refused yes or no; the operation stays as it is."""
    confirmation_refused(metric)
    kind = {"confirm": "refused_confirm", "approve": "refused_approval",
            "cancel": "refused_cancel", "reject": "refused_cancel"}[verb]
    turn.runtime.store.audit(operation.id, kind, actor=turn.who.person,
                             channel=turn.who.channel, detail={"reason": reason})
    turn.say(said)
    return reason


def _requester_refusal(turn: Turn, operation: Operation, verb: str) -> str | None:
    """Why this yes or no cannot be the requester's decision (None: it can).

    A confirmation, and its cancel, belong to the person who asked, in the conversation
    and channel where they asked: the REST token speaks for whoever it names, and a chat
    member's other conversations are not where the preview was shown.
    """
    who = turn.who
    what = f"{operation.intent.replace('_', ' ')} ({operation.id})"
    nothing = "nothing ran" if verb == "confirm" else "it is still waiting"
    if who.person != operation.requester:
        return _refuse(turn, operation, verb, "not the requester", "not_requester",
                       f"Only {operation.requester}, who asked for it, can {verb} this {what}; "
                       f"{nothing}.")
    if who.channel != operation.channel:
        return _refuse(turn, operation, verb,
                       f"asked in {operation.channel}, {verb} via {who.channel}", "other_channel",
                       f"{operation.id} was asked for in {operation.channel}: {verb} it there. "
                       f"{nothing[0].upper()}{nothing[1:]}.")
    if who.sender_id != operation.sender_id:
        return _refuse(turn, operation, verb, "another conversation", "other_conversation",
                       f"{operation.id} was asked for in another {operation.channel} chat: "
                       f"{verb} it there. {nothing[0].upper()}{nothing[1:]}.")
    return None


def _approval_refusal(turn: Turn, operation: Operation, verb: str) -> str | None:
    """Why this person cannot approve (or reject) here (None: they can): a chat that
    proves who they are, the chat where it was asked."""
    who = turn.who
    nothing = "Nothing ran." if verb == "approve" else "It is still waiting."
    if who.channel == "rest":
        # One REST token speaks for everyone policy.yml maps to it: an approval through
        # it proves no second person.
        return _refuse(turn, operation, verb, f"{verb} through the REST channel",
                       "rest_approval",
                       f"An approval of {operation.id} must come from a chat (Telegram, Teams "
                       "or Slack), where the approver is proven to be a different person; the REST "
                       f"channel cannot prove that. {nothing}")
    if who.chat != operation.reply_to.get("chat"):
        return _refuse(turn, operation, verb, "another chat", "other_conversation",
                       f"{operation.id} waits for approval in the chat where "
                       f"{operation.requester} asked for it: {verb} it there. {nothing}")
    return None


async def confirm(turn: Turn, operation_id: str | None, digest: str | None) -> None:
    """A yes: confirm (the requester) or approve (a second person) an operation."""
    rt, who = turn.runtime, turn.who
    operation = _which(turn, operation_id, "confirm")
    if operation is None:
        return
    if operation.state not in _OPEN:
        confirmation_refused("closed")
        turn.say(_closed_reason(operation))
        rt.store.audit(operation.id, "late_confirm", actor=who.person, channel=who.channel,
                       detail={"state": operation.state})
        return
    if operation.expired():
        confirmation_refused("expired")
        moved = rt.store.transition(operation.id, _OPEN, EXPIRED, actor=who.person,
                                    channel=who.channel, event="expired")
        if moved is not None:
            turn.note(moved, moved=True)
        turn.say(f"That confirmation expired at {_clock(operation.expires_at)} "
                 f"({_span(rt.policy.confirmation_ttl)} after the preview); nothing ran. "
                 "Ask again for a fresh preview.")
        return
    if digest is not None and digest != operation.digest:
        confirmation_refused("parameters_changed")
        rt.store.audit(operation.id, "refused_confirm", actor=who.person, channel=who.channel,
                       detail={"reason": "parameters differ from the preview"})
        turn.say("That confirmation does not match the parameters of the preview, so I refused "
                 "it; nothing ran. Ask again for a fresh preview.")
        return
    if operation.state == PENDING_CONFIRMATION:
        if _requester_refusal(turn, operation, "confirm") is not None:
            return
        decision = decide(turn, operation.intent, operation.parameters)
        if not decision.allowed:
            confirmation_refused("policy")
            moved = rt.store.transition(operation.id, _OPEN, REFUSED, actor="policy",
                                        channel=who.channel, event="refused",
                                        detail={"reason": decision.reason}, result="refused",
                                        result_detail=decision.reason, finished_at=_now())
            if moved is not None:
                turn.note(moved, moved=True)
            turn.say(f"I can't do that for you: {decision.reason} Nothing ran.")
            return
        if operation.approval_roles:
            moved = rt.store.transition(operation.id, {PENDING_CONFIRMATION}, PENDING_APPROVAL,
                                        actor=who.person, channel=who.channel, event="confirmed",
                                        confirmed_by=who.person, confirmed_at=_now())
            if moved is None:
                turn.say(_closed_reason(rt.store.get(operation.id) or operation))
                return
            turn.note(moved, moved=True)
            holders = _holders(turn, operation.approval_roles, exclude=who.person)
            turn.say(f"Confirmed by {who.person}. Now a second person with the "
                     f"{' or '.join(operation.approval_roles)} role must approve"
                     f"{' (' + holders + ')' if holders else ''} before "
                     f"{_clock(operation.expires_at)}.", _decision_buttons(turn, moved, "Approve"))
            return
        moved = rt.store.transition(operation.id, {PENDING_CONFIRMATION}, EXECUTING,
                                    actor=who.person, channel=who.channel, event="confirmed",
                                    confirmed_by=who.person, confirmed_at=_now())
    else:  # PENDING_APPROVAL
        if who.person == operation.requester or who.person == operation.confirmed_by:
            confirmation_refused("same_person")
            others = _holders(turn, operation.approval_roles, exclude=who.person)
            turn.say(f"{operation.id} needs a second, different person to approve; "
                     f"{who.person} asked for it. Ask {others or 'a colleague'}.")
            return
        if not rt.policy.may_approve(who.person, operation.approval_roles):
            confirmation_refused("role_missing")
            rt.store.audit(operation.id, "refused_approval", actor=who.person, channel=who.channel,
                           detail={"reason": "role missing"})
            holders = _holders(turn, operation.approval_roles)
            turn.say(f"Approving needs the {' or '.join(operation.approval_roles)} role, which "
                     f"{who.person} does not have"
                     f"{'; ' + holders + ' have it' if holders else ''}."
                     " Nothing ran.")
            return
        if _approval_refusal(turn, operation, "approve") is not None:
            return
        moved = rt.store.transition(operation.id, {PENDING_APPROVAL}, EXECUTING,
                                    actor=who.person, channel=who.channel, event="approved",
                                    approved_by=who.person, approved_at=_now())
    if moved is None:  # someone else's click won the race
        confirmation_refused("lost_race")
        turn.say(_closed_reason(rt.store.get(operation.id) or operation))
        return
    turn.note(moved, moved=True)
    await _execute(turn, moved)


def permitted(turn: Turn, intent: str, asked: str, candidates: Iterable[str],
              given: Mapping[str, str] | None = None) -> list[str]:
    """The candidates (services, jobs, environments ...) this person may ask ``intent``
    about, in order: a list of choices shows nothing the policy would refuse them.

    ``given``: the values already known (default: the request's entities); each
    candidate is decided on as the value of ``asked`` among them.
    """
    base = {k: v for k, v in (turn.request.entities if given is None else given).items() if v}
    return [c for c in candidates if decide(turn, intent, {**base, asked: c}).allowed]


def _backend(intent: str) -> str:
    kind = kind_of(intent)
    return kind.backend if kind else "the backend"


def decide(turn: Turn, intent: str, parameters: Mapping[str, str]) -> Decision:
    """The policy's decision, with the intent's own risk when no rule names it."""
    kind = kind_of(intent)
    return turn.runtime.policy.decide(intent, parameters, turn.who.person,
                                      default_risk=kind.risk if kind else None)


def _after_refusal(exc: BackendError, backend: str) -> str:
    """What to do after a change the backend did not make: wait for it, or change the ask."""
    if isinstance(exc, BackendUnavailable):
        return f"Ask again when {backend} is back."
    if isinstance(exc, BackendAuthError):
        return f"Ask again once opsbot's access to {backend} is fixed."
    return "Ask again with what it needs."


async def _execute(turn: Turn, operation: Operation) -> None:
    """Run a confirmed operation here, holding its lease (``actions._watcher``) until it
    has ended or is followed, so no other replica takes it for one whose replica died."""
    from actions._watcher import WATCHER

    if not WATCHER.hold(operation.id):
        confirmation_refused("lost_race")
        turn.say(_closed_reason(operation))
        return
    try:
        await _execute_held(turn, operation)
    finally:
        WATCHER.settle(operation.id)


def clearance(rt: Runtime, operation: Operation) -> str | None:
    """Why the policy does not clear a confirmed operation to run (None: it does).

    The last look before any backend is called, on every path that runs a change
    (built-in intents, team operations, event buttons): the operation's own parameters,
    which carry what it reaches (``actions.guard.reach``), decided for its requester, with
    the confirmation and the second person's approval that decision needs. It catches
    an operation that reached ``executing`` with less than the policy asks now (a
    pending operation from before a policy change, say).
    """
    kind = kind_of(operation.intent)
    decision = rt.policy.decide(operation.intent, operation.parameters, operation.requester,
                                default_risk=kind.risk if kind else None)
    if not decision.allowed:
        return decision.reason or "policy.yml does not allow it."
    if decision.needs_confirmation and operation.confirmed_by != operation.requester:
        return f"{operation.requester}, who asked for it, has not confirmed it."
    if decision.needs_approval:
        approver = operation.approved_by
        if (not approver or approver in (operation.requester, operation.confirmed_by)
                or not rt.policy.may_approve(approver, decision.approval_roles)):
            return (f"it needs a second person with the {' or '.join(decision.approval_roles)} "
                    "role to approve it, and nobody did.")
    return None


async def _execute_held(turn: Turn, operation: Operation) -> None:
    rt, who = turn.runtime, turn.who
    refused = clearance(rt, operation)
    if refused is not None:
        confirmation_refused("policy")
        rt.store.transition(operation.id, {EXECUTING}, ERROR, actor="policy", event="refused",
                            detail={"reason": refused}, result="refused", result_detail=refused,
                            finished_at=_now())
        rt.store.mark_notified(operation.id)
        turn.say(f"I can't run that: {refused} Nothing ran.")
        return
    if not rt.store.claim_execution(operation.id, actor=who.person):
        turn.say(_closed_reason(operation))
        return
    kind: IntentKind | None = kind_of(operation.intent)
    backend = kind.backend if kind else "the backend"
    what = operation.intent.replace('_', ' ')
    try:
        if kind is None or kind.executor is None:
            raise BackendUnavailable(f"opsbot has no way to run {operation.intent}.",
                                     backend=backend)
        outcome = await kind.executor(rt, operation)
    except OutcomeUnknown as exc:  # an executor that does not say it in its own words
        outcome = Outcome(f"I could not confirm that {backend} did the {what}: {exc} It may "
                          f"have happened: check in {backend} before asking again (opsbot will "
                          "not run this one again).", {"error": str(exc)}, unknown=True)
    except BackendError as exc:  # known not to have happened: refused, or never sent
        rt.store.transition(operation.id, {EXECUTING}, ERROR, actor=backend.lower(),
                            event="failed", detail={"error": str(exc)}, result="error",
                            result_detail=str(exc), finished_at=_now())
        rt.store.mark_notified(operation.id)  # said right here; nothing to announce later
        turn.say(f"{exc} The {what} did not start; nothing is recorded as done. "
                 + _after_refusal(exc, backend))
        return
    except Exception as exc:  # a bug in an executor: never leave the operation executing
        logger.exception("operation %s: the executor of %s failed", operation.id,
                         operation.intent)
        message = (f"opsbot failed while running the {what} ({type(exc).__name__}); it may or "
                   f"may not have happened. Check {backend} before asking again; opsbot will "
                   "not run this one again.")
        rt.store.transition(operation.id, {EXECUTING}, ERROR, actor="opsbot", event="failed",
                            detail={"error": type(exc).__name__}, result="internal_error",
                            result_detail=message, finished_at=_now())
        rt.store.mark_notified(operation.id)
        turn.say(message)
        return
    follow = kind.follow if kind is not None else None
    try:
        if outcome.unknown:
            rt.store.transition(operation.id, {EXECUTING}, UNKNOWN, actor=backend.lower(),
                                event="unconfirmed", backend_ref=dict(outcome.ref))
        elif outcome.ref:
            rt.store.update_backend_ref(operation.id, **outcome.ref)
        if not outcome.follow and not outcome.unknown:
            rt.store.transition(operation.id, {EXECUTING},
                                SUCCEEDED if outcome.succeeded else FAILED,
                                actor=backend.lower(), event="finished",
                                detail={**outcome.ref, **outcome.audit}, result=outcome.result,
                                result_detail=outcome.reply, finished_at=_now())
            rt.store.mark_notified(operation.id)  # the reply below is the announcement
    except StoreError as exc:
        # The backend has acted (or may have); only the record failed. Never "did not start".
        logger.error("operation %s: %s accepted it but the store failed: %s", operation.id,
                     backend, exc.detail or exc)
        if outcome.follow and follow is not None:
            follow(operation.id, outcome.ref)
        # The store's own advice ("try again") would be wrong here: the backend has acted.
        ref = f" (reference {exc.reference})" if exc.reference else ""
        if outcome.unknown:
            turn.say(f"{outcome.reply}\n(I could not record this in opsbot's operation store "
                     f"either{ref}.)")
        elif outcome.follow:
            turn.say(f"{backend} accepted the {what}, but I could not record it in opsbot's "
                     f"operation store{ref}. It may be running. I am checking and will post what "
                     "I find; do not ask again yet.")
        else:
            turn.say(f"{outcome.reply}\n(I could not record this in opsbot's operation "
                     f"store{ref}.)")
        return
    if outcome.follow and follow is not None:
        follow(operation.id, None)
    turn.say(outcome.reply)


async def cancel(turn: Turn, operation_id: str | None) -> None:
    """A no: cancel (the requester, where they asked) or reject (an approver, where they
    could approve) a pending operation."""
    rt, who = turn.runtime, turn.who
    operation = _which(turn, operation_id, "cancel")
    if operation is None:
        return
    if operation.state not in _OPEN:
        turn.say(_closed_reason(operation))
        return
    rejects = (operation.state == PENDING_APPROVAL and who.person != operation.requester
               and rt.policy.may_approve(who.person, operation.approval_roles))
    refusal = (_approval_refusal(turn, operation, "reject") if rejects
               else _requester_refusal(turn, operation, "cancel"))
    if refusal is not None:
        return
    moved = rt.store.transition(operation.id, _OPEN, CANCELLED, actor=who.person,
                                channel=who.channel, event="cancelled", finished_at=_now(),
                                result="cancelled")
    if moved is None:
        turn.say(_closed_reason(rt.store.get(operation.id) or operation))
        return
    turn.note(moved, moved=True)
    verb = "Rejected" if who.person != operation.requester else "Cancelled"
    turn.say(f"{verb}: nothing ran ({operation.intent.replace('_', ' ')} {operation.id}).")


def deliver_completions(turn: Turn) -> None:
    """Say every finished operation of this conversation that has not been announced yet."""
    store = turn.runtime.store
    for operation in store.finished_unnotified(turn.who.sender_id):
        if store.mark_notified(operation.id):
            current = store.get(operation.id) or operation
            kind = kind_of(current.intent)
            if kind is not None and kind.completion is not None:
                turn.say(kind.completion(current))
            else:
                result = current.result or "UNKNOWN"
                detail = f": {current.result_detail}" if current.result_detail else ""
                turn.say(f"{current.intent.replace('_', ' ')} ({current.id}) finished: "
                         f"{result}{detail}")


