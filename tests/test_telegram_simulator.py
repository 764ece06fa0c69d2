"""simulators.telegram through the real python-telegram-bot client and through plain requests.

PTB shows that the simulator's answers parse as Telegram's do; requests pins down the
wire (status codes, descriptions, headers). Waits only tell "answered early" from
"waited the whole timeout", with generous margins; no test asserts a timing tightly.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
import telegram
from telegram import InlineKeyboardButton, InlineKeyboardMarkup, MessageEntity, Update
from telegram.constants import ParseMode
from telegram.error import BadRequest, Conflict, Forbidden, InvalidToken
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes
from telegram.helpers import escape_markdown

from simulators.telegram import (
    ALICE,
    BOB,
    CAROL,
    DEFAULT_TOKEN,
    OPS_GROUP,
    EntityParseError,
    TelegramSimulator,
    parse_text,
)

KEYBOARD = InlineKeyboardMarkup([[InlineKeyboardButton("Yes", callback_data="confirm:deploy"),
                                  InlineKeyboardButton("No", callback_data="cancel")]])


@pytest.fixture
def sim() -> Iterator[TelegramSimulator]:
    with TelegramSimulator(retry_delay=0.05) as simulator:
        yield simulator


def make_bot(sim: TelegramSimulator, token: str | None = None) -> telegram.Bot:
    return telegram.Bot(token or sim.token, base_url=sim.api_url + "/bot")


def call(sim: TelegramSimulator, method: str, **params: Any) -> requests.Response:
    """A Bot API call as PTB encodes it: a form, non-strings JSON-encoded."""
    form = {name: value if isinstance(value, str) else json.dumps(value)
            for name, value in params.items()}
    return requests.post(f"{sim.api_url}/bot{sim.token}/{method}", data=form, timeout=10)


def bot_send(sim: TelegramSimulator, chat_id: int, text: str, **params: Any) -> dict[str, Any]:
    response = call(sim, "sendMessage", chat_id=chat_id, text=text, **params)
    assert response.status_code == 200, response.text
    return response.json()["result"]


def error(response: requests.Response) -> tuple[int, str]:
    body = response.json()
    assert body["ok"] is False and body["error_code"] == response.status_code
    return response.status_code, body["description"]


# -- the basics ----------------------------------------------------------------------------


def test_get_me_and_the_demo_face(sim: TelegramSimulator) -> None:
    async def scenario() -> telegram.User:
        async with make_bot(sim) as bot:
            assert bot.username == "opsbot_demo_bot"  # initialize() called getMe
            return await bot.get_me()

    me = asyncio.run(scenario())
    assert (me.id, me.is_bot, me.first_name) == (123456, True, "opsbot")
    assert me.can_join_groups is True
    assert sim.env() == {"TELEGRAM_TOKEN": DEFAULT_TOKEN, "TELEGRAM_API_URL": sim.api_url,
                         "TELEGRAM_ALLOWED_CHATS": str(OPS_GROUP)}
    assert not sim.api_url.endswith("/") and sim.url == sim.api_url + "/"
    assert sim.describe() == f"Telegram Bot API at {sim.url} (bot @opsbot_demo_bot)"
    assert DEFAULT_TOKEN not in repr(sim)
    assert [entry.api_method for entry in sim.request_log()] == ["getMe", "getMe"]


def test_unknown_token_is_401_and_unknown_method_404(sim: TelegramSimulator) -> None:
    wrong = requests.post(f"{sim.api_url}/bot999:nope/getMe", timeout=5)
    assert wrong.status_code == 401
    assert wrong.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
    missing = call(sim, "getMeNow")
    assert missing.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
    assert requests.get(f"{sim.api_url}/bot{sim.token}/GETME", timeout=5).json()["ok"]

    async def scenario() -> None:
        async with make_bot(sim, "999:nope"):
            pass

    with pytest.raises(InvalidToken):
        asyncio.run(scenario())


def test_parameters_arrive_in_every_encoding(sim: TelegramSimulator) -> None:
    url = f"{sim.api_url}/bot{sim.token}/sendMessage"
    as_json = requests.post(url, json={"chat_id": ALICE, "text": "json",
                                       "reply_markup": KEYBOARD.to_dict()}, timeout=5)
    as_query = requests.get(url, params={"chat_id": ALICE, "text": "query"}, timeout=5)
    as_multipart = requests.post(url, files={"chat_id": (None, str(ALICE)),
                                             "text": (None, "multipart"),
                                             "document": ("x.txt", b"12345")}, timeout=5)
    for response in (as_json, as_query, as_multipart):
        assert response.status_code == 200, response.text
    messages = sim.bot_messages(ALICE)
    assert [m["plain_text"] for m in messages] == ["json", "query", "multipart"]
    assert messages[0]["reply_markup"]["inline_keyboard"][0][0]["callback_data"] == \
        "confirm:deploy"
    assert sim.request_log()[-1].params["document"] == "<5 bytes>"


# -- getUpdates ----------------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_long_polling_answers_as_soon_as_an_update_arrives(sim: TelegramSimulator) -> None:
    async def scenario() -> tuple[Update, ...]:
        async with make_bot(sim) as bot:
            threading.Timer(0.3, sim.send_text, args=(ALICE, "hello there")).start()
            # A poll of 10 minutes: only the update arriving can end it within the test's
            # limit (a simulator that held it to the end would fail, however fast the machine).
            return await bot.get_updates(timeout=600, read_timeout=610)

    updates = asyncio.run(scenario())
    assert len(updates) == 1
    message = updates[0].message
    assert message is not None and message.text == "hello there"
    assert message.from_user is not None and message.from_user.username == "alice"
    assert message.chat.type == "private" and message.chat.id == ALICE


def test_long_polling_returns_nothing_after_its_timeout(sim: TelegramSimulator) -> None:
    async def scenario() -> tuple[Update, ...]:
        async with make_bot(sim) as bot:
            return await bot.get_updates(timeout=1)

    assert asyncio.run(scenario()) == ()
    assert sim.request_log()[-1].params["timeout"] in (1, "1")


def test_offset_confirms_and_limit_pages(sim: TelegramSimulator) -> None:
    ids = [sim.send_text(ALICE, f"message {n}")["update_id"] for n in range(3)]
    assert ids == sorted(ids) and len(set(ids)) == 3
    first = call(sim, "getUpdates", offset=0, limit=1).json()["result"]
    assert [u["update_id"] for u in first] == ids[:1]
    assert sim.pending_updates() == 3  # not confirmed yet
    rest = call(sim, "getUpdates", offset=ids[1]).json()["result"]
    assert [u["update_id"] for u in rest] == ids[1:]
    assert sim.pending_updates() == 2
    assert call(sim, "getUpdates", offset=ids[2] + 1).json()["result"] == []
    assert sim.pending_updates() == 0


def test_redelivered_update_comes_again_with_its_id(sim: TelegramSimulator) -> None:
    update = sim.send_text(ALICE, "/status")
    got = call(sim, "getUpdates", offset=0).json()["result"]
    call(sim, "getUpdates", offset=got[-1]["update_id"] + 1)
    sim.redeliver(update)
    again = call(sim, "getUpdates", offset=got[-1]["update_id"] + 1).json()["result"]
    assert again == [update]


def test_allowed_updates_filters_what_is_made_afterwards(sim: TelegramSimulator) -> None:
    message = bot_send(sim, ALICE, "Deploy?", reply_markup=KEYBOARD.to_dict())
    assert call(sim, "getUpdates", allowed_updates=["callback_query"]).json()["result"] == []
    sim.send_text(ALICE, "ignored")
    sim.press(ALICE, ALICE, message["message_id"], title="Yes")
    updates = call(sim, "getUpdates").json()["result"]
    assert [list(u)[1] for u in updates] == ["callback_query"]
    assert "allowed_updates" in sim.withheld_updates()[0]["reason"]


def test_getupdates_conflicts_with_a_webhook_and_with_a_newer_poll(
        sim: TelegramSimulator) -> None:
    assert call(sim, "setWebhook", url="https://opsbot.example.com/hook").json()["description"] == \
        "Webhook was set"

    async def poll() -> None:
        async with make_bot(sim) as bot:
            await bot.get_updates(timeout=0)

    with pytest.raises(Conflict, match="webhook is active"):
        asyncio.run(poll())
    assert call(sim, "deleteWebhook").json() == {"ok": True, "result": True,
                                                 "description": "Webhook was deleted"}

    answers: list[requests.Response] = []
    waiting = threading.Thread(target=lambda: answers.append(call(sim, "getUpdates", timeout=5)))
    waiting.start()
    deadline = time.monotonic() + 5
    while sim.waiting_polls() == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert call(sim, "getUpdates", timeout=0).json() == {"ok": True, "result": []}
    waiting.join(timeout=10)
    assert error(answers[0]) == (409, "Conflict: terminated by other getUpdates request; make "
                                      "sure that only one bot instance is running")

    answers.clear()
    waiting = threading.Thread(target=lambda: answers.append(call(sim, "getUpdates", timeout=5)))
    waiting.start()
    while sim.waiting_polls() == 0 and time.monotonic() < deadline + 5:
        time.sleep(0.02)
    call(sim, "setWebhook", url="https://opsbot.example.com/hook")
    waiting.join(timeout=10)
    assert error(answers[0]) == (409, "Conflict: terminated by setWebhook request")


# -- sending and formatting ----------------------------------------------------------------


def test_send_message_with_inline_keyboard_parses_in_ptb(sim: TelegramSimulator) -> None:
    async def scenario() -> telegram.Message:
        async with make_bot(sim) as bot:
            return await bot.send_message(ALICE, "Deploy *prod*\\?",
                                          parse_mode=ParseMode.MARKDOWN_V2, reply_markup=KEYBOARD)

    message = asyncio.run(scenario())
    assert message.text == "Deploy prod?"
    assert message.from_user is not None and message.from_user.id == sim.bot_id
    assert message.parse_entities() == {MessageEntity("bold", 7, 4): "prod"}
    assert message.reply_markup == KEYBOARD
    [stored] = sim.bot_messages(ALICE)
    assert stored["message_id"] == message.message_id
    assert (stored["text"], stored["plain_text"], stored["parse_mode"]) == (
        "Deploy *prod*\\?", "Deploy prod?", "MarkdownV2")
    assert stored["edits"] == 0


def test_markdown_v2_escaped_by_ptb_is_accepted_and_unescaped_refused(
        sim: TelegramSimulator) -> None:
    raw = "v1.2.3 (prod) - 100% done! #ops [x] {y} a_b *c* ~d~ `e` > f | g = h + i"

    async def scenario() -> telegram.Message:
        async with make_bot(sim) as bot:
            ok = await bot.send_message(ALICE, escape_markdown(raw, version=2),
                                        parse_mode=ParseMode.MARKDOWN_V2)
            with pytest.raises(BadRequest, match="reserved and must be escaped"):
                await bot.send_message(ALICE, "Done. Took 3s", parse_mode=ParseMode.MARKDOWN_V2)
            return ok

    assert asyncio.run(scenario()).text == raw
    assert sim.bot_messages(ALICE)[0]["plain_text"] == raw
    refused = call(sim, "sendMessage", chat_id=ALICE, text="Done. Took 3s",
                   parse_mode="MarkdownV2")
    assert error(refused) == (400, "Bad Request: can't parse entities: Character '.' is "
                                   "reserved and must be escaped with the preceding '\\'")
    unclosed = call(sim, "sendMessage", chat_id=ALICE, text="deploy_prod", parse_mode="MarkdownV2")
    assert error(unclosed)[1] == ("Bad Request: can't parse entities: Can't find end of Italic "
                                  "entity at byte offset 6")


def test_entity_parsers_follow_telegram() -> None:
    text, entities = parse_text("*bold _both_* `a\\`b` [site](https://example.com) \\.",
                                "MarkdownV2")
    assert text == "bold both a`b site ."
    assert [(e["type"], e["offset"], e["length"]) for e in entities] == [
        ("bold", 0, 9), ("italic", 5, 4), ("code", 10, 3), ("text_link", 14, 4)]
    assert entities[-1]["url"] == "https://example.com/"
    assert parse_text("\N{THUMBS UP SIGN} *x*", "MarkdownV2")[1] == [
        {"type": "bold", "offset": 3, "length": 1}]  # the emoji is two UTF-16 units
    assert parse_text("<b>a</b> &lt;b&gt; <pre><code class=\"language-py\">x</code></pre>",
                      "HTML") == ("a <b> x", [{"type": "bold", "offset": 0, "length": 1},
                                              {"type": "pre", "offset": 6, "length": 1,
                                               "language": "py"}])
    for bad, message in (("<foo>x</foo>", 'Unsupported start tag "foo" at byte offset 0'),
                         ("<b>x", 'Can\'t find end tag corresponding to start tag "b"')):
        with pytest.raises(EntityParseError, match=message):
            parse_text(bad, "HTML")
    with pytest.raises(EntityParseError, match="Can't find end of the entity starting at byte "
                                               "offset 2"):
        parse_text("a *b", "Markdown")


def test_send_message_refusals(sim: TelegramSimulator) -> None:
    too_long_data = InlineKeyboardMarkup([[InlineKeyboardButton("x", callback_data="é" * 33)]])

    async def scenario() -> list[str]:
        refusals = []
        async with make_bot(sim) as bot:
            for kwargs in ({"chat_id": ALICE, "text": "x", "reply_markup": too_long_data},
                           {"chat_id": ALICE, "text": "x" * 4097},
                           {"chat_id": ALICE, "text": "   "},
                           {"chat_id": 777, "text": "x"}):
                with pytest.raises(BadRequest) as caught:
                    await bot.send_message(**kwargs)
                refusals.append(caught.value.message)
            # PTB strips "Bad Request: " and capitalize()s the rest
            await bot.send_message(ALICE, "x" * 4096)
            await bot.send_message(ALICE, "*" + "x" * 4096 + "*", parse_mode="MarkdownV2")
        return refusals

    assert asyncio.run(scenario()) == ["Button_data_invalid", "Message is too long",
                                       "Message text is empty", "Chat not found"]
    assert error(call(sim, "sendMessage", chat_id=ALICE, text="x", reply_markup={
        "inline_keyboard": [[{"text": "x", "callback_data": "y" * 65}]]})) == (
        400, "Bad Request: BUTTON_DATA_INVALID")
    assert error(call(sim, "sendMessage", chat_id=ALICE, text="")) == (
        400, "Bad Request: message text is empty")
    sim.block_bot(BOB)
    with pytest.raises(Forbidden, match="blocked"):
        asyncio.run(_send(sim, BOB, "hi"))


async def _send(sim: TelegramSimulator, chat_id: int, text: str) -> telegram.Message:
    async with make_bot(sim) as bot:
        return await bot.send_message(chat_id, text)


def test_replies_threads_and_chat_actions(sim: TelegramSimulator) -> None:
    question = bot_send(sim, OPS_GROUP, "Which env?")
    answer = sim.send_text(BOB, "prod", chat_id=OPS_GROUP,
                           reply_to_message_id=question["message_id"])
    update = Update.de_json(answer, None)
    assert update.message is not None and update.message.reply_to_message is not None
    replied = update.message.reply_to_message
    assert replied.from_user is not None and replied.from_user.is_bot
    assert replied.text == "Which env?"
    reply = bot_send(sim, OPS_GROUP, "ok", reply_parameters={"message_id":
                                                                 answer["message"]["message_id"]},
                     message_thread_id=7)
    assert reply["reply_to_message"]["from"]["id"] == BOB and reply["message_thread_id"] == 7
    assert error(call(sim, "sendMessage", chat_id=OPS_GROUP, text="x",
                      reply_to_message_id=999)) == (400, "Bad Request: message to be replied "
                                                         "not found")
    assert call(sim, "sendChatAction", chat_id=ALICE, action="typing").json()["result"] is True
    assert call(sim, "deleteMessage", chat_id=OPS_GROUP,
                message_id=question["message_id"]).json()["result"] is True
    assert sim.bot_messages(OPS_GROUP)[0]["deleted"] is True


# -- editing, buttons and callback queries ---------------------------------------------------


def test_removing_the_keyboard_makes_a_press_stale(sim: TelegramSimulator) -> None:
    async def scenario() -> tuple[telegram.Message, telegram.Message | bool]:
        async with make_bot(sim) as bot:
            sent = await bot.send_message(ALICE, "Deploy prod?", reply_markup=KEYBOARD)
            sim.press(ALICE, ALICE, sent.message_id, data="confirm:deploy")  # still there
            edited = await bot.edit_message_reply_markup(ALICE, sent.message_id,
                                                         reply_markup=None)
            with pytest.raises(BadRequest, match="Message is not modified"):
                await bot.edit_message_reply_markup(ALICE, sent.message_id, reply_markup=None)
            return sent, edited

    sent, edited = asyncio.run(scenario())
    assert isinstance(edited, telegram.Message)
    assert edited.reply_markup is None and edited.edit_date is not None
    assert sim.bot_messages(ALICE)[0]["edits"] == 1
    with pytest.raises(LookupError, match="no inline keyboard"):
        sim.press(ALICE, ALICE, sent.message_id, data="confirm:deploy")
    with pytest.raises(LookupError, match="no message 999"):
        sim.press(ALICE, ALICE, 999, data="confirm:deploy")
    forged = sim.press(ALICE, ALICE, sent.message_id, data="confirm:deploy", force=True)
    assert Update.de_json(forged, None).callback_query.data == "confirm:deploy"


def test_edit_message_text_drops_the_keyboard_and_refuses_no_change(
        sim: TelegramSimulator) -> None:
    sent = bot_send(sim, ALICE, "Deploy prod?", reply_markup=KEYBOARD.to_dict())
    edited = call(sim, "editMessageText", chat_id=ALICE, message_id=sent["message_id"],
                  text="Deploying *prod*", parse_mode="MarkdownV2").json()["result"]
    assert "reply_markup" not in edited and edited["text"] == "Deploying prod"
    same = call(sim, "editMessageText", chat_id=ALICE, message_id=sent["message_id"],
                text="Deploying <b>prod</b>", parse_mode="HTML")
    assert error(same) == (400, "Bad Request: message is not modified: specified new message "
                                "content and reply markup are exactly the same as a current "
                                "content and reply markup of the message")
    assert error(call(sim, "editMessageText", chat_id=ALICE, message_id=99, text="x")) == (
        400, "Bad Request: message to edit not found")
    threading.Timer(0.2, call, args=(sim, "editMessageText"), kwargs={
        "chat_id": ALICE, "message_id": sent["message_id"], "text": "Deployed"}).start()
    assert sim.wait_for_edit(ALICE, sent["message_id"], contains="Deployed")["edits"] == 2


def test_answer_callback_query_only_once(sim: TelegramSimulator) -> None:
    async def scenario() -> None:
        async with make_bot(sim) as bot:
            sent = await bot.send_message(ALICE, "Deploy prod?", reply_markup=KEYBOARD)
            sim.press(ALICE, ALICE, sent.message_id, title="Yes")
            [update] = await bot.get_updates()
            query = update.callback_query
            assert query is not None and query.data == "confirm:deploy"
            assert query.from_user.id == ALICE and query.chat_instance
            assert query.message is not None and query.message.message_id == sent.message_id
            assert await query.answer("OK") is True
            with pytest.raises(BadRequest, match="Query is too old"):
                await query.answer("again")
            with pytest.raises(BadRequest, match="Query is too old"):
                await bot.answer_callback_query("12345")

    asyncio.run(scenario())
    [answer] = sim.callback_answers()
    assert (answer["text"], answer["user_id"], answer["data"]) == ("OK", ALICE, "confirm:deploy")


# -- users' updates ------------------------------------------------------------------------------


def test_commands_get_entities_that_ptb_command_handler_sees(sim: TelegramSimulator) -> None:
    async def scenario() -> None:
        async with make_bot(sim) as bot:
            sim.send_text(ALICE, "/deploy@opsbot_demo_bot payments \N{ROCKET}")
            sim.send_text(ALICE, "/status")
            sim.send_text(ALICE, "no command here")
            updates = await bot.get_updates()
            handler = CommandHandler(["deploy", "status"], lambda update, context: None)
            checks = [handler.check_update(update) for update in updates]
            assert [bool(c) for c in checks] == [True, True, False]
            first = updates[0].message
            assert first is not None
            assert first.parse_entities([MessageEntity.BOT_COMMAND]) == {
                MessageEntity("bot_command", 0, 23): "/deploy@opsbot_demo_bot"}
            assert checks[0][0] == ["payments", "\N{ROCKET}"]  # the command's arguments

    asyncio.run(scenario())


def test_group_mention_and_membership(sim: TelegramSimulator) -> None:
    update = Update.de_json(sim.send_text(BOB, "\N{ROCKET} hey @opsbot_demo_bot status?",
                                          chat_id=OPS_GROUP), None)
    message = update.message
    assert message is not None and message.chat.type == "supergroup"
    assert message.chat.title == "ops"
    assert message.parse_entities(["mention"]) == {MessageEntity("mention", 7, 16):
                                                   "@opsbot_demo_bot"}
    sim.add_user(45, "Dave", "dave")
    with pytest.raises(ValueError, match="not a member"):
        sim.send_text(45, "hi", chat_id=OPS_GROUP)
    joined = Update.de_json(sim.member_joined(45, OPS_GROUP), None)
    assert joined.message is not None and joined.message.new_chat_members[0].id == 45
    sim.send_text(45, "hi all", chat_id=OPS_GROUP)


def test_sticker_edit_and_join_updates_parse(sim: TelegramSimulator) -> None:
    sticker = Update.de_json(sim.send_sticker(CAROL), None)
    assert sticker.message is not None and sticker.message.sticker is not None
    assert sticker.message.sticker.emoji == "\N{THUMBS UP SIGN}" and sticker.message.text is None
    sent = sim.send_text(CAROL, "/deploy paymnts")
    edited = Update.de_json(sim.edit_text(CAROL, CAROL, sent["message"]["message_id"],
                                          "/deploy payments"), None)
    assert edited.edited_message is not None
    assert edited.edited_message.text == "/deploy payments"
    assert edited.edited_message.edit_date is not None
    sim.add_group(-1002000000002, "release")
    joined = Update.de_json(sim.member_joined(CAROL, -1002000000002), None)
    assert joined.message is not None and joined.message.chat.title == "release"
    assert [u.id for u in joined.message.new_chat_members] == [CAROL]
    assert sim.pending_updates() == 4


def test_wait_for_bot_message(sim: TelegramSimulator) -> None:
    update = sim.send_text(ALICE, "/help")
    after = update["message"]["message_id"]
    threading.Timer(0.2, bot_send, args=(sim, ALICE, "Here is what I can do")).start()
    found = sim.wait_for_bot_message(ALICE, contains="can do", after=after)
    assert found["message_id"] > after and found["plain_text"] == "Here is what I can do"
    with pytest.raises(TimeoutError, match="no new bot message in chat 42 after message 0 "
                                           "containing 'never' within 0.2 s"):
        sim.wait_for_bot_message(ALICE, contains="never", timeout=0.2)


def test_a_polling_ptb_application_runs_a_confirmation_flow(sim: TelegramSimulator) -> None:
    async def deploy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        assert update.message is not None
        await update.message.reply_text(f"Deploy {' '.join(context.args or [])}?",
                                        reply_markup=KEYBOARD)

    async def button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        assert query is not None
        await query.answer("OK")
        await query.edit_message_text(f"Confirmed: {query.data}")

    def user() -> None:
        update = sim.send_text(ALICE, "/deploy prod")
        asked = sim.wait_for_bot_message(ALICE, contains="Deploy prod?",
                                         after=update["message"]["message_id"])
        sim.press(ALICE, ALICE, asked["message_id"], title="Yes")
        done = sim.wait_for_edit(ALICE, asked["message_id"], contains="Confirmed")
        assert done["reply_markup"] is None  # editMessageText without a keyboard drops it

    async def scenario() -> None:
        app = Application.builder().token(sim.token).base_url(sim.api_url + "/bot").build()
        app.add_handler(CommandHandler("deploy", deploy))
        app.add_handler(CallbackQueryHandler(button))
        async with app:
            await app.start()
            await app.updater.start_polling(timeout=1)
            await asyncio.to_thread(user)
            await app.updater.stop()
            await app.stop()

    asyncio.run(scenario())
    assert [a["text"] for a in sim.callback_answers()] == ["OK"]
    methods = [entry.api_method for entry in sim.request_log()]
    assert methods[:3] == ["getMe", "deleteWebhook", "getUpdates"]
    assert {"sendMessage", "answerCallbackQuery", "editMessageText"} <= set(methods)
    assert sim.pending_updates() == 0  # the final getUpdates confirmed everything


# -- webhooks ------------------------------------------------------------------------------------


class Hook:
    """A little webhook endpoint that answers the given statuses in turn, then 200."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.arrived = threading.Condition()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status = hook.statuses.pop(0) if hook.statuses else 200
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()
                with hook.arrived:
                    hook.received.append((dict(self.headers), body))
                    hook.arrived.notify_all()

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.local = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.url = "https://hook.example.com:8443/tg-hook"  # the public URL, routed to local

    def wait_for(self, count: int, timeout: float = 10) -> None:
        with self.arrived:
            assert self.arrived.wait_for(lambda: len(self.received) >= count, timeout), \
                self.received

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_webhook_delivery_headers_secret_and_retry(sim: TelegramSimulator) -> None:
    hook = Hook([500])
    sim.route("https://hook.example.com:8443", hook.local)
    try:
        async def configure() -> telegram.WebhookInfo:
            async with make_bot(sim) as bot:
                assert await bot.set_webhook(hook.url, secret_token="s3cr3t-Token_1",
                                             allowed_updates=["message", "callback_query"])
                return await bot.get_webhook_info()

        info = asyncio.run(configure())
        assert info.url == hook.url and info.pending_update_count == 0
        update = sim.send_text(ALICE, "/deploy prod")
        hook.wait_for(2)
        for headers, body in hook.received:
            assert headers["Content-Type"] == "application/json"
            assert headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cr3t-Token_1"
            assert json.loads(body) == update
        parsed = Update.de_json(json.loads(hook.received[1][1]), None)
        assert parsed.message is not None and parsed.message.text == "/deploy prod"
        deadline = time.monotonic() + 5
        while sim.pending_updates() and time.monotonic() < deadline:
            time.sleep(0.02)
        deliveries = sim.webhook_deliveries()
        assert [(d["update_id"], d["attempt"], d["status"]) for d in deliveries] == [
            (update["update_id"], 1, 500), (update["update_id"], 2, 200)]
        info_now = call(sim, "getWebhookInfo").json()["result"]
        assert info_now["pending_update_count"] == 0
        assert info_now["last_error_message"] == ("Wrong response from the webhook: 500 "
                                                  "Internal Server Error")
    finally:
        hook.close()


