"""``opsbot wishes``, ``opsbot operations new --from-wish`` and ``opsbot review --wish``,
called in-process (grouped by n-grams here: tests/test_wish_groups.py loads the model)."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml

from actions.guard import OperationStore
from actions.guard._audit_log import audit_log
from actions.storage import Wish
from actions.stores import Stores
from actions.teaching import TAUGHT_FILE
from actions.wish_groups import NGRAMS, Likeness
from opsbot import _wishes_cli
from opsbot.cli import main
from tests.conftest import ROOT

NOW = datetime.now(UTC)


@pytest.fixture
def stores(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Stores:
    """The store the CLI opens (OPSBOT_DB_URL); operation files also from tmp_path/ops."""
    url = f"sqlite:///{tmp_path / 'opsbot.db'}"
    monkeypatch.setenv("OPSBOT_DB_URL", url)
    monkeypatch.setenv("OPSBOT_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "ops").mkdir()
    monkeypatch.setenv("OPSBOT_OPERATIONS_PATH", str(tmp_path / "ops"))
    monkeypatch.setattr(_wishes_cli, "_likeness", lambda settings: NGRAMS)
    opened = Stores.around(OperationStore(url))
    yield opened
    opened.close()


def asked(stores: Stores, text: str, person: str, hours_ago: float) -> Wish:
    return stores.wishes.record(text, person, "rest", f"rest:{person}",
                                at=NOW - timedelta(hours=hours_ago))


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_since_takes_minutes_hours_days_and_weeks(capsys: pytest.CaptureFixture[str]) -> None:
    for text, ago in (("30m", timedelta(minutes=30)), ("12h", timedelta(hours=12)),
                      ("7d", timedelta(days=7)), ("2w", timedelta(weeks=2))):
        moment = _wishes_cli.since_arg(text)
        assert abs(datetime.now(UTC) - ago - moment) < timedelta(seconds=5)
    with pytest.raises(SystemExit) as stopped:
        main(["wishes", "--since", "7x"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "argument --since: '7x' is not a time: write a duration such as 30m" in err


def test_the_listing_groups_the_backlog_most_asked_first(
        stores: Stores, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(capsys, "wishes") == (0, "Nobody has asked opsbot for anything it could not do "
                                        "yet. (--all lists the covered ones too.)\n", "")
    pizza = asked(stores, "order pizza for the team", "carol", 30)
    certs = [asked(stores, text, person, hours) for text, person, hours in (
        ("renew the TLS cert on checkout", "alice", 3), ("Renew the TLS cert on checkout?",
                                                          "bob", 2))]
    code, out, err = run(capsys, "wishes")
    assert code == 0 and err == ""
    lines = out.splitlines()
    assert lines[0] == "3 requests from 3 people, in 2 groups by shared words, most asked first:"
    assert lines[2] == '1. "renew the TLS cert on checkout"'
    assert lines[3].startswith("   asked 2 times by alice, bob; first ")
    assert lines[4] == '   also: "Renew the TLS cert on checkout?"'
    assert lines[5] == f"   ids: {certs[0].id} {certs[1].id}"
    assert lines[6:9] == ['2. "order pizza for the team"',
                          f"   asked once by carol; {_wishes_cli._when(pizza.asked_at)}",
                          f"   ids: {pizza.id}"]
    assert "opsbot operations new NAME --from-wish ID" in out
    code, out, _ = run(capsys, "wishes", "--since", "1d")
    assert code == 0 and pizza.id not in out and certs[0].id in out


def test_without_the_model_the_listing_groups_by_shared_words_and_says_so(
        stores: Stores, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(texts: object) -> None:
        raise ImportError("No module named 'sentence_transformers'")

    monkeypatch.setattr(_wishes_cli, "_likeness",
                        lambda settings: Likeness("meaning", unavailable, 0.7))
    for person in ("alice", "bob"):
        asked(stores, f"order pizza for {person}", person, 1)
    code, out, err = run(capsys, "wishes")
    assert code == 0 and "in 1 group by shared words" in out.splitlines()[0]
    assert err == ("(The sentence model could not be used here (ImportError: No module named "
                   "'sentence_transformers'); the wishes are grouped by shared words instead.)\n")


def test_json_lists_each_group_and_with_all_what_covers_it(
        stores: Stores, capsys: pytest.CaptureFixture[str]) -> None:
    first = asked(stores, "scale search to 5 replicas", "alice", 5)
    again = asked(stores, "scale search to 5 replicas", "bob", 1)
    covered = asked(stores, "book a meeting room", "carol", 2)
    stores.wishes.mark_covered([covered.id], "book_room")
    code, out, _ = run(capsys, "wishes", "--json")
    assert code == 0
    assert json.loads(out) == {
        "since": None, "covered_included": False, "grouped_by": "shared words",
        "groups": [{"representative": "scale search to 5 replicas",
                    "examples": ["scale search to 5 replicas"], "count": 2,
                    "people": ["alice", "bob"], "first_asked": first.asked_at.isoformat(),
                    "last_asked": again.asked_at.isoformat(), "ids": [first.id, again.id],
                    "covered_by": {}}]}
    code, out, _ = run(capsys, "wishes", "--json", "--all", "--since", "3h")
    listed = json.loads(out)
    assert listed["covered_included"] is True and listed["since"] is not None
    assert [(g["ids"], g["covered_by"]) for g in listed["groups"]] == [
        ([again.id], {}), ([covered.id], {covered.id: "book_room"})]  # the latest first


def test_an_operation_from_a_wish_starts_from_its_group_and_passes_the_check(
        stores: Stores, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CDN_URL", "http://cdn.test")
    monkeypatch.setenv("CDN_TOKEN", "cdn-s3cret-token")
    one = asked(stores, "renew the TLS cert on checkout", "alice", 3)
    two = asked(stores, "please renew the TLS cert on checkout #now", "bob", 2)
    three = asked(stores, "Renew the TLS cert on [checkout](service)", "carol", 1)
    other = asked(stores, "order pizza for the team", "carol", 0.5)
    ops = tmp_path / "ops"
    code, out, err = run(capsys, "operations", "new", "renew_cert", "--dir", str(ops),
                         "--from-wish", two.id)
    assert code == 0, err
    assert f"the wishes {one.id}, {two.id}, {three.id} are covered by renew_cert now" in out
    written = yaml.safe_load((ops / "renew_cert.yml").read_text(encoding="utf-8"))
    # The group's texts, each once (the mark's value only): then three of the template's.
    assert written["examples"][:2] == ["renew the TLS cert on checkout",
                                       "please renew the TLS cert on checkout #now"]
    assert len(written["examples"]) == 5
    code, out, err = run(capsys, "operations", "check")
    assert code == 0, err
    assert "renew_cert" in out
    assert [w.covered_by for w in stores.wishes.since()] == [
        "renew_cert", "renew_cert", "renew_cert", None]
    # Only the pizza is left to do.
    code, out, _ = run(capsys, "wishes", "--json")
    assert [g["ids"] for g in json.loads(out)["groups"]] == [[other.id]]


def test_an_unknown_or_covered_wish_makes_no_operation(
        stores: Stores, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    ops = tmp_path / "ops"
    code, _, err = run(capsys, "operations", "new", "renew_cert", "--dir", str(ops),
                       "--from-wish", "w-0000000000")
    assert code == 1
    assert "There is no wish w-0000000000; 'opsbot wishes' lists them" in err
    covered = asked(stores, "book a meeting room", "carol", 2)
    stores.wishes.mark_covered([covered.id], "book_room")
    code, _, err = run(capsys, "operations", "new", "renew_cert", "--dir", str(ops),
                       "--from-wish", covered.id)
    assert code == 1 and f"Wish {covered.id} is covered by book_room already" in err
    assert list(ops.iterdir()) == []


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project the review may write data/ in (the CLI's project is the current folder)."""
    root = tmp_path / "project"
    (root / "data" / "nlu").mkdir(parents=True)
    shutil.copy(ROOT / "domain.yml", root / "domain.yml")
    monkeypatch.chdir(root)
    return root


