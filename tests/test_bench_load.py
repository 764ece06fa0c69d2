"""bench/load.py without servers: the numbers it prints, the CPU it reads, its users."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
import yaml

from bench import load as bench


def test_percentiles_throughput_and_the_table() -> None:
    result = bench.Result("opsbot-1", [0.1 * i for i in range(1, 101)], errors=2,
                          seconds=5.0, cpu_ms=21.46)
    assert result.messages == 100
    assert result.percentile(50) == pytest.approx(5.1)  # nearest rank
    assert result.percentile(99) == pytest.approx(9.9)
    assert result.as_dict()["throughput"] == 20.0
    skipped = bench.Result("opsbot-2", [], 0, 0.0, None, note="skipped: no Redis")
    table = bench.format_table([result, skipped])
    row = table.splitlines()[2].split()
    assert row[-7:] == ["100", "2", "20.0", "5.10", "9.50", "9.90", "21.5"]
    assert "skipped: no Redis" in table.splitlines()[3]
    assert set(bench.TITLES) == set(bench.ROWS) and len(bench.ROWS) == 4


def test_cpu_of_a_process_group_grows_with_work() -> None:
    group = os.getpgrp()
    before = bench.group_cpu_seconds([group])
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:
        pass
    assert bench.group_cpu_seconds([group]) - before >= 0.2
    assert bench.group_cpu_seconds([2 ** 22 + 12345]) == 0.0  # no such group


def test_the_load_users_are_developers_of_the_policy(tmp_path: Path) -> None:
    path = bench._policy(tmp_path, ["load-000", "load-001"])
    people = yaml.safe_load(path.read_text(encoding="utf-8"))["people"]
    assert people["load-001"] == {"roles": ["developer"], "identities": {"rest": "load-001"}}
    assert "alice" in people  # the project's own people stay
    assert len(set(bench.SCRIPT)) == len(bench.SCRIPT) >= 8


def test_the_profile_summary_counts_each_stack_once_per_area() -> None:
    from bench import profile

    raw = "\n".join([
        "main (x.py:1);MessageProcessor._parse_message_with_graph (p.py:2);"
        "SentenceEmbeddingFeaturizer.process (e.py:3) 30",
        "main (x.py:1);RemoteAction.run (a.py:4);install.<locals>._validate_action_result "
        "(s.py:5) 50",
        "main (x.py:1);CachingSQLTrackerStore.retrieve (t.py:6);SQLTrackerStore._retrieve "
        "(t.py:7) 20",
    ])
    shares = dict(profile.areas(raw))
    assert shares["NLU: parse the message"] == 30.0
    assert shares["  sentence embedding"] == 30.0
    assert shares["call the action server"] == 50.0
    assert shares["  check its answer (jsonschema)"] == 50.0
    assert shares["read the conversation (tracker store)"] == 20.0
    assert shares["write the conversation (tracker store)"] == 0.0
    ranked = dict(profile.summarise(raw, 10))
    assert ranked["RemoteAction.run (a.py)"] == 50.0
