"""The Jira intents: status, lists, comments, transitions, assignment, and new issues.

Reads (issue_status, list_issues) are answered at once. Changes (create_issue,
comment_issue, update_issue) become pending operations with a preview, confirmed like
a deploy (``actions.confirmations``); their executors below run once after that.
Before proposing, update_issue asks Jira what the change needs: a transition's screen
fields (a required resolution is the one the person named, "close PAY-77 as won't fix",
or else the standard Done / Fixed; anything else is asked for or explained), and
whether the new assignee may be assigned issues in the project at all.

create_issue is a Rasa form (``create_issue_form``): the summary comes from the first
message when it has one ("open a bug: login times out") and is asked for otherwise;
``ValidateCreateIssueForm`` in ``actions/ops.py`` fills it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from actions._runtime import Runtime
from actions.backends.jira import JIRA, Issue, JiraBackend
from actions.catalog import ago
from actions.confirmations import permitted, propose, record_read
from actions.errors import InvalidRequest, NotFound, OutcomeUnknown
from actions.guard import Operation
from actions.registry import Describe, Executor, Handler, IntentKind, Outcome
from actions.requests import on, phrase
from actions.turn import Turn

__all__ = ["INTENTS", "issue_type_from", "resolution_from", "summary_from"]

PRIORITY_NAMES = {"highest": "Highest", "high": "High", "medium": "Medium", "low": "Low",
                  "lowest": "Lowest"}
_KEY = re.compile(r"^[A-Z][A-Z0-9]+-\d+$")
# Where the summary starts, most explicit marker first: "bug: ...", "ticket - ...", "that says ...".
_SUMMARY_MARKERS = tuple(re.compile(p, re.I) for p in (
    r":\s*(?P<s>.+)$", r"\s[-–—]\s*(?P<s>.+)$", r"\b(?:that says|saying)\s+(?P<s>.+)$",
    r"\babout\s+(?P<s>.+)$", r"\bfor\s+(?P<s>.+)$"))
_ABOUT_TICKET = re.compile(r"^(?:a|an|the)?\s*(?:ticket|bug|issue|jira|incident|task)s?\b", re.I)
_TYPES = (("incident", "Incident"), ("story", "Story"), ("task", "Task"), ("bug", "Bug"),
          ("defect", "Bug"))
_STATUS = re.compile(
    r"\b(?:to|as|into)\s+(?P<s>to do|todo|in progress|in review|done|reopened|closed|resolved)\b"
    r"|\b(?P<verb>close|resolve|reopen|start)\b", re.I)
_VERB_STATUS = {"close": "Done", "resolve": "Done", "reopen": "Reopened", "start": "In Progress"}
_ASSIGN = re.compile(r"\b(?:assign(?:ed)?|give|hand)\b.*?\bto\s+(?P<who>[\w.@-]+)|\btake\b", re.I)
# "close PAY-77 as won't fix", "resolve OPS-1 with resolution duplicate"
_RESOLUTION = re.compile(r"\b(?:as|resolution(?:\s+(?:is|of|to))?:?)\s+(?P<r>[\w'’ -]{2,40}?)"
                         r"\s*[.!]?\s*$", re.IGNORECASE)
_COMMENT = re.compile(r"^[^:]*?:\s*(?P<c>.+)$|\b(?:saying|that)\s+(?P<c2>.+)$", re.I)
MAX_SUMMARY = 250
MAX_COMMENT = 4000
LIST_LIMIT = 8


def summary_from(text: str) -> str | None:
    """The summary in 'open a high priority bug: checkout returns 502 on prod', if any."""
    text = text.strip()
    if text.startswith("/"):  # a button payload, not words
        return None
    for marker in _SUMMARY_MARKERS:
        found = marker.search(text)
        if found is None:
            continue
        summary = " ".join(found.group("s").split()).strip(" .")
        if len(summary) >= 4 and not (_ABOUT_TICKET.match(summary) and len(summary.split()) <= 2):
            return summary
    return None


def issue_type_from(text: str) -> str:
    lowered = text.lower()
    for word, kind in _TYPES:
        if re.search(rf"\b{word}\b", lowered):
            return kind
    return "Bug"


def _key(turn: Turn) -> str | None:
    key = (turn.request.get("issue_key") or "").upper()
    if not key:
        turn.say(f"Which issue? Give its key, like OPS-123: \"{turn.request.describe()} OPS-123\".")
        return None
    if not _KEY.match(key):
        turn.say(f"\"{key}\" is not an issue key; keys look like OPS-123.")
        return None
    return key


def _jira(turn: Turn) -> JiraBackend | None:
    return turn.backend(JIRA)


def _issue_text(issue: Issue) -> str:
    assignee = issue.assignee or "unassigned"
    text = (f"{issue.key} [{issue.status}] {issue.summary}\n"
            f"{issue.issue_type}, priority {issue.priority or 'none'}, {assignee}, "
            f"updated {ago(issue.updated)}.")
    if issue.last_comment is not None:
        body = " ".join(issue.last_comment.body.split())
        if len(body) > 200:
            body = body[:199] + "…"
        text += f"\nLast comment ({issue.last_comment.author or 'someone'}, " \
                f"{ago(issue.last_comment.created)}): {body}"
    return text + f"\n{issue.url}"


async def issue_status(turn: Turn) -> None:
    jira = _jira(turn)
    key = _key(turn) if jira else None
    if jira is None or key is None:
        return
    turn.say(_issue_text(await jira.issue(key)))
    record_read(turn, {"issue_key": key})


def _jira_user(turn: Turn) -> str:
    """The Jira user of the person asking (policy.yml identities: jira), else their name."""
    return turn.runtime.policy.identity(turn.who.person, "jira") or turn.who.person


async def list_issues(turn: Turn) -> None:
    jira = _jira(turn)
    if jira is None:
        return
    text = turn.request.text.lower()
    project = (turn.request.get("project") or "").upper() or None
    priority = PRIORITY_NAMES.get((turn.request.get("priority") or "").lower())
    mine = bool(re.search(r"\b(my|mine|me|assigned to me)\b", text))
    open_only = bool(re.search(r"\b(open|unresolved|pending|active|my)\b", text)) or mine
    status = "In Progress" if "in progress" in text else None
    assignee = _jira_user(turn) if mine else None
    result = await jira.search(project=project, priority=priority, status=status,
                               open_only=open_only, assignee=assignee, limit=LIST_LIMIT)
    what = " ".join(x for x in (
        "open" if open_only else None, priority.lower() + " priority" if priority else None,
        "issues", "assigned to you" if mine else None,
        f"in {project}" if project else None) if x)
    if result.total == 0:
        turn.say(f"No {what}.")
    else:
        lines = [f"• {i.key} [{i.status}] {i.summary} ({i.priority or 'no priority'}, "
                 f"{i.assignee or 'unassigned'})" for i in result.issues]
        more = f"\n… and {result.total - len(lines)} more" if result.total > len(lines) else ""
        turn.say(f"{what[0].upper()}{what[1:]} ({result.total}):\n" + "\n".join(lines) + more)
    record_read(turn, {"project": project or "", "priority": priority or "",
                       "assignee": assignee or "", "open_only": "yes" if open_only else ""})


async def comment_issue(turn: Turn) -> None:
    jira = _jira(turn)
    key = _key(turn) if jira else None
    if jira is None or key is None:
        return
    # The issue first: a key of no project ("worker-3") is said to be unknown, not asked about.
    issue = await jira.issue(key)
    found = _COMMENT.search(turn.request.text)
    body = (found.group("c") or found.group("c2") or "").strip() if found else ""
    if not body:
        turn.say(f"What should the comment on {key} say? Write it after a colon: "
                 f"\"comment on {key}: waiting on the vendor\".")
        return
    if len(body) > MAX_COMMENT:
        turn.say(f"That comment is {len(body)} characters; Jira comments from chat are limited "
                 f"to {MAX_COMMENT}. Shorten it, or add it in Jira.")
        return
    await propose(turn, "comment_issue", {"issue_key": key, "comment": body},
                  f"Comment on {key} ({issue.summary}) as opsbot, on behalf of "
                  f"{turn.who.person}: \"{body}\"")


async def update_issue(turn: Turn) -> None:
    jira = _jira(turn)
    key = _key(turn) if jira else None
    if jira is None or key is None:
        return
    text = turn.request.text
    issue = await jira.issue(key)
    status_match = _STATUS.search(text)
    assign_match = _ASSIGN.search(text)
    priority = PRIORITY_NAMES.get((turn.request.get("priority") or "").lower())
    if assign_match:
        who = assign_match.group("who") if assign_match.group("who") else "me"
        if who.lower() in ("me", "myself"):
            who = _jira_user(turn)
        try:  # Jira refuses people without "Assignable User" in the project: ask first
            person = await jira.assignee_for(key, who)
        except (InvalidRequest, NotFound) as exc:
            turn.say(f"{exc} Nothing changed.")
            return
        await propose(turn, "update_issue", {"issue_key": key, "assignee": person.name},
                      f"Assign {key} ({issue.summary}) to {person.display_name} "
                      f"({person.name}); it is now {issue.assignee or 'unassigned'}.")
        return
    if status_match:
        target = status_match.group("s") or _VERB_STATUS[status_match.group("verb").lower()]
        target = {"todo": "To Do", "closed": "Done", "resolved": "Done"}.get(target.lower(), target)
        await _propose_transition(turn, jira, issue, target)
        return
    if priority:
        if (issue.priority or "").lower() == priority.lower():
            turn.say(f"{key} is already {issue.priority} priority. Nothing to change.")
            return
        names = await jira.priorities()
        if names and priority.lower() not in (n.lower() for n in names):
            turn.say(f"Jira has no priority {priority}; use {', '.join(names)}. Nothing changed.")
            return
        await propose(turn, "update_issue", {"issue_key": key, "priority": priority},
                      f"Change the priority of {key} ({issue.summary}) from "
                      f"{issue.priority or 'none'} to {priority}.")
        return
    turn.say(f"What should I change on {key}? For example \"assign {key} to bob\", "
             f"\"move {key} to done\" or \"set {key} priority to high\".")


def resolution_from(text: str) -> str | None:
    """The resolution in 'close PAY-77 as won't fix', if the text names one."""
    found = _RESOLUTION.search(text.strip())
    return " ".join(found.group("r").replace("’", "'").split()) if found else None


