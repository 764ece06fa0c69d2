"""Rollbacks, builds, a failed deploy, superseded and expired previews, end to end.

REST channel -> Rasa (the session's model) -> action server -> python-jenkins -> the demo
Jenkins (``tests/_demo_stack.py``). Each test asserts what the chat said and what the
simulator recorded: which builds ran, with which parameters, exactly once.

Demo data (simulators/data/jenkins.yml): payments runs 2.4.0 on prod and 2.4.1 on
staging (2.4.0 before it); prod ran 2.3.2 six days ago.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jenkins
import pytest

from tests._demo_stack import DemoBot, demo_stack, operation_id, policy_with_ttl, text_of
from tests.conftest import button_payload, wait_until

pytestmark = pytest.mark.timeout(900)

PEOPLE = ("dave", "erin", "frank", "gina")


@pytest.fixture(scope="module")
def bot(trained_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoBot]:
    yield from demo_stack(trained_model, tmp_path_factory.mktemp("state"), *PEOPLE)


def _new_builds(bot: DemoBot, job: str, before: int, count: int = 1) -> list:
    """The builds of ``job`` after the first ``before``, once there are ``count`` of them."""
    return wait_until(lambda: len(bot.builds(job)) >= before + count and bot.builds(job)[before:],
                      f"{job} never got {count} new build(s)")


def test_rollback_to_an_explicit_version(bot: DemoBot) -> None:
    before = len(bot.builds("deploy-payments"))
    replies = bot.say("alice", "roll back payments on prod to 2.3.2")
    preview = text_of(replies)
    assert "Roll back payments 2.3.2 on prod with job deploy-payments" in preview, preview
    assert "prod runs 2.4.0" in preview, preview
    confirm = button_payload(replies, "Confirm")
    assert len(bot.builds("deploy-payments")) == before  # a preview runs nothing

    started = text_of(bot.say("alice", confirm))
    assert "Confirmed by alice: started the rollback of payments 2.3.2 to prod" in started, started
    new = _new_builds(bot, "deploy-payments", before)
    assert [b.parameters for b in new] == [{"SERVICE": "payments", "VERSION": "2.3.2",
                                           "ENVIRONMENT": "prod",
                                           "OPSBOT_OPERATION": operation_id(confirm)}]
    done = bot.wait_said("alice", "payments 2.3.2 is live on prod: SUCCESS")
    assert f"deploy-payments #{new[0].number}" in done, done
    assert bot.operation(operation_id(confirm))["state"] == "succeeded"
    assert "Nothing new ran" in text_of(bot.say("alice", confirm))
    assert len(bot.builds("deploy-payments")) == before + 1


def test_rollback_to_the_previous_good_version(bot: DemoBot) -> None:
    before = len(bot.builds("deploy-payments"))
    replies = bot.say("alice", "roll back payments on staging")
    preview = text_of(replies)
    assert "Roll back payments on staging from 2.4.1 to 2.4.0 (the previous good version" in \
        preview, preview
    confirm = button_payload(replies, "Confirm")
    started = text_of(bot.say("alice", confirm))
    assert "started the rollback of payments 2.4.0 to staging" in started, started
    new = _new_builds(bot, "deploy-payments", before)
    assert [b.parameters for b in new] == [{"SERVICE": "payments", "VERSION": "2.4.0",
                                           "ENVIRONMENT": "staging",
                                           "OPSBOT_OPERATION": operation_id(confirm)}]
    done = bot.wait_said("alice", "payments 2.4.0 is live on staging: SUCCESS")
    assert f"deploy-payments #{new[0].number}" in done, done
    live = text_of(bot.say("alice", "what version of payments is live on staging?"))
    assert "staging: 2.4.0" in live, live
    assert len(bot.builds("deploy-payments")) == before + 1


def test_run_the_nightly_integration_job(bot: DemoBot) -> None:
    """The demo's nightly is running (#90) and does not allow concurrent builds, so Jenkins
    keeps the new one in its queue until #90 ends; then it runs, once, and is reported."""
    job = "platform/nightly-integration"
    before = len(bot.builds(job))
    running = next(b for b in bot.builds(job) if b.building)
    replies = bot.say("dave", "run the nightly-integration job")
    preview = text_of(replies)
    assert f"Run {job}." in preview, preview
    assert f"Last build: {job} #{running.number} is running" in preview, preview
    confirm = button_payload(replies, "Confirm")
    assert len(bot.builds(job)) == before

    started = text_of(bot.say("dave", confirm))
    assert f"Confirmed by dave: started a build of {job}" in started, started
    queue_id = int(re.search(r"Jenkins queue item (\d+)", started).group(1))  # type: ignore[union-attr]
    client = jenkins.Jenkins(bot.jenkins.url, username=bot.jenkins.user,
                             password=bot.jenkins.token, timeout=10)
    waiting = wait_until(lambda: (item := client.get_queue_item(queue_id))["blocked"] and item,
                         "the queued build was never blocked by the running one")
    assert f"Build #{running.number} is already in progress" in waiting["why"], waiting
    assert len(bot.builds(job)) == before  # nothing started beside the running build

    client.stop_build(job, running.number)  # someone ends #90 in Jenkins itself
    new = _new_builds(bot, job, before)
    assert len(new) == 1 and new[0].parameters == {} and new[0].user_id == "opsbot", new
    done = bot.wait_said("dave", f"{job} #{new[0].number} finished: SUCCESS")
    assert "Traceback" not in done
    assert bot.operation(operation_id(confirm))["state"] == "succeeded"
    assert len(bot.builds(job)) == before + 1