def test_set_webhook_validates_the_secret(sim: TelegramSimulator) -> None:
    assert error(call(sim, "setWebhook", url="https://opsbot.example.com:8443/h",
                      secret_token="base64+/=")) == (
        400, "Bad Request: secret token contains unallowed characters")
    assert error(call(sim, "setWebhook", url="https://opsbot.example.com:8443/h",
                      secret_token="a" * 257)) == (400, "Bad Request: secret token is too long")
    sim.send_text(ALICE, "queued")
    assert call(sim, "setWebhook", url="https://opsbot.example.com:8443/h", secret_token="a" * 256,
                drop_pending_updates=True).json()["result"] is True
    assert sim.pending_updates() == 0
    assert call(sim, "getWebhookInfo").json()["result"]["url"] == \
        "https://opsbot.example.com:8443/h"


@pytest.mark.parametrize(("url", "description"), [
    ("http://opsbot.example.com/hook", "bad webhook: An HTTPS URL must be provided for webhook"),
    ("http://127.0.0.1:5005/webhooks/telegram/webhook",
     "bad webhook: An HTTPS URL must be provided for webhook"),
    ("https://opsbot.example.com:5005/hook",
     "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"),
    ("https://opsbot.example.com:8080/hook",
     "bad webhook: Webhook can be set up only on ports 80, 88, 443 or 8443"),
    ("https://opsbot.example.com:99999/hook", "invalid webhook URL specified"),
    ("ftp://opsbot.example.com/hook", "invalid webhook URL specified"),
])
def test_set_webhook_takes_only_https_on_telegrams_ports(sim: TelegramSimulator, url: str,
                                                         description: str) -> None:
    call(sim, "deleteWebhook")
    assert error(call(sim, "setWebhook", url=url)) == (400, f"Bad Request: {description}")
    assert call(sim, "getWebhookInfo").json()["result"]["url"] == ""
    for port in ("", ":443", ":80", ":88", ":8443"):
        assert call(sim, "setWebhook", url=f"https://opsbot.example.com{port}/h").json()["ok"]
    call(sim, "deleteWebhook")


