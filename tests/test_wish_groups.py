"""Grouping wishes: the same request in other words is one group; different ones are not;
the backlog leaves out what an operation file or taught.yml covers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from actions.storage import Wish, Wishes
from actions.storage._database import Database
from actions.teaching import write_accepted
from actions.wish_backlog import backlog, covering_texts, example_text, text_key
from actions.wish_groups import NGRAMS, group
from opsbot._wishes_cli import sentence_model
from tests.conftest import ROOT

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def wishes(*asked: tuple[str, str]) -> list[Wish]:
    return [Wish(f"w-{n:02d}", text, person, "rest", f"rest:{person}",
                 T0 + timedelta(minutes=n)) for n, (text, person) in enumerate(asked)]


def texts_of(groups: list) -> list[list[str]]:
    return [[w.text for w in g.wishes] for g in groups]


def test_repeats_group_and_different_requests_do_not() -> None:
    found = group(wishes(("rotate the TLS certificate for payments", "alice"),
                         ("order pizza for the team", "bob"),
                         ("Rotate the TLS certificates for payments!", "bob"),
                         ("restart the kafka consumer group", "carol"),
                         ("rotate the tls certificate  for payments", "carol")), NGRAMS)
    assert texts_of(found) == [
        ["rotate the TLS certificate for payments", "Rotate the TLS certificates for payments!",
         "rotate the tls certificate  for payments"],
        ["restart the kafka consumer group"],
        ["order pizza for the team"],
    ]
    first = found[0]
    assert (first.count, first.people, first.ids) == (3, ["alice", "bob", "carol"],
                                                      ["w-00", "w-02", "w-04"])
    assert (first.first_asked, first.last_asked) == (T0, T0 + timedelta(minutes=4))
    # Each way of asking once, case and spacing aside.
    assert first.representative in first.examples and len(first.examples) == 2
    # The same count: the one more people asked goes first; then the one asked last.
    assert [g.ids for g in found[1:]] == [["w-03"], ["w-01"]]


def test_groups_are_ordered_by_count_then_people() -> None:
    found = group(wishes(("book a meeting room", "alice"), ("book a meeting room", "alice"),
                         ("reset my vpn password", "bob"), ("reset my vpn password", "carol"),
                         ("order pizza", "dave")), NGRAMS)
    assert [(g.representative, g.count, len(g.people)) for g in found] == [
        ("reset my vpn password", 2, 2), ("book a meeting room", 2, 1), ("order pizza", 1, 1)]
    assert found[1].examples == ["book a meeting room"]  # each way of asking once
    assert group([], NGRAMS) == []


def test_the_sentence_model_groups_paraphrases() -> None:
    """What n-grams cannot do: the same request in other words (loads the NLU's model)."""
    asked = wishes(("how much disk is left on db-1", "alice"),
                   ("what's the free space on db1?", "bob"),
                   ("who is on call this week?", "carol"),
                   ("give me the on-call schedule", "alice"),
                   ("order pizza for the team", "dave"))
    assert len(group(asked, NGRAMS)) == 5
    found = group(asked, sentence_model(ROOT))
    assert sorted(sorted(w.id for w in g.wishes) for g in found) == [
        ["w-00", "w-01"], ["w-02", "w-03"], ["w-04"]]


def test_text_keys_ignore_case_spacing_marks_and_brackets() -> None:
    assert text_key("Restart [payments](service)  on [prod](environment)?") == \
        text_key("restart payments on prod")
    assert example_text("/deploy [it]{now}\nplease ") == "deploy it now please"


def test_the_backlog_leaves_out_what_an_operation_or_taught_yml_covers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / "operations").mkdir(parents=True)
    (project / "domain.yml").write_text((ROOT / "domain.yml").read_text())
    (project / "operations" / "purge_cache.yml").write_text(
        (ROOT / "operations" / "purge_cache.yml").read_text())
    monkeypatch.delenv("OPSBOT_OPERATIONS_PATH", raising=False)
    write_accepted(project, [("list_jobs", "what's broken in ci")], intents=["list_jobs"])
    covers = covering_texts(project)
    assert covers[text_key("purge the CDN cache for payments on prod")] == "purge_cache"
    assert covers[text_key("what's broken in CI?")] == "list_jobs"

    store = Wishes(Database(f"sqlite:///{tmp_path / 'o.db'}"))
    by_file = store.record("Purge the CDN cache for  payments on prod?", "alice", "rest",
                           "rest:alice")
    by_taught = store.record("what's broken in CI", "bob", "rest", "rest:bob")
    by_store = store.record("renew the certs", "bob", "rest", "rest:bob")
    store.mark_covered([by_store.id], "renew_certs")
    still = store.record("order pizza", "carol", "rest", "rest:carol")

    found = backlog(store, project, NGRAMS)
    assert [g.ids for g in found.groups] == [[still.id]] and found.covered == {}
    everything = backlog(store, project, NGRAMS, include_covered=True)
    assert sorted(i for g in everything.groups for i in g.ids) == sorted(
        [by_file.id, by_taught.id, by_store.id, still.id])
    assert everything.covered == {by_file.id: "purge_cache", by_taught.id: "list_jobs",
                                  by_store.id: "renew_certs"}
    assert backlog(store, project, NGRAMS, datetime.now(UTC) + timedelta(hours=1)).groups == []