def test_run_a_build_with_a_branch_parameter(bot: DemoBot) -> None:
    before = len(bot.builds("payments-ci"))
    replies = bot.say("erin", "build payments-ci on branch feature/refund-idempotency")
    preview = text_of(replies)
    assert "Run payments-ci on branch feature/refund-idempotency." in preview, preview
    started = text_of(bot.say("erin", button_payload(replies, "Confirm")))
    assert "started a build of payments-ci" in started, started
    new = _new_builds(bot, "payments-ci", before)
    assert [b.parameters for b in new] == [{"BRANCH": "feature/refund-idempotency"}]
    bot.wait_said("erin", f"payments-ci #{new[0].number} finished: SUCCESS")
    assert len(bot.builds("payments-ci")) == before + 1


def test_a_failed_deploy_says_it_failed_and_why(bot: DemoBot) -> None:
    before = len(bot.builds("deploy-checkout"))
    bot.jenkins.set_outcome("deploy-checkout", "FAILURE")  # the demo's Helm failure log
    replies = bot.say("frank", "deploy checkout 5.13.1 to staging")
    confirm = button_payload(replies, "Confirm")
    assert "started the deploy of checkout 5.13.1 to staging" in text_of(bot.say("frank", confirm))
    new = _new_builds(bot, "deploy-checkout", before)
    assert len(new) == 1
    done = bot.wait_said("frank", "Deploying checkout 5.13.1 to staging did not succeed")
    assert "FAILURE" in done and f"deploy-checkout #{new[0].number}" in done, done
    # The failure summary, read from the build's console.
    assert "Error: UPGRADE FAILED: context deadline exceeded" in done, done
    assert "staging keeps its previous version" in done, done
    assert "is live on staging" not in "\n".join(bot.bot_texts("frank"))
    finished = wait_until(lambda: bot.builds("deploy-checkout")[before].result, "no result")
    assert finished == "FAILURE"
    operation = bot.operation(operation_id(confirm))
    assert (operation["state"], operation["result"]) == ("failed", "FAILURE")
    assert len(bot.builds("deploy-checkout")) == before + 1


def test_a_newer_preview_supersedes_the_older_one(bot: DemoBot) -> None:
    deploys, ci = len(bot.builds("deploy-billing")), len(bot.builds("billing-ci"))
    old = button_payload(bot.say("gina", "deploy billing 3.1.5 to staging"), "Confirm")
    newer = bot.say("gina", "build billing-ci")
    assert "Run billing-ci" in text_of(newer), text_of(newer)
    new = button_payload(newer, "Confirm")

    refused = text_of(bot.say("gina", old))
    assert f"That preview ({operation_id(old)}) was replaced by a newer request; nothing ran" \
        in refused, refused
    assert bot.operation(operation_id(old))["state"] == "superseded"
    # The newer one is the only one waiting: a typed "yes" confirms it.
    started = text_of(bot.say("gina", "yes"))
    assert "started a build of billing-ci" in started, started
    built = _new_builds(bot, "billing-ci", ci)
    assert len(built) == 1
    bot.wait_said("gina", f"billing-ci #{built[0].number} finished")
    assert "Nothing new ran" in text_of(bot.say("gina", new))
    assert "replaced by a newer request" in text_of(bot.say("gina", old))  # still nothing
    assert len(bot.builds("billing-ci")) == ci + 1
    assert len(bot.builds("deploy-billing")) == deploys


def test_an_expired_confirmation_runs_nothing(bot: DemoBot) -> None:
    """Last in the module: it restarts the action server with a 2-second confirmation_ttl."""
    bot.restart_actions(OPSBOT_POLICY=str(policy_with_ttl(bot.state, "2s", *PEOPLE)))
    before = len(bot.builds("deploy-inventory"))
    replies = bot.say("alice", "deploy inventory 0.19.0 to staging")
    preview = text_of(replies)
    assert "Confirm within 2 seconds" in preview, preview
    confirm = button_payload(replies, "Confirm")
    expires = datetime.fromisoformat(bot.operation(operation_id(confirm))["expires_at"])
    expires = expires.replace(tzinfo=expires.tzinfo or UTC)
    # Past the payload's expiry too: it is the operation's, rounded up to the second.
    wait_until(lambda: datetime.now(UTC) > expires + timedelta(seconds=1),
               "the confirmation never expired", 30)

    # The button's payload expires with the confirmation: refused before the guard.
    said = text_of(bot.say("alice", confirm))
    assert "That button has expired, so nothing was done" in said, said
    # The watcher records the expiry in the audit, answered or not.
    wait_until(lambda: bot.operation(operation_id(confirm))["state"] == "expired",
               "the watcher never expired the operation", 30)
    again = text_of(bot.say("alice", "yes"))
    assert "nothing waiting" in again or "expired" in again, again
    assert len(bot.builds("deploy-inventory")) == before
