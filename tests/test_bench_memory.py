"""bench/memory.py without a stack: what it reads from /proc, how it names the
processes, and the table it prints."""

from __future__ import annotations

import os
from pathlib import Path

from bench import memory as bench

ROLLUP = """00400000-7ffd5b3fe000 ---p 00000000 00:00 0                          [rollup]
Rss:              470048 kB
Pss:              458838 kB
Shared_Clean:      14656 kB
Shared_Dirty:          0 kB
Private_Clean:    261140 kB
Private_Dirty:    194252 kB
Anonymous:        194252 kB
"""


def test_rss_pss_and_uss_from_smaps_rollup() -> None:
    assert bench.parse_smaps_rollup(ROLLUP) == (470048 * 1024, 458838 * 1024,
                                                (261140 + 194252) * 1024)
    assert bench.parse_smaps_rollup("") == (0, 0, 0)


def test_each_process_is_named_by_what_it_runs() -> None:
    python = "/srv/opsbot/.venv/bin/python -m"
    assert bench.role(f"{python} opsbot._rasa_server run --enable-api", False, "x") \
        == "Rasa server"
    assert bench.role(f"{python} opsbot._trainer --listen-fd 7", False, "x") == "trainer"
    assert bench.role(f"{python} opsbot._action_server --actions actions", False, "x") \
        == "action server"
    assert bench.role(f"{python} opsbot demo --serve", True, "supervisor") == "supervisor"
    assert bench.role("/usr/bin/sleep 5", False, "x") == "sleep"


def test_this_process_is_read_with_its_children() -> None:
    found = bench.usage(os.getpid(), "pytest")
    assert found[0].name == "pytest" and found[0].rss >= found[0].pss > 0
    assert os.getpid() in bench.descendants(os.getpid())


def test_the_table_totals_each_phase_and_judges_it(tmp_path: Path) -> None:
    mb = bench.MB
    server = bench.Usage(1, "Rasa server", 500 * mb, 400 * mb, 300 * mb).as_dict()
    trainer = bench.Usage(2, "trainer", 700 * mb, 600 * mb, 500 * mb).as_dict()
    actions = bench.Usage(3, "action server", 90 * mb, 70 * mb, 60 * mb).as_dict()
    result = {"opsbot": {"phases": {"idle": [server, actions],
                                    "retrain (peak)": [server, trainer, actions]},
                         "retrains": [{"seconds": 20.0, "through_trainer": True,
                                       "train_seconds": 15.0}]},
              "baseline": [bench.Usage(4, "rasa run", 1100 * mb, 1000 * mb, 990 * mb).as_dict()],
              "before": {"commit": "abc1234", "phases": {"idle": [server, trainer]}}}
    table = bench.format_table(result)
    assert "idle: 590 MB RSS in all (limit 1500 MB: ok)" in table
    assert "retrain (peak): 1290 MB RSS in all (limit 1500 MB: ok)" in table
    assert "before (abc1234), idle: 1200 MB RSS, 1000 MB PSS in all" in table
    assert "baseline: plain rasa run of the rasa init bot" in table
    assert "retrain 1: `opsbot train --reload` 20.0 s, through the trainer: yes" in table
    assert bench.plot(result, tmp_path / "memory.png") is False or \
        (tmp_path / "memory.png").stat().st_size > 0
