"""``kill -9`` of a journaled ``evalstore serve`` while services stream (issue 21): every
acknowledged request is in the store after restart, once and whole, through torn
journal tails and kills during applies (``benchmarks/soak_journal.py``'s loop; 20+ kills
there)."""

from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.serial]


def test_kill_9_of_a_journaled_server_loses_nothing_acknowledged(tmp_path, load_benchmark):
    soak = load_benchmark("soak_journal")
    totals = soak.soak(tmp_path / "store.duckdb", kills=3, seed=9, senders=3, max_delay=1.5)
    assert totals.kills == 3 and totals.torn_tails == 1
    assert totals.acknowledged > 0 and totals.labels_acknowledged > 0
    assert totals.problems == []
    assert (totals.lost, totals.twice, totals.half_written) == (0, 0, 0)
