"""The ``opsbot`` command line: train, chat, run and demo a Rasa-based ChatOps assistant.

    opsbot demo            everything on this machine, then a chat in the terminal
    opsbot demo --serve    the same without the chat, until SIGINT/SIGTERM
    opsbot train           train a model from data/
    opsbot run             the Rasa server and the action server
    opsbot shell           chat in the terminal (starts the servers if none answer)
    opsbot audit           the audit log: who asked for what, who confirmed, what ran
    opsbot teach           teach a phrasing ("ship it" means deploy), reviewed later
    opsbot review          accept or reject taught phrasings; retrain and reload
    opsbot operations      team-defined operations: list, check, new, run (a dry run)
    opsbot wishes          what people asked for that opsbot could not do, grouped
    opsbot catalog         each service's repository, Kubernetes selector and Jenkins jobs
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from actions import _redact
from opsbot import __version__
from opsbot._chat import chat
from opsbot._private import private_dir, write_private
from opsbot._processes import Stack, StartupError, http_get_json
from opsbot._quiet import warnings_to_log
from opsbot._tokens import API_TOKEN, REST_TOKEN, read_token
from opsbot._training import (
    CommandError,
    Training,
    current_model,
    latest_model,
    train_apart,
    train_model,
)
from opsbot.settings import Settings, SettingsError


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _require_model(settings: Settings) -> Path:
    model = latest_model(settings)
    if model is None:
        raise CommandError(
            f"There is no trained model in {settings.models}. Run 'opsbot train' first "
            "(or 'opsbot demo', which trains when needed)."
        )
    return model


def _check_event_secrets() -> None:
    """Stop before anything starts when an events token or secret is too short to be
    used: the endpoint would refuse every sender while opsbot announced it."""
    from connectors._event_settings import unusable_settings

    problems = unusable_settings(os.environ)
    if problems:
        raise CommandError("\n".join(problems))


def _check_catalog(env: dict[str, str] | None = None) -> None:
    """Stop before anything starts when the service catalog (OPSBOT_CATALOG) cannot be
    used; else say where the services come from."""
    from opsbot._catalog_cli import check_catalog

    print(check_catalog({**os.environ, **(env or {})}), flush=True)


def _demo_catalog_env() -> dict[str, str]:
    """The demo's service catalog (checkout's repository is acme/checkout-web), unless
    OPSBOT_CATALOG names the team's own."""
    if os.environ.get("OPSBOT_CATALOG"):
        return {}
    import simulators

    return {"OPSBOT_CATALOG": str(Path(simulators.__file__).resolve().parent / "data"
                                  / "catalog-info.yaml")}


def _start_servers(stack: Stack, model: Path, backend_env: dict[str, str] | None = None,
                   channel_env: dict[str, str] | None = None) -> None:
    from opsbot._operations_cli import check_operations

    problems = check_operations(stack.settings, backend_env)
    if problems:
        raise CommandError(problems)
    from actions.errors import ConfigError
    from opsbot._backend_checks import startup_lines

    try:
        lines = startup_lines({**os.environ, **(backend_env or {})})
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    print("Backends:\n" + "\n".join(lines), flush=True)
    stack.check_ports()
    print(f"Starting the action server on :{stack.settings.actions_port} and the Rasa server "
          f"on :{stack.settings.port} (logs in {stack.log_dir}) ...", flush=True)
    stack.start_action_server(backend_env)
    stack.start_rasa_server(model, channel_env)
    stack.wait_ready()
    # After the servers are up: with OPSBOT_TRAINER_IDLE_SECONDS=0 it starts now, and its
    # imports would slow theirs down.
    stack.start_trainer()


