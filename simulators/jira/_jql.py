"""JQL: a recursive-descent parser that turns a query into a predicate over issues and a
sort order, validating fields, operators, values and functions as Jira does.

Why apart: the longest single concern of the Jira simulator; the state hands it the
issues and the HTTP face the query text. Whatever it does not implement is a 400 that
says so, never a silent match-all.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from simulators.jira._jql_tokens import _JqlError, _Token, _tokenize, _where
from simulators.jira._model import _CATEGORIES, _RESOLUTIONS, _STATUSES, PRIORITIES, _Issue
from simulators.jira._state import _State


@dataclass(frozen=True)
class _Operand:
    kind: str  # value | function | empty | list
    text: str = ""
    pos: int = 0
    args: tuple[str, ...] = ()
    items: tuple[_Operand, ...] = ()

    def shown(self) -> str:
        return f"{self.text}()" if self.kind == "function" else self.text


_Predicate = Callable[[_Issue], bool]


_OPERATORS_HELP = ("Valid operators include: '=', '!=', '<', '>', '<=', '>=', '~', '!~', "
                   "'IN', 'NOT IN', 'IS' and 'IS NOT'.")


_FIELDS = {  # lower-case JQL name -> canonical field
    "project": "project", "status": "status", "statuscategory": "statusCategory",
    "priority": "priority", "issuetype": "issuetype", "type": "issuetype",
    "key": "key", "issuekey": "key", "issue": "key", "id": "key",
    "resolution": "resolution", "labels": "labels",
    "assignee": "assignee", "reporter": "reporter", "creator": "creator",
    "text": "text", "summary": "summary", "description": "description", "comment": "comment",
    "created": "created", "createddate": "created", "updated": "updated",
    "updateddate": "updated", "resolved": "resolved", "resolutiondate": "resolved",
}
_KIND = {
    "project": "choice", "status": "choice", "statusCategory": "choice", "priority": "choice",
    "issuetype": "choice", "key": "choice", "resolution": "choice", "labels": "labels",
    "assignee": "user", "reporter": "user", "creator": "user",
    "text": "text", "summary": "text", "description": "text", "comment": "text",
    "created": "date", "updated": "date", "resolved": "date",
}
_CAN_BE_EMPTY = frozenset({"priority", "resolution", "labels", "assignee", "reporter",
                           "description", "resolved"})
_JIRA_FIELDS_NOT_SIMULATED = frozenset({
    "affectedversion", "attachments", "category", "cf", "component", "due", "duedate",
    "environment", "epic link", "filter", "fixversion", "issuelinktype", "lastviewed", "level",
    "originalestimate", "parent", "remainingestimate", "request", "savedfilter", "sprint",
    "subtasks", "timeestimate", "timeoriginalestimate", "timespent", "voter", "votes",
    "watcher", "watchers", "workratio", "project category", "projecttype", "team",
})
_JIRA_FUNCTIONS_NOT_SIMULATED = frozenset({
    "membersof", "startofweek", "endofweek", "startofmonth", "endofmonth", "startofyear",
    "endofyear", "issuehistory", "linkedissues", "opensprints", "closedsprints",
    "futuresprints", "releasedversions", "unreleasedversions", "latestreleasedversion",
    "earliestunreleasedversion", "watchedissues", "votedissues", "updatedby", "lastlogin",
    "currentlogin", "componentsleadbyuser", "projectsleadbyuser", "standardissuetypes",
    "subtaskissuetypes", "cascadeoption", "issuesWithRemoteLinksByGlobalId".lower(),
    "projectswhereuserhaspermission", "projectswhereuserhasrole",
})
_SORTABLE = ("created", "updated", "resolved", "priority", "key", "status", "summary",
             "assignee", "reporter", "issuetype", "project")
_STOPWORDS = frozenset("a an and are as at be but by for if in into is it no not of on or such "
                       "that the their then there these they this to was will with".split())
_DOC_WORD = re.compile(r"\w+(?:[.']\w+)*")
_QUERY_WORD = re.compile(r"[\w*?]+(?:[.'][\w*?]+)*")
_RELATIVE_DATE = re.compile(r"([-+]?)\s*((?:\d+\s*[wdhm]\s*)+)")
_DATE_FORMATS = ("%Y-%m-%d %H:%M", "%Y/%m/%d %H:%M", "%Y-%m-%d", "%Y/%m/%d")


def _stem(word: str) -> str:
    """A very light English stemmer, enough that "timeouts" finds "timeout"."""
    word = word.lower().removesuffix("'s")
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def _doc_words(text: str) -> list[str]:
    return [_stem(w) for w in _DOC_WORD.findall(text.lower()) if w not in _STOPWORDS]


def _text_groups(query: str) -> list[list[str]]:
    """Query terms; words inside ``"..."`` form one phrase group."""
    groups: list[list[str]] = []
    for index, part in enumerate(query.split('"')):
        words = [w for w in _QUERY_WORD.findall(part.lower()) if w not in _STOPWORDS]
        words = [w if ("*" in w or "?" in w) else _stem(w) for w in words]
        if not words:
            continue
        if index % 2:
            groups.append(words)
        else:
            groups.extend([w] for w in words)
    return groups


def _text_matches(groups: list[list[str]], words: list[str]) -> bool:
    if not groups:
        return False

    def same(term: str, word: str) -> bool:
        return fnmatchcase(word, term) if ("*" in term or "?" in term) else term == word

    for group in groups:
        size = len(group)
        if not any(all(same(group[k], words[start + k]) for k in range(size))
                   for start in range(len(words) - size + 1)):
            return False
    return True


def _field_text(issue: _Issue, name: str) -> str:
    comments = "\n".join(c.body for c in issue.comments)
    return {"summary": issue.summary, "description": issue.description, "comment": comments,
            "text": "\n".join((issue.summary, issue.description, comments))}[name]


def _date_of(issue: _Issue, name: str) -> float | None:
    return {"created": issue.created, "updated": issue.updated,
            "resolved": issue.resolved}[name]


@dataclass(frozen=True)
class _Query:
    where: _Predicate | None
    order: tuple[tuple[str, bool], ...]  # (field, descending)


class _Jql:
    """Parses one JQL query into a predicate and a sort order, validating as Jira does.

    ``strict`` is Jira's ``validateQuery``: when False, values that do not exist
    become warnings and their clause matches nothing, instead of a 400.
    """

    def __init__(self, text: str, state: _State, user: str, now: float, strict: bool) -> None:
        self.text = text
        self.state = state
        self.user = user
        self.now = now
        self.strict = strict
        self.warnings: list[str] = []
        self.tokens = _tokenize(text)
        self.index = 0

    # -- token helpers ---------------------------------------------------------------

    def peek(self, ahead: int = 0) -> _Token:
        return self.tokens[min(self.index + ahead, len(self.tokens) - 1)]

    def take(self) -> _Token:
        token = self.peek()
        self.index = min(self.index + 1, len(self.tokens) - 1)
        return token

    @staticmethod
    def word(token: _Token, *words: str) -> bool:
        return token.kind == "word" and token.text.lower() in words

    @staticmethod
    def symbol(token: _Token, *symbols: str) -> bool:
        return token.kind == "op" and token.text in symbols

    def fail(self, message: str, token: _Token) -> _JqlError:
        if token.kind == "end":
            return _JqlError(f"Error in the JQL Query: {message} before the end of the query.")
        return _JqlError(f"Error in the JQL Query: {message} but got '{token.text}'. "
                         f"{_where(self.text, token.pos)}")

    # -- grammar ---------------------------------------------------------------------

    def parse(self) -> _Query:
        where = None
        if not (self.peek().kind == "end" or self.word(self.peek(), "order")):
            where = self.or_expr()
        order: list[tuple[str, bool]] = []
        if self.word(self.peek(), "order"):
            self.take()
            if not self.word(self.peek(), "by"):
                raise self.fail("Expecting 'by'", self.peek())
            self.take()
            order = self.sort_list()
        token = self.peek()
        if token.kind != "end":
            if order:
                raise self.fail("Expecting ',' or the end of the query", token)
            raise self.fail("Expecting either 'OR' or 'AND'", token)
        return _Query(where, tuple(order))

    def or_expr(self) -> _Predicate:
        parts = self.operands(self.and_expr, "or", "||", "|")
        return parts[0] if len(parts) == 1 else (lambda i: any(p(i) for p in parts))

    def and_expr(self) -> _Predicate:
        parts = self.operands(self.not_expr, "and", "&&", "&")
        return parts[0] if len(parts) == 1 else (lambda i: all(p(i) for p in parts))

    def operands(self, operand: Callable[[], _Predicate], word: str,
                 *symbols: str) -> list[_Predicate]:
        """``operand (word | symbol) operand ...``: the operands of one AND or OR chain."""
        parts = [operand()]
        while self.word(self.peek(), word) or self.symbol(self.peek(), *symbols):
            self.take()
            parts.append(operand())
        return parts

    def not_expr(self) -> _Predicate:
        token = self.peek()
        if self.word(token, "not") or self.symbol(token, "!"):
            self.take()
            inner = self.not_expr()
            return lambda i: not inner(i)
        if token.kind == "(":
            self.take()
            inner = self.or_expr()
            if self.peek().kind != ")":
                raise self.fail("Expecting ')'", self.peek())
            self.take()
            return inner
        return self.clause()

    def clause(self) -> _Predicate:
        token = self.take()
        if token.kind not in ("word", "string") or not token.text:
            raise self.fail("Expecting a field name", token)
        name = token.text.strip().lower()
        canonical = _FIELDS.get(name)
        if canonical is None:
            if name in _JIRA_FIELDS_NOT_SIMULATED:
                supported = ", ".join(sorted(set(_FIELDS.values())))
                raise _JqlError(f"The Jira simulator does not support the field '{token.text}' "
                                f"in JQL; it supports {supported}.")
            raise _JqlError(f"Field '{token.text}' does not exist or you do not have "
                            "permission to view it.")
        operator = self.operator()
        operand = self.operand(operator)
        return self.compile(canonical, token.text, operator, operand)

    def operator(self) -> str:
        token = self.take()
        if token.kind == "op" and token.text in ("=", "!=", "~", "!~", ">", ">=", "<", "<="):
            return token.text
        if self.word(token, "in"):
            return "in"
        if self.word(token, "not") and self.word(self.peek(), "in"):
            self.take()
            return "not in"
        if self.word(token, "is"):
            if self.word(self.peek(), "not"):
                self.take()
                return "is not"
            return "is"
        if self.word(token, "was", "changed"):
            raise _JqlError(f"The Jira simulator does not support the history operator "
                            f"'{token.text.upper()}' (WAS / CHANGED).")
        if token.kind == "end":
            raise self.fail("Expecting operator", token)
        raise _JqlError(f"Error in the JQL Query: Expecting operator but got '{token.text}'. "
                        f"{_OPERATORS_HELP} {_where(self.text, token.pos)}")

    def operand(self, operator: str) -> _Operand:
        if operator in ("in", "not in"):
            if self.peek().kind == "word" and self.peek(1).kind == "(":
                return self.single()  # a function returning a list, like membersOf(devs)
            if self.peek().kind != "(":
                raise self.fail("Expecting '(' to start a list of values", self.peek())
            self.take()
            items = [self.single()]
            while self.peek().kind == ",":
                self.take()
                items.append(self.single())
            if self.peek().kind != ")":
                raise self.fail("Expecting ')'", self.peek())
            self.take()
            return _Operand("list", items=tuple(items))
        if operator in ("is", "is not"):
            token = self.take()
            if not self.word(token, "empty", "null"):
                raise self.fail("Expecting 'EMPTY' or 'NULL'", token)
            return _Operand("empty", token.text, token.pos)
        return self.single()

    def single(self) -> _Operand:
        token = self.take()
        if token.kind == "word" and self.peek().kind == "(":
            self.take()
            args: list[str] = []
            while self.peek().kind != ")":
                arg = self.take()
                if arg.kind not in ("word", "string"):
                    raise self.fail("Expecting a function argument", arg)
                args.append(arg.text)
                if self.peek().kind == ",":
                    self.take()
            self.take()
            return _Operand("function", token.text, token.pos, tuple(args))
        if self.word(token, "empty", "null"):
            return _Operand("empty", token.text, token.pos)
        if token.kind not in ("word", "string"):
            raise self.fail("Expecting either a value, list or function", token)
        return _Operand("value", token.text, token.pos)

    def sort_list(self) -> list[tuple[str, bool]]:
        order: list[tuple[str, bool]] = []
        while True:
            token = self.take()
            if token.kind not in ("word", "string"):
                raise self.fail("Expecting a field name", token)
            canonical = _FIELDS.get(token.text.strip().lower())
            if canonical not in _SORTABLE:
                raise _JqlError(f"Not able to sort using field '{token.text}'.")
            descending = False
            if self.word(self.peek(), "asc", "desc"):
                descending = self.take().text.lower() == "desc"
            order.append((canonical, descending))
            if self.peek().kind != ",":
                return order
            self.take()

    # -- semantics -------------------------------------------------------------------

    def compile(self, field: str, shown: str, operator: str, operand: _Operand) -> _Predicate:
        kind = _KIND[field]
        if operand.kind == "empty" or operator in ("is", "is not"):
            if operator not in ("=", "!=", "is", "is not"):
                raise _JqlError(f"The operator '{operator}' does not support the EMPTY value.")
            if field not in _CAN_BE_EMPTY:
                raise _JqlError(f"The field '{shown}' does not support searching for EMPTY "
                                "values.")
            empty = self.emptiness(field)
            return empty if operator in ("=", "is") else (lambda i: not empty(i))
        if kind == "text":
            return self.text_clause(field, shown, operator, operand)
        if kind == "date":
            return self.date_clause(field, shown, operator, operand)
        if operator in ("~", "!~"):
            raise _JqlError(f"The operator '{operator}' is not supported by the '{shown}' field.")
        if operator in (">", ">=", "<", "<="):
            if field != "priority":
                raise _JqlError(f"The operator '{operator}' is not supported by the '{shown}' "
                                "field.")
            return self.priority_range(operator, operand, shown)
        operands = operand.items if operand.kind == "list" else (operand,)
        if operand.kind == "list" and operator in ("=", "!="):
            raise _JqlError(f"The operator '{operator}' does not support the list value.")
        getter, resolve = self.accessor(field, shown)
        wanted: set[str] = set()
        unknown = False
        for item in operands:
            value = resolve(item)
            if value is None:
                unknown = True
            else:
                wanted.add(value)
        if unknown and not wanted:
            return lambda i: False
        negate = operator in ("!=", "not in")

        def test(issue: _Issue) -> bool:
            values = getter(issue)
            if not values:
                return False  # Jira: != and NOT IN never match an empty field
            hit = any(v in wanted for v in values)
            return not hit if negate else hit

        return test

    def emptiness(self, field: str) -> _Predicate:
        tests: dict[str, _Predicate] = {
            "priority": lambda i: i.priority is None,
            "resolution": lambda i: i.resolved is None,
            "resolved": lambda i: i.resolved is None,
            "labels": lambda i: not i.labels,
            "assignee": lambda i: i.assignee is None,
            "reporter": lambda i: i.reporter is None,
            "description": lambda i: not i.description.strip(),
        }
        return tests[field]

    def accessor(self, field: str, shown: str) -> tuple[Callable[[_Issue], list[str]],
                                                        Callable[[_Operand], str | None]]:
        """How to read ``field`` off an issue, and how to resolve a query value for it."""
        state = self.state

        def value_only(resolve: Callable[[str], str | None]) -> Callable[[_Operand], str | None]:
            def run(operand: _Operand) -> str | None:
                if operand.kind == "function":
                    self.check_function(operand, shown, allowed=())
                found = resolve(operand.text)
                if found is None:
                    self.missing(operand.text, shown)
                return found
            return run

        if field == "project":
            def project(text: str) -> str | None:
                found = state.project(text)
                return found.key if found else None
            return (lambda i: [i.project.key]), value_only(project)
        if field == "status":
            def status(text: str) -> str | None:
                return next((s.name for s in _STATUSES if text.strip().lower()
                             in (s.name.lower(), s.id)), None)
            return (lambda i: [i.status]), value_only(status)
        if field == "statusCategory":
            def category(text: str) -> str | None:
                wanted = text.strip().lower()
                return next((key for key, (cid, name, _) in _CATEGORIES.items()
                             if wanted in (key, name.lower(), str(cid))), None)
            return (lambda i: [i.category]), value_only(category)
        if field == "priority":
            def priority(text: str) -> str | None:
                return _State.priority({"name": text}) or _State.priority({"id": text})
            return (lambda i: [i.priority] if i.priority else []), value_only(priority)
        if field == "issuetype":
            def issue_type(text: str) -> str | None:
                found = state.issue_type({"name": text, "id": text})
                return found.name if found else None
            return (lambda i: [i.issue_type]), value_only(issue_type)
        if field == "resolution":
            def resolution(text: str) -> str | None:
                wanted = text.strip().lower()
                if wanted == "unresolved":
                    return "Unresolved"
                return next((r.name for r in _RESOLUTIONS
                             if wanted in (r.name.lower(), r.id)), None)
            return (lambda i: [i.resolution or "Unresolved"]), value_only(resolution)
        if field == "labels":
            def label(operand: _Operand) -> str | None:
                if operand.kind == "function":
                    self.check_function(operand, shown, allowed=())
                return operand.text.lower()
            return (lambda i: [x.lower() for x in i.labels]), label
        if field == "key":
            def key(operand: _Operand) -> str | None:
                if operand.kind == "function":
                    self.check_function(operand, shown, allowed=())
                text = operand.text.strip().upper()
                if text.isdigit():
                    found = next((i for i in state.issues.values() if i.id == int(text)), None)
                    return found.key if found else None
                if not re.fullmatch(r"[A-Z][A-Z0-9_]+-\d+", text):
                    raise _JqlError(f"The issue key '{operand.text}' for field '{shown}' is "
                                    "invalid.")
                if text not in state.issues:
                    message = f"An issue with key '{text}' does not exist for field '{shown}'."
                    if self.strict:
                        raise _JqlError(message)
                    self.warnings.append(message)
                    return None
                return text
            return (lambda i: [i.key]), key

        def user(operand: _Operand) -> str | None:  # assignee, reporter, creator
            if operand.kind == "function":
                self.check_function(operand, shown, allowed=("currentuser",))
                return self.user
            found = state.user(operand.text)
            if found is None:
                self.missing(operand.text, shown)
                return None
            return found.name

        def getter(issue: _Issue) -> list[str]:
            value = getattr(issue, field)
            return [value] if value else []

        return getter, user

    def missing(self, text: str, shown: str) -> None:
        message = f"The value '{text}' does not exist for the field '{shown}'."
        if self.strict:
            raise _JqlError(message)
        self.warnings.append(message)

    @staticmethod
    def check_function(operand: _Operand, shown: str, allowed: tuple[str, ...]) -> None:
        name = operand.text.lower()
        if name in allowed:
            if operand.args:
                raise _JqlError(f"The Jira simulator does not support arguments to the JQL "
                                f"function '{operand.text}()'.")
            return
        if name in _JIRA_FUNCTIONS_NOT_SIMULATED:
            raise _JqlError(f"The Jira simulator does not support the JQL function "
                            f"'{operand.text}()'.")
        if name in ("currentuser", "now", "startofday", "endofday"):
            raise _JqlError(f"The JQL function '{operand.text}()' is not supported by the "
                            f"field '{shown}'.")
        raise _JqlError(f"Unable to find JQL function '{operand.text}()'.")

    def priority_range(self, operator: str, operand: _Operand, shown: str) -> _Predicate:
        if operand.kind != "value":
            raise _JqlError(f"The operator '{operator}' needs a single priority for the field "
                            f"'{shown}'.")
        name = _State.priority({"name": operand.text}) or _State.priority({"id": operand.text})
        if name is None:
            self.missing(operand.text, shown)
            return lambda i: False
        limit = PRIORITIES.index(name)  # 0 is the most urgent, and the "greatest"
        compare: dict[str, Callable[[int], bool]] = {
            ">": lambda r: r < limit, ">=": lambda r: r <= limit,
            "<": lambda r: r > limit, "<=": lambda r: r >= limit}
        check = compare[operator]
        return lambda i: i.priority is not None and check(PRIORITIES.index(i.priority))

    def text_clause(self, field: str, shown: str, operator: str,
                    operand: _Operand) -> _Predicate:
        if operator not in ("~", "!~") or (field == "text" and operator == "!~"):
            raise _JqlError(f"The operator '{operator}' is not supported by the '{shown}' field.")
        if operand.kind != "value":
            raise _JqlError(f"The operator '{operator}' needs a single text value for the field "
                            f"'{shown}'.")
        if not operand.text.strip():
            raise _JqlError(f"The field '{shown}' does not support searching for an empty "
                            "string.")
        groups = _text_groups(operand.text)
        for group in groups:
            for term in group:
                if term[0] in "*?":
                    raise _JqlError(f"The text query '{operand.text}' for field '{shown}' is "
                                    "not allowed to start with a wildcard.")

        def contains(issue: _Issue) -> bool:
            return _text_matches(groups, _doc_words(_field_text(issue, field)))

        return contains if operator == "~" else (lambda i: not contains(i))

    def date_clause(self, field: str, shown: str, operator: str,
                    operand: _Operand) -> _Predicate:
        if operator in ("=", "!="):
            raise _JqlError(f"The Jira simulator does not support the operator '{operator}' for "
                            f"the date field '{shown}'; use >, >=, < or <=.")
        if operator not in (">", ">=", "<", "<="):
            raise _JqlError(f"The operator '{operator}' is not supported by the '{shown}' field.")
        if operand.kind == "function":
            self.check_function(operand, shown, allowed=("now", "startofday", "endofday"))
            day = self.now - self.now % 86400  # the simulator's time zone is UTC
            at = {"now": self.now, "startofday": day,
                  "endofday": day + 86400 - 0.001}[operand.text.lower()]
        elif operand.kind == "value":
            at = self.date_value(operand.text, shown)
        else:
            raise _JqlError(f"The operator '{operator}' needs a single date for the field "
                            f"'{shown}'.")
        compare: dict[str, Callable[[float], bool]] = {
            ">": lambda t: t > at, ">=": lambda t: t >= at,
            "<": lambda t: t < at, "<=": lambda t: t <= at}
        check = compare[operator]

        def test(issue: _Issue) -> bool:
            value = _date_of(issue, field)
            return value is not None and check(value)

        return test

    def date_value(self, text: str, shown: str) -> float:
        value = text.strip()
        match = _RELATIVE_DATE.fullmatch(value)
        if match:
            units = {"w": 604800, "d": 86400, "h": 3600, "m": 60}
            seconds = sum(int(n) * units[u] for n, u in re.findall(r"(\d+)\s*([wdhm])", match[2]))
            return self.now - seconds if match[1] == "-" else self.now + seconds
        for fmt in _DATE_FORMATS:
            try:
                return float(calendar.timegm(time.strptime(value, fmt)))
            except ValueError:
                continue
        raise _JqlError(f"Date value '{text}' for field '{shown}' is invalid. Valid formats "
                        "include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', "
                        "'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'.")


def _sort(issues: list[_Issue], order: Sequence[tuple[str, bool]]) -> list[_Issue]:
    """Jira's ORDER BY; empty values sort last either way. Without one: key, newest first."""
    status_rank = {s.name: n for n, s in enumerate(_STATUSES)}
    keys: dict[str, Callable[[_Issue], Any]] = {
        "created": lambda i: i.created, "updated": lambda i: i.updated,
        "resolved": lambda i: i.resolved,
        # ORDER BY priority DESC puts Highest first
        "priority": lambda i: None if i.priority is None else -PRIORITIES.index(i.priority),
        "key": lambda i: (i.project.key, i.number), "status": lambda i: status_rank[i.status],
        "summary": lambda i: i.summary.lower(), "assignee": lambda i: i.assignee,
        "reporter": lambda i: i.reporter, "issuetype": lambda i: i.issue_type,
        "project": lambda i: i.project.key,
    }
    result = sorted(issues, key=lambda i: i.id, reverse=True)
    if not order:
        return sorted(result, key=keys["key"], reverse=True)
    for name, descending in reversed(order):
        get = keys[name]
        present = [i for i in result if get(i) is not None]
        absent = [i for i in result if get(i) is None]
        present.sort(key=get, reverse=descending)
        result = present + absent
    return result
