"""``opsbot operations``: list, check, create and dry-run team-defined operations.

    opsbot operations list                   name, risk, runner and file of each operation
    opsbot operations check                  every problem in every file (exit 1 if any)
    opsbot operations new NAME [--dir DIR]   a commented template to start from
                      [--from-wish ID ...]   ... whose examples are what people asked for
    opsbot operations run NAME key=value ... the exact argv / request it would send (dry run)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

from opsbot.settings import Settings

__all__ = ["EXAMPLES", "TEMPLATE", "add_commands", "check_operations"]

TEMPLATE = '''# {name}: a team-defined operation (docs/operations.md).
# Check it with `opsbot operations check`, try it with `opsbot operations run {name} ...`,
# then `opsbot train` (and `--reload` while opsbot runs) makes it understood in the chat.
name: {name}                  # the intent name: lowercase letters, digits and _
description: {description}    # the help text and the preview's first words
examples:                     # at least 5 ways of asking; [value](parameter) marks a value
{examples}parameters:
  # types: service, environment, version, job, issue_key, integer (min, max),
  # choice (choices), text (max_length, pattern), duration (min, max).
  # A parameter with a default is optional; otherwise it is required unless
  # `required: false`. A missing required value is asked for in the chat.
  service:     {{type: service, required: true}}
  environment: {{type: environment, required: true}}
  # count:     {{type: integer, min: 1, max: 20, default: 2}}
  # mode:      {{type: choice, choices: [graceful, hard], default: graceful}}
  # reason:    {{type: text, required: false, max_length: 200}}
risk: change                  # read (answered at once) | change | critical (confirmed first)
run:                          # exactly one of command, http or jenkins
  # An argv list, never a shell: each {{placeholder}} fills one whole argument.
  # Relative paths start at this file's folder.
  command: [echo, "{verb}", "{{service}}", "{{environment}}"]
  env: {{}}                     # e.g. {{DEPLOY_KEY: "${{DEPLOY_KEY}}"}}: secrets by reference only
  timeout: 5m
  # http: {{method: POST, url: "https://cdn.example/purge/{{service}}",
  #        headers: {{Authorization: "Bearer ${{CDN_TOKEN}}"}}, json: {{env: "{{environment}}"}},
  #        expect: [200, 202], timeout: 30s}}
  # jenkins: {{job: "some-job", parameters: {{SERVICE: "{{service}}"}}, follow: true}}
success: "{Verb}ed {{service}} on {{environment}}."
'''


EXAMPLES = (
    "{verb} [payments](service) on [prod](environment)",
    "please {verb} [checkout](service) in [staging](environment)",
    "can you {verb} [search](service) on [production](environment)",
    "{verb} the [billing](service) service in [dev](environment)",
    "I need you to {verb} [auth](service) on [stage](environment)",
)
"""The template's examples: what a new operation's examples look like."""


def check_operations(settings: Settings, env: dict[str, str] | None = None) -> str | None:
    """Every problem of the operation files for a run with ``env`` (None if there is none)."""
    from actions.operations import load_operations

    loaded = load_operations(settings.project, {**os.environ, **(env or {})}, check_env=True)
    if not loaded.errors:
        return None
    return ("The operation files have problems; opsbot does not start with them:\n"
            + "\n".join(f"  {e}" for e in loaded.errors))


def _loaded(settings: Settings, check_env: bool = True) -> Any:
    from actions.operations import load_operations

    return load_operations(settings.project, check_env=check_env)


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    loaded = _loaded(settings, check_env=False)
    rows = [{"name": s.name, "risk": s.risk, "runner": s.runner, "file": _shown(s.path),
             "description": s.description} for s in sorted(loaded.operations.values(),
                                                           key=lambda s: s.name)]
    if args.json:
        print(json.dumps({"operations": rows, "errors": [str(e) for e in loaded.errors]},
                         indent=2))
        return 1 if loaded.errors else 0
    if not rows:
        print("No operations. Create one with 'opsbot operations new NAME'.")
    else:
        widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in ("name", "risk", "runner")}
        print(f"{'NAME':<{widths['name']}}  {'RISK':<{widths['risk']}}  "
              f"{'RUNNER':<{widths['runner']}}  FILE")
        for r in rows:
            print(f"{r['name']:<{widths['name']}}  {r['risk']:<{widths['risk']}}  "
                  f"{r['runner']:<{widths['runner']}}  {r['file']}")
    if loaded.errors:
        print(f"\n{len(loaded.errors)} problem(s) keep operations out of this list; run "
              "'opsbot operations check'.", file=sys.stderr)
        return 1
    return 0


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    loaded = _loaded(settings)
    for error in loaded.errors:
        print(error, file=sys.stderr)
    if loaded.errors:
        print(f"{len(loaded.errors)} problem(s) in {len(loaded.files)} file(s).", file=sys.stderr)
        return 1
    names = ", ".join(sorted(loaded.operations)) or "none"
    print(f"{len(loaded.files)} operation file(s) OK: {names}.")
    return 0


def cmd_new(args: argparse.Namespace, settings: Settings) -> int:
    from opsbot._training import CommandError

    name = args.name
    if not re.match(r"^[a-z][a-z0-9_]{0,63}$", name):
        raise CommandError(f"{name!r} is not an operation name: lowercase letters, digits and _, "
                           "starting with a letter (it becomes the intent name).")
    from actions.operations import builtin_intents

    if name in builtin_intents(settings.project):
        raise CommandError(f"{name} is one of opsbot's built-in intents; an operation needs a "
                           f"name of its own (e.g. team_{name}).")
    folder = Path(args.dir) if args.dir else settings.project / "operations"
    path = folder / f"{name}.yml"
    if path.exists():
        raise CommandError(f"{path} exists already; edit it, or choose another name.")
    verb = name.split("_")[0]
    asked: list[str] = []
    covers: list[str] = []
    if args.from_wish:
        from opsbot._wishes_cli import wish_examples

        asked, covers = wish_examples(settings, args.from_wish)
    folder.mkdir(parents=True, exist_ok=True)
    path.write_text(TEMPLATE.format(name=name, verb=verb, Verb=verb.capitalize(),
                                    description=name.replace("_", " ").capitalize(),
                                    examples=_examples(verb, asked, covers)),
                    encoding="utf-8")
    print(f"Wrote {path}. Edit it, then: opsbot operations check && opsbot train")
    if covers:
        from opsbot._wishes_cli import cover

        cover(settings, covers, name)
        print(f"Its examples start with what people asked ({len(asked)} way"
              f"{'s' if len(asked) != 1 else ''}); the wishes {', '.join(covers)} are "
              f"covered by {name} now. Mark the values in them, like [payments](service).")
    return 0


def _examples(verb: str, asked: list[str], wishes: list[str]) -> str:
    """The example lines: what people asked (YAML-quoted: it is data), then as many of
    the template's as it takes to have five."""
    import yaml

    from actions.operations._spec import MIN_EXAMPLES

    lines = [f"  - {e.format(verb=verb)}" for e in EXAMPLES]
    if asked:
        fill = lines[:max(0, MIN_EXAMPLES - len(asked))]
        lines = [f"  # what people asked for (wishes {', '.join(wishes)}):"]
        lines += ["  - " + yaml.safe_dump(text, default_style='"', allow_unicode=True,
                                          width=1 << 16).strip() for text in asked]
        if fill:
            lines += ["  # and ways of asking to adapt or delete:", *fill]
    return "".join(f"{line}\n" for line in lines)


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from actions.errors import OpsbotError
    from actions.operations import prepare
    from opsbot._training import CommandError

    loaded = _loaded(settings, check_env=False)
    spec = loaded.operations.get(args.name)
    if spec is None:
        known = ", ".join(sorted(loaded.operations)) or "none"
        bad = [str(e) for e in loaded.errors if e.path.stem == args.name]
        raise CommandError(f"There is no operation {args.name} (known: {known})."
                           + ("\n" + "\n".join(bad) if bad else ""))
    given: dict[str, str] = {}
    for item in args.values:
        key, sep, value = item.partition("=")
        if not sep:
            raise CommandError(f"{item!r}: give values as name=value.")
        if spec.parameter(key) is None:
            names = ", ".join(p.name for p in spec.parameters) or "none"
            raise CommandError(f"{spec.name} has no parameter {key} (it has: {names}).")
        given[key] = value
    values: dict[str, str] = {}
    problems = []
    for parameter in spec.parameters:
        raw = given.get(parameter.name)
        if raw is None:
            if parameter.default is not None:
                values[parameter.name] = parameter.default
            elif parameter.required:
                problems.append(f"{parameter.name} is required ({parameter.allowed()}).")
            continue
        value, problem = parameter.normalise(raw)
        if problem:
            problems.append(f"{parameter.name}: {problem}; it takes {parameter.allowed()}.")
        else:
            values[parameter.name] = str(value)
    if problems:
        raise CommandError("Nothing would run:\n" + "\n".join(f"  {p}" for p in problems))
    try:
        prepared = prepare(spec, values, requester=args.requester_given or "you",
                           operation_id="op-dry-run")
    except OpsbotError as exc:
        raise CommandError(f"Nothing would run: {exc}") from None
    print(f"Dry run of {spec.name} ({spec.risk}; nothing is sent):")
    print(prepared.show())
    services = [p.name for p in spec.parameters if p.type in ("service", "job")]
    if services:
        print(f"({', '.join(services)} would also be checked against Jenkins in the chat.)")
    refused = _policy_lines(settings, spec, values, prepared, args.requester_given)
    return 1 if refused else 0


