"""policy.yml: who is who in each chat connector, their roles, and what each request needs.

The policy is read once at start-up and checked then: an unknown key, a role in a rule
that nobody has, a bad duration or bad YAML is a ``PolicyError`` naming the file and
the problem. Deciding is pure: the same intent, parameters and person always get the
same ``Decision``. The file format is documented at the top of the project's policy.yml.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from actions.errors import ConfigError
from actions.registry import kind_of

__all__ = ["DEPLOY_INTENTS", "JOB_ENVIRONMENT", "JOB_KIND", "JOB_SERVICE", "REACH_KEYS", "RISKS",
           "Decision", "Policy", "PolicyError", "parse_duration"]

RISKS = ("read", "change", "critical")
DEFAULT_CONFIRMATION_TTL = 300.0

_TOP_KEYS = {"confirmation_ttl", "roles", "people", "everyone_roles", "rules"}
_PERSON_KEYS = {"roles", "identities"}
# What a connector's user ids look like, where a typo would otherwise match nobody quietly.
_USER_IDS = {
    "slack": (re.compile(r"^[UW][A-Z0-9]{2,}$"),
              "a Slack member id such as U0123456789 or W0123456789 (the profile's "
              "\u22ee menu, 'Copy member ID'), not a name"),
}
_RULE_KEYS = {"intents", "when", "risk", "roles", "approval", "unknown"}

JOB_KIND = "job_kind"
"""The parameter by which a request says it reaches a deploy job (value ``deploy``).

Jobs by kind: a rule for deploy or rollback with a ``when`` on ``environment`` applies
to every request that reaches a deploy job (stopping a running prod deploy, a team
operation that starts one), on top of the request's own rule; the request carries the
job's environment (``JOB_ENVIRONMENT``) and service (``JOB_SERVICE``) for it
(``actions.guard.reach``).
"""
JOB_ENVIRONMENT = "job_environment"
"""The environment the deploy job a request reaches acts on (dev, staging, prod)."""
JOB_SERVICE = "job_service"
"""The service that deploy job deploys, when it can be told."""
REACH_KEYS = (JOB_KIND, JOB_ENVIRONMENT, JOB_SERVICE)
DEPLOY_INTENTS = frozenset({"deploy", "rollback"})

_DURATION = re.compile(
    r"^\s*(\d+(?:\.\d+)?)\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)?\s*$",
    re.IGNORECASE,
)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600}


class PolicyError(ConfigError):
    """policy.yml is missing or wrong; the message names the file and the problem."""


def parse_duration(value: Any) -> float:
    """Seconds from ``30s``, ``5m``, ``1h`` or a plain number of seconds; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        match = _DURATION.match(str(value))
        if not match:
            raise ValueError(f"{value!r} is not a duration: write it as 30s, 5m, 1h or seconds")
        unit = (match.group(2) or "s")[0].lower()
        seconds = float(match.group(1)) * _UNIT_SECONDS[unit]
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"{value!r} is not a positive duration")
    return seconds


@dataclass(frozen=True)
class Decision:
    """What the policy says about one request by one person."""

    allowed: bool
    risk: str
    approval_roles: tuple[str, ...]
    reason: str | None

    @property
    def needs_confirmation(self) -> bool:
        """Change and critical operations run only after the requester confirms."""
        return self.risk in ("change", "critical")

    @property
    def needs_approval(self) -> bool:
        """A second, different person with one of ``approval_roles`` must approve."""
        return bool(self.approval_roles)


@dataclass(frozen=True)
class _Person:
    name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class _Rule:
    intents: frozenset[str]
    when: tuple[tuple[str, frozenset[str]], ...]   # parameter -> accepted values (casefolded)
    risk: str
    roles: tuple[str, ...]
    approval: tuple[str, ...]
    unknown: bool = False   # the rule applies to people policy.yml does not name, too

    def matches(self, intent: str, parameters: Mapping[str, str]) -> bool:
        return intent in self.intents and self.holds(parameters)

    def holds(self, parameters: Mapping[str, str]) -> bool:
        """Whether every ``when`` condition holds for ``parameters``."""
        for name, accepted in self.when:
            value = parameters.get(name)
            if value is None or str(value).casefold() not in accepted:
                return False
        return True

    @property
    def guards_deploy_jobs(self) -> bool:
        """A deploy rule on an environment: it applies to whatever reaches a deploy job."""
        return (bool(self.intents & DEPLOY_INTENTS)
                and any(name == "environment" for name, _ in self.when))


