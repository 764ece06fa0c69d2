"""The terminal chat: talks to a running opsbot through Rasa's REST channel."""

from __future__ import annotations

import json
import sys
import threading
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any, TextIO

HELP = (
    "Type a message and press Enter. When opsbot offers buttons, type the button's "
    "number to press it. /quit (or Ctrl-D) leaves the chat."
)


class ChatError(RuntimeError):
    """The REST channel did not answer; the message says what to check."""


def send(url: str, sender: str, message: str, timeout: float = 60.0,
         token: str | None = None) -> list[dict[str, Any]]:
    """Post one message to the REST channel (with its bearer ``token``); the bot's replies."""
    body = json.dumps({"sender": sender, "message": message}).encode()
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            replies = json.loads(response.read().decode() or "[]")
    except urllib.error.HTTPError as exc:
        if exc.code == 401:
            raise ChatError(
                f"opsbot refused the REST token at {url} (HTTP 401). Set OPSBOT_REST_TOKEN to "
                "the running opsbot's token (opsbot demo writes its token to "
                "<state dir>/rest-token).") from exc
        if exc.code == 404:
            raise ChatError(
                f"opsbot has no REST channel at {url} (HTTP 404): start it with "
                "OPSBOT_REST_TOKEN set (opsbot run) or use opsbot demo.") from exc
        raise ChatError(f"opsbot answered HTTP {exc.code} at {url}.") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise ChatError(f"Cannot reach opsbot at {url} ({exc}). Is it running?") from exc
    except ValueError as exc:
        raise ChatError(f"opsbot's answer at {url} was not JSON.") from exc
    return replies if isinstance(replies, list) else []


def render(replies: list[dict[str, Any]], out: TextIO) -> list[dict[str, Any]]:
    """Print replies; return the buttons offered (numbered from 1 in the output)."""
    buttons: list[dict[str, Any]] = []
    for reply in replies:
        if reply.get("text"):
            for line in str(reply["text"]).splitlines() or [""]:
                out.write(f"opsbot> {line}\n")
        for button in reply.get("buttons") or []:
            buttons.append(button)
            out.write(f"   [{len(buttons)}] {button.get('title', button.get('payload'))}\n")
        if reply.get("image"):
            out.write(f"opsbot> (image) {reply['image']}\n")
    if not replies:
        out.write("opsbot> (no reply)\n")
    out.flush()
    return buttons


class _Announcements(threading.Thread):
    """Prints what opsbot says on its own (a build finished) between the user's messages.

    The REST channel only answers requests, so this polls the conversation's tracker
    (Rasa's HTTP API) for bot messages that no request of ours returned.
    """

    def __init__(self, url: str, user: str, out: TextIO, interval: float = 1.0,
                 api_token: str | None = None) -> None:
        super().__init__(name="opsbot-announcements", daemon=True)
        base = url.split("/webhooks/", 1)[0]
        self.tracker_url = f"{base}/conversations/{urllib.parse.quote(user, safe='')}/tracker"
        if api_token:
            self.tracker_url += "?token=" + urllib.parse.quote(api_token, safe="")
        self.user, self.out, self.interval = user, out, interval
        self.lock = threading.Lock()
        # Buttons of a message printed here (an alert's next steps), for the chat to press.
        self.fresh: list[dict[str, Any]] | None = None
        self.stopped = threading.Event()
        self.seen = self._count()

    def _events(self) -> list[dict[str, Any]] | None:
        try:
            with urllib.request.urlopen(self.tracker_url, timeout=5) as response:
                events = json.loads(response.read().decode()).get("events")
        except (urllib.error.URLError, OSError, ValueError, AttributeError):
            return None
        return events if isinstance(events, list) else None

    def _count(self) -> int:
        events = self._events()
        return len(events) if events is not None else 0

    def sync(self, replied: list[str]) -> None:
        """After a request (holding ``lock``): print the bot messages it did not return, and
        mark all of them seen."""
        events = self._events()
        if events is None:
            return
        unanswered = list(replied)
        extra = []
        for event in events[self.seen:]:
            text = event.get("text") if event.get("event") == "bot" else None
            if not text:
                continue
            if text in unanswered:
                unanswered.remove(text)
            else:
                extra.append(_reply_of(event))
        self.seen = len(events)
        if extra:
            self._show(extra)

    def _show(self, replies: list[dict[str, Any]]) -> None:
        offered = render(replies, self.out)
        if offered:
            self.fresh = offered

    def run(self) -> None:
        while not self.stopped.wait(self.interval):
            with self.lock:
                events = self._events()
                if events is None or len(events) <= self.seen:
                    continue
                new, self.seen = events[self.seen:], len(events)
                replies = [_reply_of(e) for e in new if e.get("event") == "bot" and e.get("text")]
                if replies:
                    self.out.write("\n")
                    self._show(replies)
                    self.out.write(f"{self.user}> ")
                    self.out.flush()


