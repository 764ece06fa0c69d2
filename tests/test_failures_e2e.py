"""Jira and Loki failing in the middle of a conversation, end to end.

REST channel -> Rasa (the session's model) -> action server -> jira / HTTP -> the demo's
Jira and Loki simulators (``tests/_demo_stack.py``), whose ``fail_next`` (a 5xx) and
``delay_next`` (an answer after the client's timeout) strike one request mid-dialogue.
Each test checks that the chat names what failed and what to do, that nothing was left
half-done (no issue, no pending operation, no build), and that the next request works.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests._demo_stack import LATE, DemoBot, demo_stack, operation_id, text_of
from tests.conftest import button_payload, wait_until

pytestmark = pytest.mark.timeout(900)

PEOPLE = ("hank", "ivan", "judy", "kim", "lena", "mona")
_PROJECTS = "/rest/api/2/project"  # what the create_issue form's submit reads first
_LOG_QUERY = "/loki/api/v1/query"  # the count, then query_range: the first one


@pytest.fixture(scope="module")
def bot(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoBot]:
    yield from demo_stack(trained_model, tmp_path_factory.mktemp("state"), *PEOPLE)


def _open(bot: DemoBot, sender: str) -> list[dict]:
    """``sender``'s operations still waiting for a yes or no."""
    return [op for op in bot.operations(sender)
            if op["state"] in ("pending_confirmation", "pending_approval")]


def _with_summary(bot: DemoBot, summary: str) -> list:
    return [i for i in bot.jira.issues() if i.summary == summary]


def _ticket_goes_through(bot: DemoBot, sender: str, summary: str) -> None:
    """The whole create_issue dialogue, after the failure: asked, previewed, opened once."""
    assert "What should the ticket say" in text_of(bot.say(sender, "open a ticket"))
    replies = bot.say(sender, summary)
    assert summary in text_of(replies), text_of(replies)
    done = text_of(bot.say(sender, button_payload(replies, "Confirm")))
    assert "Opened OPS-" in done, done
    assert len(_with_summary(bot, summary)) == 1


@pytest.mark.parametrize(("fault", "sender"), [("500", "hank"), ("timeout", "mona")])
def test_jira_failing_after_the_form_asked_for_the_summary(bot: DemoBot, fault: str,
                                                           sender: str) -> None:
    summary = f"refund export {fault} leaves an empty csv"
    before = len(bot.jira.issues())
    asked = text_of(bot.say(sender, "open a ticket"))
    assert "What should the ticket say" in asked, asked
    if fault == "500":
        bot.jira.fail_next(500, path=_PROJECTS)
    else:
        bot.jira.delay_next(LATE, path=_PROJECTS)
    said = text_of(bot.say(sender, summary))
    assert f"Jira at {bot.jira.url.rstrip('/')}" in said, said
    if fault == "500":
        assert "failed with an internal error (500)" in said and "try again" in said, said
    else:
        assert "did not answer within 4s" in said and "JIRA_TIMEOUT" in said, said
    assert "Nothing was changed." in said and "Traceback" not in said, said
    assert "Confirm" not in said  # no preview of a half-read request
    assert _open(bot, sender) == [] and len(bot.jira.issues()) == before
    _ticket_goes_through(bot, sender, summary)


def test_jira_failing_on_the_create_itself_runs_it_once(bot: DemoBot) -> None:
    """A 500 to the create request: opsbot cannot know whether Jira made the issue, says so,
    and never sends it again behind the requester's back."""
    summary = "invoices pdf renders blank pages"
    before = len(bot.jira.issues())
    assert "What should the ticket say" in text_of(bot.say("ivan", "open a ticket"))
    replies = bot.say("ivan", summary)
    confirm = button_payload(replies, "Confirm")
    bot.jira.fail_next(500, path="/rest/api/2/issue")
    said = text_of(bot.say("ivan", confirm))
    assert "I could not confirm that Jira opened the issue" in said, said
    assert "Jira answered 500" in said and f"look in OPS for \"{summary}\"" in said, said
    assert "opsbot will not run this request again" in said, said
    assert bot.operation(operation_id(confirm))["state"] == "unknown"
    again = text_of(bot.say("ivan", confirm))
    assert "Nothing new ran" in again or "nothing new ran" in again, again
    posts = [r for r in bot.jira.request_log()
             if r.method == "POST" and r.target.startswith("/rest/api/2/issue")
             and summary in r.body]
    assert len(posts) == 1  # sent once, refused once, never retried
    assert len(bot.jira.issues()) == before
    _ticket_goes_through(bot, "ivan", "invoices pdf renders blank pages again")


def test_loki_failing_while_a_preview_waits(bot: DemoBot) -> None:
    """A 502 from Loki between a deploy preview and its Confirm: the logs answer names the
    failure, the preview still stands and runs once, the next logs question works."""
    before = len(bot.builds("deploy-search"))
    replies = bot.say("judy", "deploy search 1.10.1 to staging")
    confirm = button_payload(replies, "Confirm")
    bot.loki.fail_next(502, path=_LOG_QUERY)
    said = text_of(bot.say("judy", "errors from payments in the last hour"))
    loki = bot.loki.url.rstrip("/")
    assert f"Loki at {loki} failed (502) while trying to count the matching log lines" in said, said
    assert "Try again in a minute" in said and "Nothing was changed." in said, said
    assert "error lines from payments" not in said and "Traceback" not in said, said
    assert [op["id"] for op in _open(bot, "judy")] == [operation_id(confirm)]

    assert "started the deploy of search 1.10.1 to staging" in text_of(bot.say("judy", confirm))
    built = wait_until(lambda: bot.builds("deploy-search")[before:], "the deploy never started")
    assert len(built) == 1 and built[0].parameters["VERSION"] == "1.10.1"
    answer = text_of(bot.say("judy", "errors from payments in the last hour"))
    assert "error lines from payments" in answer, answer
    bot.wait_said("judy", "search 1.10.1 is live on staging: SUCCESS")
    assert len(bot.builds("deploy-search")) == before + 1


def test_loki_timing_out_while_a_question_waits_for_its_answer(bot: DemoBot) -> None:
    """opsbot asked which version; a logs question that times out in between loses neither
    the question nor the answer typed after it."""
    before = len(bot.builds("deploy-auth"))
    asked = text_of(bot.say("kim", "deploy auth to staging"))
    assert "Which version of auth should I deploy to staging?" in asked, asked
    bot.loki.delay_next(LATE, path=_LOG_QUERY)
    said = text_of(bot.say("kim", "errors from payments in the last hour"))
    assert f"Loki at {bot.loki.url.rstrip('/')} did not answer within 4s" in said, said
    assert "LOGS_TIMEOUT" in said and "Nothing was changed." in said, said
    assert "Traceback" not in said, said

    replies = bot.say("kim", "4.0.3")
    preview = text_of(replies)
    assert "Deploy auth 4.0.3 to staging with job deploy-auth" in preview, preview
    assert "started the deploy of auth 4.0.3 to staging" in \
        text_of(bot.say("kim", button_payload(replies, "Confirm")))
    built = wait_until(lambda: bot.builds("deploy-auth")[before:], "the deploy never started")
    assert [b.parameters["VERSION"] for b in built] == ["4.0.3"]
    answer = text_of(bot.say("kim", "errors from payments in the last hour"))
    assert "error lines from payments" in answer, answer
    assert len(bot.builds("deploy-auth")) == before + 1