async def _propose_transition(turn: Turn, jira: JiraBackend, issue: Issue, target: str) -> None:
    """Propose moving ``issue`` to ``target`` with what the transition's screen requires."""
    key = issue.key
    available = await jira.transition_options(key)
    chosen = jira.pick_transition(available, target)
    if chosen is None:
        targets = list(dict.fromkeys(t.to for t in available))
        turn.say(f"{key} is {issue.status}; from there it can move to "
                 f"{', '.join(targets) or 'nothing'}, not \"{target}\". Nothing changed.")
        return
    others = chosen.unfillable()
    if others:
        names = ", ".join(f"{f.name} ({f.id})" for f in others)
        turn.say(f"Jira requires {names} to move {key} to {chosen.to}, and opsbot cannot fill "
                 f"that in from chat; move it in Jira: {issue.url}. Nothing changed.")
        return
    field = chosen.field("resolution")
    asked = resolution_from(turn.request.text)
    parameters = {"issue_key": key, "status": chosen.to}
    resolution: str | None = None
    if field is not None and asked:
        resolution = field.match(asked) if field.allowed else asked
        if resolution is None and asked.lower() != chosen.to.lower():
            turn.say(f"Jira has no resolution \"{asked}\" for moving {key} to {chosen.to}; it "
                     f"allows {', '.join(field.allowed)}. Say, for example, \"close {key} as "
                     f"{field.allowed[0]}\". Nothing changed.")
            return
    if field is not None and resolution is None and field.required:
        resolution = chosen.standard_resolution()  # what a plain close / resolve / done means
        if resolution is None:
            example = field.allowed[0] if field.allowed else "Fixed"
            turn.say(f"Jira requires a resolution to move {key} to {chosen.to}: "
                     f"{', '.join(field.allowed) or 'it lists none'}. Which one? Say, for "
                     f"example, \"close {key} as {example}\". Nothing changed.")
            return
    note = ""
    if resolution is not None:
        parameters["resolution"] = resolution
    elif asked and field is None and asked.lower() != chosen.to.lower():
        note = (f" (Jira's {chosen.name} transition takes no resolution, so \"{asked}\" is not "
                "recorded.)")
    shown = f", resolution {parameters['resolution']}" if "resolution" in parameters else ""
    await propose(turn, "update_issue", parameters,
                  f"Move {key} ({issue.summary}) from {issue.status} to {chosen.to}{shown}.{note}")