def _print_urls(settings: Settings, env: dict[str, str] | None, stack: Stack) -> None:
    base = f"http://{settings.host}:{settings.port}"
    env = {**os.environ, **(env or {})}
    where = settings.state_dir
    print("opsbot is running:")
    if REST_TOKEN in stack.tokens:
        told = "from OPSBOT_REST_TOKEN" if os.environ.get(REST_TOKEN) else f"in {where}/rest-token"
        print(f"  REST channel  POST {settings.rest_url}  (Authorization: Bearer <token {told}>)")
    else:
        print(f"  REST channel  off (set {REST_TOKEN} to turn it on)")
    if env.get("TELEGRAM_TOKEN"):
        if (env.get("TELEGRAM_MODE") or "polling").lower() == "webhook":
            print(f"  Telegram      webhook {base}/webhooks/telegram/webhook "
                  f"(public URL {env.get('TELEGRAM_WEBHOOK_URL')})")
        else:
            print(f"  Telegram      polling {env.get('TELEGRAM_API_URL') or 'https://api.telegram.org'}")
    if env.get("TEAMS_APP_ID"):
        print(f"  Teams         POST {base}/webhooks/teams/api/messages")
    if env.get("SLACK_BOT_TOKEN"):
        mode = (env.get("SLACK_MODE") or ("socket" if env.get("SLACK_APP_TOKEN") else "http"))
        if mode.lower() == "http":
            print(f"  Slack         POST {base}/webhooks/slack/webhook  (the app's Request URL "
                  "for events, interactivity and /opsbot)")
        else:
            print(f"  Slack         Socket Mode {env.get('SLACK_API_URL') or 'https://slack.com/api/'}")
    if env.get("OPSBOT_EVENTS_TOKEN") or env.get("GITHUB_WEBHOOK_SECRET"):
        sources = [s for s, v in (("alertmanager", "OPSBOT_EVENTS_TOKEN"),
                                  ("grafana", "OPSBOT_EVENTS_TOKEN"),
                                  ("jenkins", "OPSBOT_EVENTS_TOKEN"),
                                  ("github", "GITHUB_WEBHOOK_SECRET")) if env.get(v)]
        token = ("OPSBOT_EVENTS_TOKEN" if os.environ.get("OPSBOT_EVENTS_TOKEN")
                 else f"the token in {where}/events-token")
        secret = ("GITHUB_WEBHOOK_SECRET" if os.environ.get("GITHUB_WEBHOOK_SECRET")
                  else f"the secret in {where}/github-webhook-secret")
        print(f"  Events        POST {base}/webhooks/events/<{'|'.join(sources)}>  "
              f"(Authorization: Bearer <{token}>; GitHub: X-Hub-Signature-256 with {secret})")
    told = "OPSBOT_API_TOKEN" if os.environ.get(API_TOKEN) else f"the token in {where}/api-token"
    print(f"  Rasa HTTP API {base}/  (e.g. GET {base}/conversations/<sender>/tracker?token=..., "
          f"with {told})")
    print(f"  action server {settings.actions_url}")
    print("Stop it with Ctrl-C or SIGTERM.", flush=True)


def _serve_until_stopped(stack: Stack) -> None:
    while True:
        exited = stack.any_exited()
        if exited is not None:
            raise CommandError(
                f"The {exited.name} server stopped unexpectedly "
                f"(exit {exited.process.returncode}). "
                f"Its log: {exited.log_path}\n{stack.tail(exited)}"
            )
        time.sleep(0.5)


def train_fast(settings: Settings, force: bool = False) -> Path:
    """Train through the warm trainer of a running opsbot if one answers, else here."""
    from opsbot._trainer import train_remotely

    def starting(warm: bool) -> None:
        print("Training in the running opsbot's trainer ..." if warm else
              "Training in the running opsbot's trainer, which was idle and is starting "
              f"(it exits after {settings.trainer_idle_seconds:g} s without a retrain) ...",
              flush=True)

    answer = train_remotely(settings.state_dir, force, on_start=starting)
    if answer is None:
        return train_model(settings, force=force)
    if answer.get("error") or not answer.get("model"):
        raise CommandError(str(answer.get("error") or "the trainer gave no model"))
    training = Training(Path(str(answer["model"])), float(answer.get("seconds") or 0.0),
                        tuple(answer.get("trained") or ()), tuple(answer.get("restored") or ()))
    # A trainer started by an older opsbot does not say what it trained.
    said = f" ({training.summary()})" if "trained" in answer else ""
    print(f"Model ready in {training.seconds:.1f}s by the running opsbot's trainer{said}: "
          f"{training.model}", flush=True)
    return training.model


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    model = train_fast(settings, force=args.force)
    if args.reload:
        reload_model(settings, model)
    return 0