def test_review_teaches_a_wish_as_a_phrasing_of_an_intent(
        stores: Stores, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wish = asked(stores, "ship the [payments] thing to prod", "alice", 1)
    code, out, err = run(capsys, "review", "--wish", wish.id, "--as", "deploy",
                         "--reviewer", "carol", "--no-train")
    assert code == 0, err
    assert f'taught {wish.id}: "ship the payments thing to prod" -> deploy' in out
    taught = yaml.safe_load((project / TAUGHT_FILE).read_text(encoding="utf-8"))
    assert taught["nlu"] == [{"intent": "deploy",
                              "examples": "- ship the payments thing to prod\n"}]
    [phrasing] = stores.taught.examples(None)
    assert (phrasing.status, phrasing.source, phrasing.taught_by, phrasing.reviewed_by) == (
        "accepted", "wish", "carol", "carol")
    covered = stores.wishes.get(wish.id)
    assert covered is not None and covered.covered_by == "deploy"
    with stores.database.connection() as conn:
        kinds = conn.execute(sa.select(audit_log.c.kind).order_by(audit_log.c.id)).scalars()
        assert list(kinds) == ["taught", "taught_accepted"]
    code, _, err = run(capsys, "review", "--wish", wish.id, "--as", "deploy", "--no-train")
    assert code == 1 and f"Wish {wish.id} is covered by deploy already" in err


def test_review_of_a_wish_needs_a_known_intent(
        stores: Stores, project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wish = asked(stores, "reset my vpn password", "bob", 1)
    code, _, err = run(capsys, "review", "--wish", wish.id, "--as", "vpn", "--no-train")
    assert code == 1 and "--as vpn: not an intent opsbot can be taught" in err
    code, _, err = run(capsys, "review", "--wish", wish.id, "--no-train")
    assert code == 1 and "--wish and --as go together" in err
    assert not (project / TAUGHT_FILE).exists()
    assert stores.wishes.get(wish.id).covered_by is None
