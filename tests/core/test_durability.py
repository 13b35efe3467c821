"""``kill -9`` during ingest (issue 19, point 10): no acknowledged batch lost or half-written.

A child process logs batches (features, predictions, labels, a CHECKPOINT every few
batches) into a file store and prints each batch id once ``log_*`` has returned; the
test SIGKILLs it at seeded random moments, reopens the store after each kill and checks
every acknowledged batch is there whole. The loop is ``benchmarks/soak_durability.py``'s
(``make soak`` runs it with 20+ kills).
"""

from __future__ import annotations

import pytest

import evalstore


@pytest.mark.slow
@pytest.mark.serial
def test_kill_9_loses_no_acknowledged_batch(tmp_path, load_benchmark):
    soak = load_benchmark("soak_durability")
    path = tmp_path / "store.duckdb"
    totals = soak.soak(path, kills=3, seed=19, rows=2000, max_delay=1.0, checkpoint_every=3)
    assert totals.kills == 3
    assert totals.reopen_failures == 0
    assert totals.problems == []
    assert (totals.lost, totals.half_written) == (0, 0)
    acknowledged = totals.acknowledged
    assert len(acknowledged) >= 3  # every child acknowledged at least one batch
    # the store holds every acknowledged row, and at most the one batch per kill that
    # was committed but killed before its acknowledgement was printed
    assert sum(acknowledged.values()) <= totals.rows <= sum(acknowledged.values()) + 3 * 2000
    with evalstore.open(path) as store:
        recorded = {
            row["batch_id"]: row["rows"]
            for row in store.sql(
                "SELECT batch_id, rows FROM evalstore.batches WHERE model = 'soak'"
            ).to_pylist()
        }
        assert {b: recorded.get(b) for b in acknowledged} == acknowledged
        kinds = store.sql(
            "SELECT kind, count(*) AS n FROM evalstore.batches WHERE model = 'soak' "
            "GROUP BY kind ORDER BY kind"
        ).to_pylist()
        assert [k["kind"] for k in kinds] == ["features", "labels", "predictions"]