async def create_issue(turn: Turn) -> None:
    """Submit of create_issue_form: propose the new issue with its defaults."""
    jira = _jira(turn)
    if jira is None:
        return
    summary = turn.slots.get("issue_summary")
    if not summary:
        turn.say("What should the ticket say? Start again with \"open a bug: <summary>\".")
        return
    if len(summary) > MAX_SUMMARY:
        turn.say(f"That summary is {len(summary)} characters; Jira allows {MAX_SUMMARY}. "
                 "Give a shorter one; details can go in a comment.")
        return
    projects = await jira.projects()
    keys = [key for key, _ in projects]
    project = (turn.request.get("project") or turn.slots.get("project")
               or jira.default_project or (keys[0] if keys else "")).upper()
    if project not in keys:
        allowed = set(permitted(turn, "create_issue", "project", keys))
        turn.say(f"There is no Jira project {project}. Which one?",
                 [turn.button(f"{key}: {name}", "create_issue", {"project": key})
                  for key, name in projects if key in allowed][:8])
        return
    priority = PRIORITY_NAMES.get(
        (turn.request.get("priority") or turn.slots.get("priority") or "medium").lower(), "Medium")
    kind = issue_type_from(str(turn.slots.get("issue_request_text") or turn.request.text))
    await propose(turn, "create_issue",
                  {"project": project, "summary": summary, "issue_type": kind,
                   "priority": priority},
                  f"Open a {kind} in {project} with priority {priority}: \"{summary}\". "
                  f"Reporter: opsbot, on behalf of {turn.who.person}.")