def reload_model(settings: Settings, model: Path) -> bool:
    """Ask the running opsbot to switch to ``model`` (it checks it first); True if it did."""
    import json
    import urllib.error
    import urllib.request

    url = f"http://{settings.host}:{settings.port}/webhooks/opsbot/reload"
    token = read_token(settings.state_dir, API_TOKEN)
    if token:
        url += f"?token={urllib.parse.quote(token, safe='')}"
    request = urllib.request.Request(url, data=json.dumps({"model": str(model)}).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=300) as answer:
            result = json.loads(answer.read().decode() or "{}")
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read().decode()).get("error")
        except ValueError:
            reason = None
        if exc.code == 404:
            raise CommandError(f"The server on port {settings.port} has no reload endpoint: is it "
                               "an opsbot started with 'opsbot run' or 'opsbot demo'?") from None
        if exc.code == 401:
            raise CommandError(
                f"The running opsbot refused the API token (HTTP 401). Set {API_TOKEN} to its "
                f"token, or run this where its state dir ({settings.state_dir}) is.") from None
        raise CommandError(f"The running opsbot refused the new model (HTTP {exc.code}): "
                           f"{reason or 'no reason given'}. "
                           "It keeps answering with the old one.") from None
    except (urllib.error.URLError, OSError):
        print(f"No opsbot is running on {settings.host}:{settings.port}; it will use the new "
              "model when it starts.", flush=True)
        return False
    shared = (" It is published to the other replicas, which take it within "
              "OPSBOT_MODEL_SYNC_SECONDS." if result.get("shared") else "")
    if result.get("reloaded"):
        print(f"The running opsbot now answers with {result.get('model')} (checked, no "
              f"restart).{shared}", flush=True)
    else:
        print(f"The running opsbot already uses {result.get('model')}.{shared}", flush=True)
    return bool(result.get("reloaded"))


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    settings.check_project()
    _check_event_secrets()
    _check_catalog()
    model = _require_model(settings)
    stack = Stack(settings)
    try:
        _start_servers(stack, model)
        _print_urls(settings, None, stack)
        _serve_until_stopped(stack)
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
    finally:
        stack.stop()
    return 0


def _running(settings: Settings) -> bool:
    """Whether an opsbot answers on the configured port (an open route of its server)."""
    return isinstance(http_get_json(
        f"http://{settings.host}:{settings.port}/webhooks/opsbot/health"), dict)