# -- the control API over HTTP -------------------------------------------------------------------


def test_control_api_over_http(sim: TelegramSimulator) -> None:
    root = f"{sim.api_url}/_sim"
    sent = requests.post(f"{root}/users/{BOB}/send",
                         json={"text": "/deploy prod", "chat_id": OPS_GROUP}, timeout=5)
    assert sent.status_code == 200
    assert sent.json()["update"]["message"]["entities"][0]["type"] == "bot_command"
    message = bot_send(sim, OPS_GROUP, "Sure?", reply_markup=KEYBOARD.to_dict())
    pressed = requests.post(f"{root}/users/{BOB}/press", json={
        "chat_id": OPS_GROUP, "message_id": message["message_id"], "title": "No"}, timeout=5)
    assert pressed.json()["update"]["callback_query"]["data"] == "cancel"
    listed = requests.get(f"{root}/chats/{OPS_GROUP}/messages", timeout=5).json()
    assert [m["plain_text"] for m in listed["messages"]] == ["Sure?"]
    stale = requests.post(f"{root}/users/{BOB}/press", json={
        "chat_id": OPS_GROUP, "message_id": 999, "data": "x"}, timeout=5)
    assert stale.status_code == 404 and "no message 999" in stale.json()["error"]
    overview = requests.get(f"{root}/", timeout=5).json()
    assert {u["username"] for u in overview["users"]} == {"alice", "bob", "carol"}
    assert sim.pending_updates() == 2