def _connected(rt: Runtime) -> JiraBackend:
    return rt.backends.connected(JIRA)


def _unconfirmed(exc: OutcomeUnknown, what: str, check: str) -> Outcome:
    """The honest reply when Jira's answer to a change was lost: it may have happened."""
    return Outcome(f"I could not confirm that Jira {what}: {exc} It may have happened: {check} "
                   "before asking again (opsbot will not run this request again).",
                   {"error": str(exc)}, unknown=True)


async def _execute_create(rt: Runtime, operation: Operation) -> Outcome:
    p = operation.parameters
    try:
        issue = await _connected(rt).create_issue(
            p["project"], p["summary"], p["issue_type"], p["priority"],
            description=f"Opened from chat by {operation.requester}: \"{operation.text}\"")
    except OutcomeUnknown as exc:
        return _unconfirmed(exc, "opened the issue",
                            f"look in {p['project']} for \"{p['summary']}\"")
    return Outcome(f"Opened {issue.key}: {issue.summary} ({issue.priority}). {issue.url}",
                   {"issue_key": issue.key, "url": issue.url})


async def _execute_comment(rt: Runtime, operation: Operation) -> Outcome:
    p = operation.parameters
    try:
        await _connected(rt).comment(p["issue_key"],
                                     f"{p['comment']}\n\n(from {operation.requester} via opsbot)")
    except OutcomeUnknown as exc:
        return _unconfirmed(exc, f"added the comment to {p['issue_key']}",
                            f"look at {p['issue_key']}'s comments")
    return Outcome(f"Commented on {p['issue_key']}.", {"issue_key": p["issue_key"]})


async def _execute_update(rt: Runtime, operation: Operation) -> Outcome:
    try:
        return await _update(rt, operation)
    except OutcomeUnknown as exc:
        key = operation.parameters["issue_key"]
        return _unconfirmed(exc, f"changed {key}", f"look at {key} in Jira")


async def _update(rt: Runtime, operation: Operation) -> Outcome:
    p = operation.parameters
    key = p["issue_key"]
    jira = _connected(rt)
    if "assignee" in p:
        issue = await jira.assign(key, p["assignee"])
        return Outcome(f"{key} is now assigned to {issue.assignee}. {issue.url}",
                       {"issue_key": key})
    if "status" in p:
        issue = await jira.transition(key, p["status"], p.get("resolution"))
        resolved = f" ({issue.resolution})" if issue.resolution else ""
        return Outcome(f"{key} is now {issue.status}{resolved}. {issue.url}", {"issue_key": key})
    if "priority" in p:
        issue = await jira.set_priority(key, p["priority"])
        return Outcome(f"{key} is now {issue.priority} priority. {issue.url}", {"issue_key": key})
    raise InvalidRequest(f"opsbot cannot change {sorted(p)} on {key}.", backend=JIRA.product)


def _declare(intent: str, handler: Handler, title: str, gerund: str, describe: Describe, *,
             executor: Executor | None = None, aliases: tuple[str, ...] = (),
             acts_on: tuple[str, ...] = ("issue_key",)) -> IntentKind:
    """A Jira intent: a read unless it has an executor."""
    return IntentKind(intent, handler, title, gerund, describe=describe, executor=executor,
                      backend=JIRA.product, read=executor is None, aliases=aliases,
                      acts_on=acts_on)


def _issue(e: Mapping[str, str]) -> str:
    return e.get("issue_key") or "an issue"


def _tickets(e: Mapping[str, str], noun: str) -> str:
    """'high priority ticket in PAY' as far as the request says."""
    return phrase(f"{e['priority']} priority" if e.get("priority") else None, noun,
                  on("in", e.get("project")))


INTENTS = (
    _declare("create_issue", create_issue, "open a ticket", "Opening an issue",
             describe=lambda e: phrase("open a", _tickets(e, "ticket")), executor=_execute_create,
             aliases=("ticket", "bug", "open ticket"), acts_on=("project",)),
    _declare("issue_status", issue_status, "status of a ticket", "Showing an issue",
             describe=lambda e: phrase("show the status of", _issue(e))),
    _declare("list_issues", list_issues, "list tickets", "Listing issues",
             describe=lambda e: phrase("list", _tickets(e, "tickets")),
             aliases=("tickets",), acts_on=("project",)),
    _declare("comment_issue", comment_issue, "comment on a ticket", "Commenting on an issue",
             describe=lambda e: phrase("comment on", _issue(e)), executor=_execute_comment,
             aliases=("comment",)),
    _declare("update_issue", update_issue, "change a ticket", "Updating an issue",
             describe=lambda e: phrase("update", _issue(e)), executor=_execute_update,
             aliases=("assign",)),
)
"""The Jira intents; their risk comes from ``policy.yml``."""
