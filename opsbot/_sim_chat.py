"""The terminal chat of ``opsbot demo --channel telegram|teams|slack``: you play the team.

You type into the Telegram, Teams or Slack simulator as one of its users (alice by default),
in the team's group or channel, where opsbot answers when addressed; the simulator
carries it to opsbot's connector over the real wire protocol, and what opsbot sends
back (messages, buttons, edited messages, the build results it pushes later) is
printed here. ``/as bob`` switches person, so you can watch bob's click on alice's
Confirm being refused.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from opsbot._chat import read_lines

__all__ = ["SimChannel", "SlackChannel", "TeamsChannel", "TelegramChannel", "sim_chat"]


@dataclass(frozen=True)
class Shown:
    """One bot message as the chat shows it."""

    key: str
    text: str
    buttons: tuple[str, ...]


class SimChannel(Protocol):
    """A simulated chat service the terminal can drive."""

    where: str
    users: tuple[str, ...]

    def say(self, user: str, text: str) -> None: ...

    def press(self, user: str, key: str, title: str) -> None: ...

    def messages(self) -> list[Shown]: ...


class TelegramChannel:
    """The Telegram simulator's group "ops"; messages mention the bot, as people do there."""

    def __init__(self, sim: Any) -> None:
        from simulators.telegram import ALICE, BOB, CAROL, OPS_GROUP

        self.sim = sim
        self.group = OPS_GROUP
        self.ids = {"alice": ALICE, "bob": BOB, "carol": CAROL}
        self.users = tuple(self.ids)
        self.where = f"the Telegram group 'ops' (bot @{sim.bot_username})"

    def say(self, user: str, text: str) -> None:
        mention = f"@{self.sim.bot_username}"
        body = text if mention in text or text.startswith("/") else f"{mention} {text}"
        self.sim.send_text(self.ids[user], body, chat_id=self.group)

    def press(self, user: str, key: str, title: str) -> None:
        self.sim.press(self.ids[user], self.group, int(key), title=title)

    def messages(self) -> list[Shown]:
        shown = []
        for message in self.sim.bot_messages(self.group):
            markup = message.get("reply_markup") or {}
            buttons = tuple(b["text"] for row in markup.get("inline_keyboard", []) for b in row)
            shown.append(Shown(f"{message['message_id']}", message.get("plain_text") or "",
                               buttons))
        return shown


class TeamsChannel:
    """The Teams simulator's channel; each of your messages mentions the bot."""

    def __init__(self, sim: Any) -> None:
        from simulators.teams import text_of

        self.sim = sim
        self.text_of = text_of
        self.users: tuple[str, ...] = ("alice", "bob", "carol")
        self.where = "the Teams channel 'ops' (the bot is @mentioned)"
        self.thread: str | None = None

    def say(self, user: str, text: str) -> None:
        status, body = self.sim.send_text(user, text, conversation="channel", thread=self.thread)
        if self.thread is None:  # the first message starts the thread the chat goes on in
            self.thread = str(self.sim.user_activities()[-1]["activity"]["id"])
        if status >= 400:
            raise RuntimeError(f"the bot answered HTTP {status}: {body}")

    def press(self, user: str, key: str, title: str) -> None:
        status, body = self.sim.submit(user, key, title=title)
        if status >= 400:
            raise RuntimeError(f"the bot answered HTTP {status}: {body}")

    def messages(self) -> list[Shown]:
        shown = []
        for activity in self.sim.bot_activities("channel"):
            actions = [a for attachment in activity.get("attachments") or []
                       for a in (attachment.get("content") or {}).get("actions") or []]
            buttons = tuple(str(a.get("title")) for a in actions)
            shown.append(Shown(str(activity.get("id")), self.text_of(activity), buttons))
        return shown


class SlackChannel:
    """The Slack simulator's channel #ops; messages mention the bot, as people do there.

    A line that starts with ``/opsbot`` is the slash command. What opsbot shows one person
    only (an ephemeral message, such as bob's refused press) is printed with their name.
    """

    def __init__(self, sim: Any) -> None:
        from simulators.slack import ALICE, BOB, BOT_USER, CAROL, OPS_CHANNEL

        self.sim = sim
        self.channel = OPS_CHANNEL
        self.bot = BOT_USER
        self.ids = {"alice": ALICE, "bob": BOB, "carol": CAROL}
        self.users = tuple(self.ids)
        self.where = "the Slack channel #ops (each message mentions @opsbot)"

    def say(self, user: str, text: str) -> None:
        if text.split()[0] == "/opsbot":
            self.sim.slash(self.ids[user], self.channel, text[len("/opsbot"):].strip())
            return
        mention = f"<@{self.bot}>"
        self.sim.say(self.ids[user], self.channel,
                     text if mention in text else f"{mention} {text}")

    def press(self, user: str, key: str, title: str) -> None:
        self.sim.press(self.ids[user], self.channel, key, title=title)

    def messages(self) -> list[Shown]:
        shown = []
        for message in self.sim.messages(self.channel):
            if not message.get("bot_id") or message.get("deleted"):
                continue
            blocks = message.get("blocks") or []
            buttons = tuple(str(e["text"]["text"]) for b in blocks if b.get("type") == "actions"
                            for e in b.get("elements") or [] if e.get("type") == "button")
            shown.append(Shown(str(message["ts"]), _slack_words(blocks, message.get("text")),
                               buttons))
        for name, user in self.ids.items():
            for index, note in enumerate(self.sim.ephemerals(user)):
                if note.get("channel") == self.channel:
                    words = _slack_words(note.get("blocks") or [], note.get("text"))
                    shown.append(Shown(f"{user}-{index}", f"(only {name} sees this) {words}", ()))
        return shown