def _policy_lines(settings: Settings, spec: Any, values: dict[str, str], prepared: Any,
                  requester: str | None) -> bool:
    """Print what policy.yml says of this call, as the chat's guard would decide it (for
    ``requester``, or for each person it names); True when ``requester`` is refused."""
    from actions.guard import Policy
    from actions.operations._runs import JenkinsRun

    policy = Policy.from_env(settings.project)
    decided = dict(values)
    if isinstance(spec.run, JenkinsRun):
        reach, note = _jenkins_reach(prepared)
        decided.update(reach)
        print(note)
    people = [requester] if requester else policy.people()
    refused = False
    for person in people:
        decision = policy.decide(spec.name, decided, person, default_risk=spec.risk)
        if not decision.allowed:
            refused = refused or person == requester
            print(f"policy.yml: {person} may not run it: {decision.reason}")
            continue
        steps = [f"{person} confirms" if decision.needs_confirmation else "answered at once"]
        if decision.needs_approval:
            steps.append(f"then a second person with the {' or '.join(decision.approval_roles)} "
                         "role approves (in Telegram or Teams)")
        print(f"policy.yml: {person} may run it ({decision.risk}; {', '.join(steps)}).")
    if not people:
        print("policy.yml names nobody, so opsbot would run it for no one (default deny).")
    return refused


