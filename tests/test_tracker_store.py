"""opsbot._tracker.CachingSQLTrackerStore against Rasa's SQLTrackerStore, on one database:
the same trackers, whoever writes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker
from sqlalchemy.engine import make_url

from opsbot._tracker import CachingSQLTrackerStore
from tests._servers import pg_schema

DOMAIN = Domain.from_yaml("""
version: "3.1"
intents: [greet, deploy]
slots:
  service: {type: text, mappings: [{type: from_entity, entity: service}]}
entities: [service]
""")


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """The keyword arguments both stores get (as endpoints.yml gives them)."""
    if request.param == "sqlite":
        yield {"dialect": "sqlite", "db": str(tmp_path / "tracker.db")}
        return
    with pg_schema(request.getfixturevalue("postgres_url"), "opsbot_tracker") as url:
        parsed = make_url(url)
        yield {"dialect": "postgresql", "host": parsed.host, "port": parsed.port,
               "db": parsed.database, "username": parsed.username,
               "password": parsed.password, "query": dict(parsed.query)}


def _turn(text: str, intent: str, answer: str) -> list[Any]:
    return [UserUttered(text, {"name": intent, "confidence": 0.9}),
            ActionExecuted("action_ops_request"), BotUttered(answer),
            ActionExecuted("action_listen")]


def _texts(tracker: DialogueStateTracker | None) -> list[str]:
    assert tracker is not None
    return [str(getattr(e, "text", None) or getattr(e, "action_name", None) or e.type_name)
            for e in tracker.events]


def test_the_same_trackers_as_rasa_whoever_writes(settings: dict[str, Any]) -> None:
    async def run() -> None:
        mine = CachingSQLTrackerStore(DOMAIN, **settings)
        theirs = SQLTrackerStore(DOMAIN, **settings)  # another replica, without a cache
        start = [ActionExecuted("action_session_start"), SessionStarted(),
                 ActionExecuted("action_listen")]
        tracker = DialogueStateTracker.from_events("alice", [*start, *_turn("hi", "greet",
                                                                            "Hello")])
        await mine.save(tracker)
        assert _texts(await mine.retrieve("alice")) == _texts(await theirs.retrieve("alice"))
        # our own turns, from the cache
        for n in range(3):
            tracker = await mine.retrieve("alice")
            assert tracker is not None
            for event in [*_turn(f"deploy {n}", "deploy", f"Preview {n}"), SlotSet("service",
                                                                                  f"s{n}")]:
                tracker.update(event)
            await mine.save(tracker)
            assert _texts(await mine.retrieve("alice")) == _texts(await theirs.retrieve("alice"))
        assert (await mine.retrieve("alice")).get_slot("service") == "s2"  # type: ignore[union-attr]
        # a turn written by another replica is seen at once
        other = await theirs.retrieve("alice")
        assert other is not None
        for event in _turn("by the other", "greet", "from B"):
            other.update(event)
        await theirs.save(other)
        seen = _texts(await mine.retrieve("alice"))
        assert seen == _texts(await theirs.retrieve("alice")) and "from B" in seen
        # and the next turn here lands after it, once
        tracker = await mine.retrieve("alice")
        assert tracker is not None
        for event in _turn("after", "greet", "from A"):
            tracker.update(event)
        await mine.save(tracker)
        final = _texts(await theirs.retrieve("alice"))
        assert final.count("from B") == 1 and final.count("from A") == 1
        assert final == _texts(await mine.retrieve("alice"))
        # a new session: only its events, as Rasa's retrieve gives them
        tracker = await mine.retrieve("alice")
        assert tracker is not None
        for event in [ActionExecuted("action_session_start"), SessionStarted(),
                      ActionExecuted("action_listen"), *_turn("new day", "greet", "Morning")]:
            tracker.update(event)
        await mine.save(tracker)
        assert _texts(await mine.retrieve("alice")) == _texts(await theirs.retrieve("alice"))
        assert "from A" not in _texts(await mine.retrieve("alice"))
        assert await mine.retrieve("nobody") is None
        for store in (mine, theirs):
            store.engine.dispose()

    asyncio.run(run())
