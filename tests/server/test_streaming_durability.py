"""``kill -9`` of ``evalstore serve`` while services stream (issue 21, point 4).

HTTP senders (single-example requests with ``Idempotency-Key``, each retried with the same
bytes until answered) and two ``evalstore.Client`` objects (one buffer large enough for the
outages, one too small) stream into a real server that is SIGKILLed at seeded random moments
and restarted on the same file. Afterwards every acknowledged request is stored once and
whole, the large client delivered everything and the small one exactly what it did not
report dropped. The loop is ``benchmarks/soak_streaming.py``'s (20+ kills there).
"""

from __future__ import annotations

import pytest

import evalstore

pytestmark = [pytest.mark.slow, pytest.mark.serial]


def test_kill_9_while_streaming_loses_nothing_acknowledged(tmp_path, free_port, load_benchmark):
    soak = load_benchmark("soak_streaming")
    path = tmp_path / "store.duckdb"
    totals = soak.soak(path, kills=2, seed=21, senders=2, client_rate=100.0,
                       large_buffer=100_000, small_buffer=50, max_delay=1.5, max_down=1.0,
                       port=free_port())  # fmt: skip
    assert totals.kills == 2
    assert totals.problems == []
    assert (totals.lost, totals.twice, totals.half_written, totals.unanswered) == (0, 0, 0, 0)
    large, small = totals.clients["large"], totals.clients["small"]
    # the large buffer held every record logged while the server was down
    assert large.logged > 0
    assert (large.acknowledged, large.dropped, large.failed, large.pending) == (
        large.logged,
        0,
        0,
        0,
    )
    # the small one hit its bound during an outage (a restart alone takes over a second at
    # 100 records/s into 50 places), dropped its oldest records and counted them
    assert small.dropped > 0
    assert small.acknowledged == small.logged - small.dropped > 0
    assert (small.failed, small.pending) == (0, 0)

    with evalstore.open(path, read_only=True) as store:
        stored = {
            (row["example_id"], row["kind"]): row["batch_id"]
            for row in store.sql(
                "SELECT example_id, 'features' AS kind, batch_id FROM soak.features "
                "WHERE example_id LIKE 'h%' UNION ALL "
                "SELECT example_id, 'predictions', batch_id FROM soak.predictions "
                "WHERE example_id LIKE 'h%'"
            ).to_pylist()
        }
        clients = {
            row["client"]: (row["features"], row["predictions"], row["ids"])
            for row in store.sql(
                "SELECT split_part(example_id, '-', 1) AS client, "
                "count(*) FILTER (WHERE kind = 'f') AS features, "
                "count(*) FILTER (WHERE kind = 'p') AS predictions, "
                "count(DISTINCT example_id) AS ids FROM ("
                "SELECT example_id, 'f' AS kind FROM soak.features UNION ALL "
                "SELECT example_id, 'p' FROM soak.predictions) WHERE example_id LIKE 'c%' "
                "GROUP BY ALL"
            ).to_pylist()
        }
    # every HTTP request was retried until answered: the stored rows are exactly the
    # acknowledged requests, each under the batch id of its receipt
    assert len(totals.acknowledged) >= 4
    assert stored == totals.acknowledged
    n_large, n_small = large.acknowledged, small.acknowledged
    assert clients == {"clarge": (n_large, n_large, n_large), "csmall": (n_small, n_small, n_small)}