def _slack_words(blocks: list[dict[str, Any]], fallback: Any) -> str:
    """What a Slack message shows: its sections' and context lines' text, unescaped."""
    parts = [str(b["text"].get("text") or "") for b in blocks
             if b.get("type") == "section" and isinstance(b.get("text"), dict)]
    parts += [str(e.get("text") or "") for b in blocks if b.get("type") == "context"
              for e in b.get("elements") or []]
    text = "\n".join(parts) if parts else str(fallback or "")
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


HELP = ("Type a message and press Enter; opsbot answers in {where}. A number presses that "
        "button. /as NAME speaks as another person ({users}). /simulate fires a demo event "
        "(/simulate help). /quit (or Ctrl-D) leaves.")


def sim_chat(channel: SimChannel, user: str = "alice", read: Callable[[str], str] = input,
             out: TextIO | None = None, quiet_after: float = 1.5,
             simulate: Callable[[str], str] | None = None) -> int:
    """Chat through ``channel`` until /quit or end of input."""
    out = out or sys.stdout
    if user not in channel.users:
        raise ValueError(f"{user!r} is not a user of the simulator; "
                         f"choose one of {', '.join(channel.users)}")
    out.write(f"Chatting as {user} in {channel.where}.\n"
              + HELP.format(where=channel.where, users=", ".join(channel.users)) + "\n")
    lock = threading.Lock()
    seen: dict[str, Shown] = {m.key: m for m in channel.messages()}
    buttons: list[tuple[str, str]] = []
    stopped = threading.Event()
    current = [user]

    def show_new() -> bool:
        """Print new and edited bot messages; True if there were any."""
        nonlocal buttons
        changed = False
        for message in channel.messages():
            before = seen.get(message.key)
            if before == message:
                continue
            seen[message.key] = message
            changed = True
            label = "opsbot>" if before is None else "opsbot (edited)>"
            for line in message.text.splitlines() or [""]:
                out.write(f"{label} {line}\n")
            if message.buttons:
                buttons = [(message.key, title) for title in message.buttons]
                for number, title in enumerate(message.buttons, 1):
                    out.write(f"   [{number}] {title}\n")
        out.flush()
        return changed

    def follow() -> None:
        while not stopped.wait(1.0):
            with lock:
                if show_new():
                    out.write(f"{current[0]}> ")
                    out.flush()

    watcher = threading.Thread(target=follow, name="opsbot-sim-chat", daemon=True)
    watcher.start()
    try:
        help_text = HELP.format(where=channel.where, users=", ".join(channel.users))
        for line in read_lines(read, lambda: f"{current[0]}> ", out, help_text):
            if simulate is not None and line.split()[0] == "/simulate":
                out.write(simulate(line) + "\n")
                with lock:
                    _wait_for_replies(show_new, quiet_after, limit=5.0)
                continue
            if line.startswith("/as"):
                name = line[3:].strip().lower()
                if name not in channel.users:
                    out.write(f"Who? Choose one of {', '.join(channel.users)}.\n")
                else:
                    current[0] = name
                continue
            with lock:
                try:
                    if line.isdigit() and buttons:
                        index = int(line) - 1
                        if not 0 <= index < len(buttons):
                            out.write(f"There is no button {line}; choose 1-{len(buttons)}.\n")
                            continue
                        key, title = buttons[index]
                        channel.press(current[0], key, title)
                    else:
                        channel.say(current[0], line)
                except (LookupError, RuntimeError, ValueError, ConnectionError) as exc:
                    out.write(f"error: {exc}\n")
                    continue
                _wait_for_replies(show_new, quiet_after)
        return 0
    finally:
        stopped.set()


def _wait_for_replies(show_new: Callable[[], bool], quiet_after: float,
                      limit: float = 30.0) -> None:
    """Print replies as they come, until none came for ``quiet_after`` seconds."""
    start = last = time.monotonic()
    got_any = False
    while time.monotonic() - start < limit:
        if show_new():
            got_any, last = True, time.monotonic()
        elif time.monotonic() - last > (quiet_after if got_any else limit):
            return
        time.sleep(0.1)