class Policy:
    """The parsed policy.yml: ``Policy.load``, ``Policy.from_env`` or ``Policy.parse`` build it."""

    def __init__(
        self,
        *,
        confirmation_ttl: float,
        people: Mapping[str, _Person],
        identities: Mapping[tuple[str, str], str],
        everyone_roles: frozenset[str],
        rules: Sequence[_Rule],
        source: str,
    ) -> None:
        self.confirmation_ttl = confirmation_ttl
        self._people = dict(people)
        self._identities = dict(identities)
        self._everyone_roles = everyone_roles
        self._rules = tuple(rules)
        self.source = source

    def __repr__(self) -> str:
        return (f"Policy({self.source!r}, people={len(self._people)}, "
                f"rules={len(self._rules)})")

    # -- loading ------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | Path) -> Policy:
        """Reads and checks a policy file; PolicyError names the file and the problem."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise PolicyError(
                f"{path}: no such policy file. Create it (the project's policy.yml is an "
                "example) or point OPSBOT_POLICY at yours."
            ) from None
        except OSError as exc:
            raise PolicyError(f"{path}: cannot read it: {exc.strerror}.") from exc
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = ""
            mark = getattr(exc, "problem_mark", None)
            if mark is not None:
                where = f" at line {mark.line + 1}, column {mark.column + 1}"
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            raise PolicyError(f"{path}: not valid YAML{where}: {problem}.") from exc
        return cls.parse(data, source=str(path))

    @classmethod
    def from_env(cls, project: Path, env: Mapping[str, str] | None = None) -> Policy:
        """The policy at ``OPSBOT_POLICY`` (relative to ``project``), else project/policy.yml."""
        env = os.environ if env is None else env
        configured = (env.get("OPSBOT_POLICY") or "").strip()
        if not configured:
            return cls.load(Path(project) / "policy.yml")
        path = Path(configured).expanduser()
        return cls.load(path if path.is_absolute() else Path(project) / path)

    @classmethod
    def parse(cls, data: Any, *, source: str = "policy.yml") -> Policy:
        """A policy from already-parsed YAML; PolicyError names ``source`` and the problem."""
        def fail(problem: str) -> PolicyError:
            return PolicyError(f"{source}: {problem}")

        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise fail("the top level must be a mapping (confirmation_ttl, people, rules ...).")
        _check_keys(data, _TOP_KEYS, "the top level", fail)

        ttl = DEFAULT_CONFIRMATION_TTL
        if data.get("confirmation_ttl") is not None:
            try:
                ttl = parse_duration(data["confirmation_ttl"])
            except ValueError as exc:
                raise fail(f"confirmation_ttl: {exc}.") from None

        declared: set[str] | None = None
        if data.get("roles") is not None:
            roles_data = data["roles"]
            if isinstance(roles_data, Mapping):
                declared = {str(r) for r in roles_data}
            else:
                declared = set(_names(roles_data, "roles", fail))

        everyone = frozenset(_names(data.get("everyone_roles"), "everyone_roles", fail))

        people: dict[str, _Person] = {}
        identities: dict[tuple[str, str], str] = {}
        people_data = data.get("people") or {}
        if not isinstance(people_data, Mapping):
            raise fail("people must map each person's name to their roles and identities.")
        for raw_name, entry in people_data.items():
            name = str(raw_name)
            where = f"people.{name}"
            if ":" in name:
                raise fail(f"{where}: a person's name cannot contain ':' "
                           "(that is how unknown identities are written, e.g. telegram:123).")
            entry = entry or {}
            if not isinstance(entry, Mapping):
                raise fail(f"{where} must be a mapping with roles and identities.")
            _check_keys(entry, _PERSON_KEYS, where, fail)
            roles = frozenset(_names(entry.get("roles"), f"{where}.roles", fail))
            ids = entry.get("identities") or {}
            if not isinstance(ids, Mapping):
                raise fail(f"{where}.identities must map a connector (rest, telegram, teams, "
                           "slack) to the person's user id there.")
            for raw_channel, raw_ids in ids.items():
                channel = str(raw_channel).strip().lower()
                values = raw_ids if isinstance(raw_ids, list) else [raw_ids]
                for raw_id in values:
                    if (raw_id is None or isinstance(raw_id, (Mapping, list, bool))
                            or str(raw_id) == ""):
                        raise fail(f"{where}.identities.{channel} must be a user id "
                                   "(or a list of them).")
                    shape = _USER_IDS.get(channel)
                    if shape is not None and not shape[0].match(str(raw_id)):
                        raise fail(f"{where}.identities.{channel}: {raw_id!r} is not {shape[1]}.")
                    key = (channel, str(raw_id))
                    if key in identities and identities[key] != name:
                        raise fail(f"{where}.identities.{channel}: {raw_id} is already "
                                   f"{identities[key]}'s identity.")
                    identities[key] = name
            people[name] = _Person(name=name, roles=roles)

        known = set(everyone).union(*(p.roles for p in people.values()))
        if declared is not None:
            undeclared = sorted(known - declared)
            if undeclared:
                raise fail(f"role {undeclared[0]!r} is given to someone but not listed "
                           f"under roles (listed: {', '.join(sorted(declared)) or 'none'}).")
            known |= declared

        rules: list[_Rule] = []
        rules_data = data.get("rules") or []
        if not isinstance(rules_data, list):
            raise fail("rules must be a list of rules (each with intents and risk).")
        for index, entry in enumerate(rules_data, start=1):
            where = f"rule {index}"
            if not isinstance(entry, Mapping):
                raise fail(f"{where} must be a mapping with intents and risk.")
            _check_keys(entry, _RULE_KEYS, where, fail)
            intents = _names(entry.get("intents"), f"{where}: intents", fail)
            if not intents:
                raise fail(f"{where} needs intents: the intents it applies to.")
            risk = entry.get("risk")
            if risk not in RISKS:
                raise fail(f"{where}: risk must be one of {', '.join(RISKS)}, not {risk!r}.")
            when = _parse_when(entry.get("when"), where, fail)
            required = _names(entry.get("roles"), f"{where}: roles", fail)
            approval = _names(entry.get("approval"), f"{where}: approval", fail)
            for role in (*required, *approval):
                if role not in known:
                    raise fail(f"{where} names the role {role!r}, which nobody has "
                               f"(known roles: {', '.join(sorted(known)) or 'none'}).")
            unknown = entry.get("unknown", False)
            if not isinstance(unknown, bool):
                raise fail(f"{where}: unknown must be true or false (true: the rule applies to "
                           "people policy.yml does not name, too).")
            rules.append(_Rule(intents=frozenset(intents), when=when, risk=risk,
                               roles=tuple(required), approval=tuple(approval), unknown=unknown))

        return cls(confirmation_ttl=ttl, people=people, identities=identities,
                   everyone_roles=everyone, rules=rules, source=source)

    # -- questions ----------------------------------------------------------------------

    def person(self, channel: str, user_id: str) -> str:
        """The person behind a connector's user id; unknown ones are ``channel:user_id``."""
        channel = str(channel).strip().lower()
        return self._identities.get((channel, str(user_id)), f"{channel}:{user_id}")

    def people(self) -> list[str]:
        """Everyone policy.yml names, sorted."""
        return sorted(self._people)

    def knows(self, person: str) -> bool:
        """Whether ``person`` is one of policy.yml's people (else a stranger)."""
        return person in self._people

    def identity(self, person: str, channel: str) -> str | None:
        """A person's user id on one connector or backend (``jira``), if policy.yml gives one."""
        channel = str(channel).strip().lower()
        return next((user_id for (ch, user_id), name in self._identities.items()
                     if ch == channel and name == person), None)

    def roles_of(self, person: str) -> frozenset[str]:
        """The person's roles, including ``everyone_roles``."""
        known = self._people.get(person)
        return self._everyone_roles | (known.roles if known else frozenset())

    def people_with(self, role: str) -> list[str]:
        """The people who have ``role``, sorted by name."""
        return sorted(name for name in self._people if role in self.roles_of(name))

    def may(self, person: str, role: str) -> bool:
        """Whether the person has ``role``."""
        return role in self.roles_of(person)

    def may_approve(self, person: str, operation_roles: Sequence[str], *,
                    requester: str | None = None) -> bool:
        """Whether ``person`` may approve an operation that needs one of ``operation_roles``.

        Nobody approves their own request: pass ``requester`` to have that checked here
        too (the caller must check it otherwise).
        """
        if requester is not None and person == requester:
            return False
        return bool(self.roles_of(person) & set(operation_roles))

    def decide(self, intent: str, parameters: Mapping[str, str], person: str,
               default_risk: str | None = None) -> Decision:
        """The first rule matching the intent and parameters decides; no rule means refused,
        unless ``default_risk`` is given (a team-defined operation's own risk): then people
        policy.yml knows may ask for it with that risk, and strangers may not.

        A request that reaches a deploy job (``JOB_KIND``) also needs what deploying to
        that job's environment needs: the first deploy rule on that environment applies
        too (its roles, its risk if higher, its approvers), whatever the request's own
        rule says. Pass the complete parameters shown in the preview: a ``when``
        condition on a parameter the request lacks does not match.
        """
        own = self._decide_own(intent, parameters, person, default_risk)
        if (not own.allowed or intent in DEPLOY_INTENTS
                or parameters.get(JOB_KIND) != "deploy"):
            return own
        job = self._decide_deploy_job(intent, parameters, person)
        if job is None or not job.allowed:
            return job or own
        approval = own.approval_roles + tuple(r for r in job.approval_roles
                                              if r not in own.approval_roles)
        return Decision(allowed=True, risk=max(own.risk, job.risk, key=RISKS.index),
                        approval_roles=approval, reason=None)

    def _decide_deploy_job(self, intent: str, parameters: Mapping[str, str],
                           person: str) -> Decision | None:
        """What the deploy rules say about a request that reaches a deploy job (None: no
        deploy rule names that job's environment)."""
        environment = parameters.get(JOB_ENVIRONMENT) or parameters.get("environment")
        if not environment:
            environment = "prod"  # a deploy job whose environment is not known: the strictest
        view = {**parameters, "environment": environment}
        if parameters.get(JOB_SERVICE):
            view["service"] = parameters[JOB_SERVICE]
        for rule in self._rules:
            if not rule.guards_deploy_jobs or not rule.holds(view):
                continue
            if not self.knows(person) and not self._admits_strangers(rule):
                return Decision(allowed=False, risk=rule.risk, approval_roles=rule.approval,
                                reason=self.stranger_reason(person))
            if not rule.roles or self.roles_of(person) & set(rule.roles):
                return Decision(allowed=True, risk=rule.risk, approval_roles=rule.approval,
                                reason=None)
            what = _describe(intent, {}, ())
            return Decision(
                allowed=False, risk=rule.risk, approval_roles=rule.approval,
                reason=f"{what} on a deploy job for {environment} "
                       f"{self._role_holders(rule, f'(as deploying to {environment} does)')}")
        return None

    def _decide_own(self, intent: str, parameters: Mapping[str, str], person: str,
                    default_risk: str | None) -> Decision:
        """The request's own rule (or the default of a team-defined operation's risk)."""
        stranger = not self.knows(person)
        for rule in self._rules:
            if not rule.matches(intent, parameters):
                continue
            risk = max(rule.risk, default_risk or "read", key=RISKS.index)
            if stranger and not self._admits_strangers(rule):
                return Decision(allowed=False, risk=risk, approval_roles=rule.approval,
                                reason=self.stranger_reason(person))
            if not rule.roles or self.roles_of(person) & set(rule.roles):
                return Decision(allowed=True, risk=risk, approval_roles=rule.approval,
                                reason=None)
            return Decision(allowed=False, risk=risk, approval_roles=rule.approval,
                            reason=self._needs_role(intent, parameters, rule))
        if default_risk is not None:
            if stranger:
                return Decision(allowed=False, risk=default_risk, approval_roles=(),
                                reason=self.stranger_reason(person))
            return Decision(allowed=True, risk=default_risk, approval_roles=(), reason=None)
        what = _describe(intent, parameters, [name for name in sorted(parameters)])
        return Decision(
            allowed=False, risk="critical", approval_roles=(),
            reason=f"No rule in policy.yml allows {what[0].lower() + what[1:]}. "
                   "Ask whoever looks after policy.yml to add one.",
        )

    def _admits_strangers(self, rule: _Rule) -> bool:
        """Default deny: a rule serves strangers if it says so, or names a role everyone has."""
        return rule.unknown or bool(set(rule.roles) & self._everyone_roles)

    def strangers_may(self, intent: str) -> bool:
        """Whether some rule lets people policy.yml does not name ask for ``intent`` at all."""
        return any(intent in rule.intents and self._admits_strangers(rule) for rule in self._rules)

    def strangers_may_ask(self) -> bool:
        """Whether any rule serves people policy.yml does not name."""
        return any(self._admits_strangers(rule) for rule in self._rules)

    def stranger_reason(self, person: str) -> str:
        """What a stranger is told: who opsbot thinks they are and how to be added."""
        channel, _, user_id = person.partition(":")
        if channel == "unverified" or not user_id:
            return ("I cannot tell who you are: this message did not come through a chat that "
                    "proves it (Telegram, Teams, Slack, or the REST channel with its token), so I "
                    "can only show help.")
        return (f"I don't know you yet, so I can only show help. To be added, give an admin "
                f"your {channel} id, {user_id} (policy.yml: people.<your name>.identities."
                f"{channel}).")

    def _needs_role(self, intent: str, parameters: Mapping[str, str], rule: _Rule) -> str:
        what = _describe(intent, parameters, [name for name, _ in rule.when])
        return f"{what} {self._role_holders(rule)}"

    def _role_holders(self, rule: _Rule, aside: str = "") -> str:
        """'needs the release-manager role, which alice and carol have.'"""
        holders = sorted({p for role in rule.roles for p in self.people_with(role)})
        if len(rule.roles) == 1:
            needs = f"needs the {rule.roles[0]} role"
        else:
            needs = f"needs one of the roles {_join(list(rule.roles), 'or')}"
        if aside:
            needs = f"{needs} {aside}"
        if not holders:
            return f"{needs}, which nobody has yet: it is given in policy.yml."
        verb = "has" if len(holders) == 1 else "have"
        return f"{needs}, which {_join(holders, 'and')} {verb}."