def cmd_shell(args: argparse.Namespace, settings: Settings) -> int:
    if _running(settings):
        token = read_token(settings.state_dir, REST_TOKEN)
        if not token:
            raise CommandError(
                f"An opsbot is running on {settings.host}:{settings.port}, but its REST channel "
                f"token is not known here. Set {REST_TOKEN} to the value that opsbot was "
                f"started with (its REST channel is off unless it was), or run opsbot shell "
                f"where its state dir is ({settings.state_dir}/rest-token).")
        return chat(settings.rest_url, args.user or settings.user, token=token,
                    api_token=read_token(settings.state_dir, API_TOKEN))
    settings.check_project()
    _check_event_secrets()
    _check_catalog()
    model = _require_model(settings)
    stack = Stack(settings, rest=True)
    try:
        _start_servers(stack, model)
        return chat(settings.rest_url, args.user or settings.user,
                    token=stack.tokens[REST_TOKEN], api_token=stack.tokens[API_TOKEN])
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    settings.check_project()
    _check_event_secrets()
    catalog_env = _demo_catalog_env()
    _check_catalog(catalog_env)
    stack = Stack(settings, rest=True)
    stack.check_ports()
    # A newcomer's first screen holds opsbot's lines only: the libraries' warnings and
    # training output go to the state dir's logs.
    warnings_to_log(stack.log_dir / "demo.log")
    model = current_model(settings) or train_apart(settings, quiet=True,
                                                   log=stack.log_dir / "train.log")
    from simulators import demo_backends

    backends = demo_backends()
    chat_sim = _chat_simulator(args.channel, settings)
    try:
        backend_env: dict[str, str] = dict(catalog_env)
        for backend in backends:
            backend.start(stack)
            backend_env.update(backend.env())
        channel_env: dict[str, str] = {}
        if chat_sim is not None:
            chat_sim.start()
            channel_env = chat_sim.env()
        print("Simulated backends:", flush=True)
        for backend in [*backends, *([chat_sim] if chat_sim is not None else [])]:
            print(f"  {backend.describe()}", flush=True)
        from opsbot._simulate import RandomEvents, Simulator

        events_env = _demo_events_env(settings)
        backend_env.update(events_env)
        # The Rasa server takes the webhooks and watches Jenkins for subscribed builds.
        _start_servers(stack, model, backend_env, {**backend_env, **channel_env})
        simulator = Simulator(f"http://{settings.host}:{settings.port}",
                              events_env.get("OPSBOT_EVENTS_TOKEN"),
                              events_env.get("GITHUB_WEBHOOK_SECRET"))
        if args.events:
            RandomEvents(simulator, sys.stdout).start()
        if args.serve:
            _print_urls(settings, {**channel_env, **events_env}, stack)
            if chat_sim is not None and args.channel == "slack":
                print(f"  slack simulator: the Web API at {chat_sim.api_url}; its people are "
                      "played from Python (SlackSimulator.say, .slash, .press: the docstring "
                      "of simulators/slack/ says how)", flush=True)
            elif chat_sim is not None:
                print(f"  {args.channel} simulator: play its users with POST "
                      f"{chat_sim.url.rstrip('/')}/_sim/users/<user>/send (the module docstring of "
                      f"simulators/{args.channel}.py lists the control API)", flush=True)
            _serve_until_stopped(stack)
            return 0
        if chat_sim is not None:
            from opsbot._sim_chat import (
                SimChannel,
                SlackChannel,
                TeamsChannel,
                TelegramChannel,
                sim_chat,
            )

            kinds: dict[str, Callable[[Any], SimChannel]] = {
                "telegram": TelegramChannel, "teams": TeamsChannel, "slack": SlackChannel}
            driven = kinds[args.channel](chat_sim)
            return sim_chat(driven, args.user or "alice", simulate=simulator.command)
        return chat(settings.rest_url, args.user or "alice", token=stack.tokens[REST_TOKEN],
                    api_token=stack.tokens[API_TOKEN], simulate=simulator.command)
    except KeyboardInterrupt:
        print("\nStopping ...", flush=True)
        return 0
    finally:
        stack.stop()
        for backend in backends:
            backend.stop()
        if chat_sim is not None:
            chat_sim.stop()


def _demo_events_env(settings: Settings) -> dict[str, str]:
    """The demo's event sources: OPSBOT_EVENTS_TOKEN and GITHUB_WEBHOOK_SECRET as set, or
    made for this run (written to the state dir, 0600, for scripts that post events)."""
    env: dict[str, str] = {}
    for variable, name in (("OPSBOT_EVENTS_TOKEN", "events-token"),
                           ("GITHUB_WEBHOOK_SECRET", "github-webhook-secret")):
        value = os.environ.get(variable) or secrets.token_urlsafe(24)
        write_private(private_dir(settings.state_dir) / name, value + "\n", encoding="utf-8")
        env[variable] = value
    env["OPSBOT_EVENTS_JENKINS_POLL"] = os.environ.get("OPSBOT_EVENTS_JENKINS_POLL") or "5"
    return env


