"""The predictions of touched examples (``history_touched``): which examples and rows the
shared tables hold, that a second request at the same watermark reuses them, and that
another watermark rebuilds them."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

import evalstore
from evalstore.monitors import fingerprints
from evalstore.monitors.history_touched import KEYS, PREDICTIONS, TouchedPredictions

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def predictions(store: evalstore.Store, ids: list[str], version: str) -> None:
    ts = [T0 + dt.timedelta(hours=i) for i in range(len(ids))]
    table = pa.table({"example_id": ids, "score": [0.5] * len(ids), "ts": ts})
    store.log_predictions("m", table, version=version)


def labels(store: evalstore.Store, ids: list[str]) -> None:
    table = pa.table({"example_id": ids, "label": [1] * len(ids), "ts": [T0] * len(ids)})
    store.log_labels("m", table)


def rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, bool]]:
    """(example_id, version, new_label) of each row of the predictions table."""
    return con.execute(
        f"SELECT p.example_id, p.version, t.new_label FROM {PREDICTIONS} AS t "
        "JOIN m.predictions AS p ON p.example_key = t.example_key AND p.batch_id = t.batch_id "
        "ORDER BY 1, 2"
    ).fetchall()


def test_touched_predictions_since_a_watermark(tmp_path):
    with evalstore.open(tmp_path / "s.duckdb") as store:
        store.register_model("m", "v1", "binary")
        store.register_model("m", "v2", "binary")
        predictions(store, ["a", "b", "c", "d"], "v1")
        labels(store, ["a", "b"])
        con = store._context().connection
        before = fingerprints.watermark(con, "m")
        predictions(store, ["c", "e"], "v2")  # c predicted again, e new
        labels(store, ["d", "x"])  # d labeled late, x never predicted
        touched = TouchedPredictions(con, "m")
        keys, table = touched.tables(before.labels, before.predictions)
        assert (keys, table) == (KEYS, PREDICTIONS)
        assert rows(con) == [
            ("c", "v1", False),
            ("c", "v2", False),
            ("d", "v1", True),
            ("e", "v2", False),
        ]
        flags = con.execute(f"SELECT count(*), count(*) FILTER (WHERE new_label) FROM {KEYS}")
        assert flags.fetchall() == [(4, 2)]  # c, d, e, x; d and x got labels
        # the same watermark reuses the tables (emptied here to see it), another rebuilds
        con.execute(f"DELETE FROM {PREDICTIONS}")
        touched.tables(before.labels, before.predictions)
        assert rows(con) == []
        touched.tables(-1, before.predictions)  # every label is new now
        assert rows(con) == [
            ("a", "v1", True),
            ("b", "v1", True),
            ("c", "v1", False),
            ("c", "v2", False),
            ("d", "v1", True),
            ("e", "v2", False),
        ]
        touched.drop()
        with pytest.raises(duckdb.CatalogException, match=PREDICTIONS):
            con.execute(f"SELECT * FROM {PREDICTIONS}")