def _reply_of(event: dict[str, Any]) -> dict[str, Any]:
    """A bot event of the tracker as a reply (its text and buttons)."""
    data = event.get("data") if isinstance(event.get("data"), dict) else {}
    return {"text": event.get("text"), "buttons": (data or {}).get("buttons") or []}


def chat(
    url: str,
    user: str,
    read: Callable[[str], str] = input,
    out: TextIO | None = None,
    announcements: bool = True,
    token: str | None = None,
    api_token: str | None = None,
    simulate: Callable[[str], str] | None = None,
) -> int:
    """Run the chat loop until /quit or end of input.

    ``token`` is the REST channel's bearer token; ``api_token`` lets the chat read the
    conversation for announcements (without it, none are shown).
    """
    out = out or sys.stdout
    out.write(f"Chatting with opsbot as '{user}'. {HELP}\n")
    buttons: list[dict[str, Any]] = []
    pusher = _Announcements(url, user, out, api_token=api_token) \
        if announcements and api_token else None
    if pusher is not None:
        pusher.start()
    try:
        return _loop(url, user, read, out, buttons, pusher, token, simulate)
    finally:
        if pusher is not None:
            pusher.stopped.set()


def read_lines(read: Callable[[str], str], prompt: Callable[[], str], out: TextIO,
               help_text: str) -> Iterator[str]:
    """The user's lines until /quit, /exit or end of input; /help is answered here."""
    while True:
        try:
            line = read(prompt()).strip()
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return
        if line == "/help":
            out.write(help_text + "\n")
            continue
        yield line


def _loop(url: str, user: str, read: Callable[[str], str], out: TextIO,
          buttons: list[dict[str, Any]], pusher: _Announcements | None,
          token: str | None = None, simulate: Callable[[str], str] | None = None) -> int:
    help_text = HELP + (" /simulate fires a demo event (/simulate help)." if simulate else "")
    for line in read_lines(read, lambda: f"{user}> ", out, help_text):
        if simulate is not None and line.split()[0] == "/simulate":
            out.write(simulate(line) + "\n")
            continue
        if pusher is not None and pusher.fresh is not None:
            buttons, pusher.fresh = pusher.fresh, None
        message = line
        if line.isdigit() and buttons:
            index = int(line) - 1
            if not 0 <= index < len(buttons):
                out.write(f"There is no button {line}; choose 1-{len(buttons)}.\n")
                continue
            message = str(buttons[index].get("payload") or buttons[index].get("title"))
        lock = pusher.lock if pusher is not None else threading.Lock()
        with lock:
            replies: list[dict[str, Any]] = []
            try:
                replies = send(url, user, message, token=token)
                buttons = render(replies, out)
            except ChatError as exc:
                out.write(f"error: {exc}\n")
            if pusher is not None:
                pusher.sync([str(r.get("text")) for r in replies if r.get("text")])
    return 0