def _chat_simulator(channel: str, settings: Settings) -> Any:
    """The Telegram, Teams or Slack simulator ``opsbot demo --channel`` talks through (None:
    terminal)."""
    if channel == "telegram":
        from simulators.telegram import TelegramSimulator

        return TelegramSimulator()
    if channel == "teams":
        from simulators.teams import TeamsSimulator

        teams = TeamsSimulator()
        teams.set_bot_endpoint(f"http://{settings.host}:{settings.port}/webhooks/teams/api/messages")
        return teams
    if channel == "slack":
        from simulators.slack import SlackSimulator

        # Socket Mode: the connector dials the simulator, as it dials Slack without a public
        # URL; about one message a second per channel, as Slack allows.
        return SlackSimulator(socket_mode=True, channel_interval=1.0)
    return None


def cmd_audit(args: argparse.Namespace, settings: Settings) -> int:
    """Print the latest audited operations, newest first, as a table or JSON; or --verify them."""
    os.environ.setdefault("OPSBOT_STATE_DIR", str(settings.state_dir))
    from actions.errors import OpsbotError
    from actions.guard import OperationStore
    from actions.guard._audit_view import format_json, format_table, parse_since

    if args.verify:
        return _verify_audit(OperationStore, OpsbotError, args.copy or [])
    if args.copy:
        raise CommandError("--copy goes with --verify: it names a copy to check the log against.")
    try:
        since = parse_since(args.since) if args.since else None
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if args.limit < 1:
        raise CommandError(f"--limit {args.limit}: give a positive number of operations.")
    try:
        store = OperationStore.from_env()
        try:
            records = store.audit_records(user=args.user, intent=args.intent, since=since,
                                          limit=args.limit)
        finally:
            store.close()
    except OpsbotError as exc:
        raise CommandError(_for_operators(exc)) from None
    if args.json:
        print(format_json(records))
    elif not records:
        print("No audited operations match." if (args.user or args.intent or since)
              else "The audit log is empty: nothing has been asked of opsbot yet.")
    else:
        print(format_table(records))
    return 0


def _verify_audit(store_class: Any, error: type[Exception], copies: Sequence[str]) -> int:
    """``opsbot audit --verify``: 0 and OK when the chain holds, else 1 and the first problem."""
    try:
        store = store_class.from_env()
        try:
            found = store.verify_audit(copies)
        finally:
            store.close()
    except error as exc:
        raise CommandError(_for_operators(exc)) from None
    before = (f"; {found.before_chain} row{'s' if found.before_chain != 1 else ''} from before "
              "the chain, sealed by its first row" if found.before_chain else "")
    if found.ok:
        head = f" Head: {found.head}." if found.head else ""
        print(f"OK: {found.rows} audit row{'s' if found.rows != 1 else ''} in the hash chain"
              f"{before}{_copies_checked(found)}.{head}")
        return 0
    print(f"opsbot audit: the audit log may have been tampered with: {found.problem} "
          f"({found.rows} rows verified before it{before}.)", file=sys.stderr)
    return 1


def _copies_checked(found: Any) -> str:
    """What the OK line says of OPSBOT_AUDIT_FILE: how many rows it vouched for, from where."""
    if found.copy is None:
        return ""
    if found.copies_from is None:
        return (f"; {found.copy} has no rows yet (new, or just rotated): nothing was checked "
                "against it")
    said = f"; {found.copies} checked against {found.copy}, from row {found.copies_from}"
    if found.uncopied:
        said += (f" (its first row: the {found.uncopied} row{'s' if found.uncopied != 1 else ''}"
                 " before it, written before it was set or rotated away, are vouched for by "
                 "the hash chain alone)")
    return said


def _for_operators(exc: Exception) -> str:
    """An error for the terminal: a store failure's details (URL masked) rather than the
    words meant for a chat."""
    detail = getattr(exc, "detail", None)
    reference = getattr(exc, "reference", None)
    if not detail:
        return str(exc)
    return f"{detail} (reference {reference})" if reference else str(detail)


def cmd_teach(args: argparse.Namespace, settings: Settings) -> int:
    from opsbot._teach import cmd_teach as teach

    return teach(args, settings, CommandError)