def _jenkins_reach(prepared: Any) -> tuple[dict[str, str], str]:
    """What the job reaches (for the policy), asked of the Jenkins in the environment."""
    import asyncio

    from actions.backends.jenkins import JENKINS
    from actions.errors import OpsbotError
    from actions.guard.policy import JOB_ENVIRONMENT
    from actions.guard.reach import job_reach

    unknown = (f"(Whether {prepared.job} is a deploy job, which adds the deploy rules, is "
               "checked against Jenkins in the chat")
    try:
        backend = JENKINS.from_env(os.environ)
        if backend is None:
            return {}, f"{unknown}; JENKINS_URL is not set here.)"
        job = asyncio.run(backend.job(prepared.job))
        defaults = asyncio.run(backend.parameter_defaults(job.full_name))
    except OpsbotError as exc:
        return {}, f"{unknown}; Jenkins could not be asked: {exc})"
    reach = job_reach(job, prepared.parameters, defaults)
    if not reach:
        return {}, f"{job.full_name} is not a deploy job."
    environment = reach[JOB_ENVIRONMENT]
    return reach, (f"{job.full_name} is a deploy job: this deploys to {environment}, so the "
                   f"rules for deploying to {environment} apply.")


def _shown(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def add_commands(commands: Any) -> None:
    """``opsbot operations ...``, for ``opsbot.cli.build_parser``."""
    operations = commands.add_parser(
        "operations", help="team-defined operations: list, check, new, run (dry run)")
    sub = operations.add_subparsers(dest="operations_command", metavar="SUBCOMMAND")
    sub.required = True
    listing = sub.add_parser("list", help="name, risk, runner and file of each operation")
    listing.add_argument("--json", action="store_true", help="print JSON")
    listing.set_defaults(func=cmd_list)
    check = sub.add_parser("check", help="check every operation file (exit 1 on any problem)")
    check.set_defaults(func=cmd_check)
    new = sub.add_parser("new", help="write a commented template for a new operation")
    new.add_argument("name", help="the operation's name (its intent): e.g. restart_service")
    new.add_argument("--dir", help="the folder to write to (default: the project's operations/)")
    new.add_argument("--from-wish", action="append", metavar="ID",
                     help="start the examples from this wish's group, as 'opsbot wishes' "
                          "lists it, and mark those wishes covered by NAME (repeatable)")
    new.set_defaults(func=cmd_new)
    run = sub.add_parser("run", help="print the exact argv or request an operation would send")
    run.add_argument("name", help="the operation")
    run.add_argument("values", nargs="*", metavar="name=value", help="its parameters")
    run.add_argument("--requester", dest="requester_given", metavar="NAME",
                     help="who asks: fills {requester}, and policy.yml's verdict is given for "
                          "this person only (exit 1 if refused); default: every person's")
    run.set_defaults(func=cmd_run)