def _describe(intent: str, parameters: Mapping[str, str], names: Iterable[str]) -> str:
    """'Deploying to prod', 'Running a build with branch=main', from the named parameters."""
    kind = kind_of(intent)
    words = [kind.doing() if kind else f"The operation {intent}"]
    extras: list[str] = []
    for name in names:
        value = parameters.get(name)
        if value is None:
            continue
        if name == "environment":
            words.append(f"{kind.preposition if kind else 'on'} {value}")
        else:
            extras.append(f"{name}={value}")
    if extras:
        words.append("with " + ", ".join(extras))
    return " ".join(words)


def _join(items: list[str], conjunction: str) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def _check_keys(data: Mapping[Any, Any], allowed: set[str], where: str, fail: Any) -> None:
    unknown = sorted(str(k) for k in data if str(k) not in allowed)
    if unknown:
        raise fail(f"{where}: unknown key {unknown[0]!r} "
                   f"(allowed: {', '.join(sorted(allowed))}).")


def _names(value: Any, where: str, fail: Any) -> list[str]:
    """A list of non-empty strings (a single string counts as a list of one)."""
    if value is None:
        return []
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list):
        raise fail(f"{where} must be a list of names.")
    names: list[str] = []
    for item in value:
        if not isinstance(item, (str, int)) or isinstance(item, bool) or str(item).strip() == "":
            raise fail(f"{where} must be a list of names, not {item!r}.")
        names.append(str(item).strip())
    return names


def _parse_when(value: Any, where: str, fail: Any) -> tuple[tuple[str, frozenset[str]], ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise fail(f"{where}: when must map parameters to a value or a list of values.")
    conditions: list[tuple[str, frozenset[str]]] = []
    for name, accepted in value.items():
        values = accepted if isinstance(accepted, list) else [accepted]
        if not values or any(v is None or isinstance(v, (Mapping, list)) for v in values):
            raise fail(f"{where}: when.{name} must be a value or a list of values.")
        conditions.append((str(name), frozenset(_scalar(v).casefold() for v in values)))
    return tuple(conditions)


def _scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)