def cmd_review(args: argparse.Namespace, settings: Settings) -> int:
    from opsbot._teach import cmd_review as review

    def retrain(s: Settings) -> None:
        reload_model(s, train_fast(s))

    return review(args, settings, CommandError, retrain)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="opsbot", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--version", action="version", version=f"opsbot {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    def with_ports(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--port", type=int, help="Rasa server port (default $OPSBOT_PORT or 5005)")
        sub.add_argument("--actions-port", type=int,
                         help="action server port (default $OPSBOT_ACTIONS_PORT or 5055)")

    train = commands.add_parser("train", help="train the model from data/ (only what changed)")
    train.add_argument("--force", action="store_true", help="retrain everything")
    train.add_argument("--reload", action="store_true",
                       help="then switch the running opsbot (on --port) to the new model, "
                            "without a restart; a model that fails its check is refused")
    with_ports(train)
    train.set_defaults(func=cmd_train)

    run = commands.add_parser("run", help="run the Rasa server and the action server")
    with_ports(run)
    run.set_defaults(func=cmd_run)

    shell = commands.add_parser("shell", help="chat in the terminal")
    shell.add_argument("--user",
                       help="who you are in the chat (default $OPSBOT_USER or your login)")
    with_ports(shell)
    shell.set_defaults(func=cmd_shell)

    demo = commands.add_parser("demo", help="everything on this machine, then a terminal chat")
    demo.add_argument("--serve", action="store_true",
                      help="no terminal chat: serve the REST channel until SIGINT/SIGTERM")
    demo.add_argument("--user", help="who you are in the chat (default alice)")
    demo.add_argument("--channel", choices=("terminal", "telegram", "teams", "slack"),
                      default="terminal",
                      help="chat straight through the REST channel (terminal, the default), or "
                           "as a user of the simulated Telegram, Teams or Slack, "
                           "through opsbot's connector")
    demo.add_argument("--events", action="store_true",
                      help="fire realistic alerts and failed PR checks now and then (as "
                           "/simulate does in the chat)")
    with_ports(demo)
    demo.set_defaults(func=cmd_demo)

    from opsbot._catalog_cli import add_command as add_catalog
    from opsbot._operations_cli import add_commands as add_operations
    from opsbot._teach import add_commands
    from opsbot._wishes_cli import add_command as add_wishes

    add_commands(commands, with_ports, cmd_teach, cmd_review)
    add_operations(commands)
    add_wishes(commands)
    add_catalog(commands)

    audit = commands.add_parser(
        "audit", help="show the audit log: who asked for what, who confirmed, what ran",
        description="The latest operations from the audit log ($OPSBOT_DB_URL, default "
                    "SQLite in $OPSBOT_STATE_DIR), newest first.")
    audit.add_argument("--user",
                       help="only operations this person asked for, confirmed or approved")
    audit.add_argument("--intent", help="only this intent, e.g. deploy")
    audit.add_argument("--since", help="only newer than this: 30m, 2h, 7d or an ISO date/time")
    audit.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    audit.add_argument("--json", action="store_true", help="JSON instead of a table")
    audit.add_argument("--verify", action="store_true",
                       help="walk the audit log's hash chain and check it against "
                            "$OPSBOT_AUDIT_FILE: print OK, or the first row that was changed, "
                            "deleted or inserted and exit 1")
    audit.add_argument("--copy", action="append", metavar="FILE",
                       help="with --verify: another copy to check against together with "
                            "$OPSBOT_AUDIT_FILE, such as a replica's on another host (repeatable)")
    audit.set_defaults(func=cmd_audit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    _redact.install()
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        overrides = {}
        if getattr(args, "port", None):
            overrides["port"] = args.port
        if getattr(args, "actions_port", None):
            overrides["actions_port"] = args.actions_port
        for name, value in overrides.items():
            if not 0 < value < 65536:
                raise SettingsError(f"--{name.replace('_', '-')} {value} is not a port (1-65535).")
        settings = dataclasses.replace(settings, **overrides)
        signal.signal(signal.SIGTERM, _raise_interrupt)
        return int(args.func(args, settings))
    except (CommandError, SettingsError, StartupError) as exc:
        print(f"opsbot {args.command}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
