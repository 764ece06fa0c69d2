"""The terminal chat: talks to a running opsbot through Rasa's REST channel."""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any, TextIO

HELP = (
    "Type a message and press Enter. When opsbot offers buttons, type the button's "
    "number to press it. /quit (or Ctrl-D) leaves the chat."
)


class ChatError(RuntimeError):
    """The REST channel did not answer; the message says what to check."""


def send(url: str, sender: str, message: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Post one message to the REST channel and return the bot's replies."""
    body = json.dumps({"sender": sender, "message": message}).encode()
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            replies = json.loads(response.read().decode() or "[]")
    except urllib.error.HTTPError as exc:
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


def chat(
    url: str,
    user: str,
    read: Callable[[str], str] = input,
    out: TextIO | None = None,
) -> int:
    """Run the chat loop until /quit or end of input."""
    out = out or sys.stdout
    out.write(f"Chatting with opsbot as '{user}'. {HELP}\n")
    buttons: list[dict[str, Any]] = []
    while True:
        try:
            line = read(f"{user}> ").strip()
        except (EOFError, KeyboardInterrupt):
            out.write("\n")
            return 0
        if not line:
            continue
        if line in ("/quit", "/exit"):
            return 0
        if line == "/help":
            out.write(HELP + "\n")
            continue
        message = line
        if line.isdigit() and buttons:
            index = int(line) - 1
            if not 0 <= index < len(buttons):
                out.write(f"There is no button {line}; choose 1-{len(buttons)}.\n")
                continue
            message = str(buttons[index].get("payload") or buttons[index].get("title"))
        try:
            buttons = render(send(url, user, message), out)
        except ChatError as exc:
            out.write(f"error: {exc}\n")
