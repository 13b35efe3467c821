"""The touched predictions of a model with one prediction version: the new predictions
read from the new batches, the older ones looked up only for late-labelled examples
(``history_touched``), checked by hand and against the full join, and a persisted
performance call refreshed through that path equal to a fresh call."""

from __future__ import annotations

import datetime as dt

import duckdb
import pyarrow as pa
import pytest

import evalstore
from evalstore.monitors import fingerprints
from evalstore.monitors.history_touched import KEYS, PREDICTIONS, TouchedPredictions
from tests.conftest import blank_store

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def predict(store: evalstore.Store, ids: list[str], day: int, version: str = "v1") -> None:
    """Predictions of ``ids`` on day ``day`` (one per hour), scores 0.1, 0.2, ..."""
    ts = [T0 + dt.timedelta(days=day, hours=i) for i in range(len(ids))]
    scores = [round(0.1 * (i + 1) % 1.0, 1) for i in range(len(ids))]
    table = pa.table({"example_id": ids, "score": scores, "ts": ts})
    store.log_predictions("m", table, version=version)


def label(store: evalstore.Store, ids: list[str], values: list[int], day: int) -> None:
    """Labels of ``ids`` at noon of day ``day``."""
    ts = [T0 + dt.timedelta(days=day, hours=12)] * len(ids)
    store.log_labels("m", pa.table({"example_id": ids, "label": values, "ts": ts}))


def touched_rows(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, bool]]:
    """(example_id, version, new_label) of each row of the touched predictions."""
    return con.execute(
        f"SELECT p.example_id, p.version, t.new_label FROM {PREDICTIONS} AS t "
        "JOIN m.predictions AS p ON p.example_key = t.example_key AND p.batch_id = t.batch_id "
        "ORDER BY 1, 2"
    ).fetchall()


def full_join(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, bool]]:
    """The same rows as every prediction joined with the touched keys (the lookup the
    one-version path skips)."""
    return con.execute(
        "SELECT p.example_id, p.version, k.new_label FROM m.predictions AS p "
        f"JOIN {KEYS} AS k ON k.example_key = p.example_key ORDER BY 1, 2"
    ).fetchall()


def store_with_two_days(path) -> evalstore.Store:
    store = blank_store(path)
    store.register_model("m", "v1", "binary")
    predict(store, ["a", "b", "c", "d"], 0)
    label(store, ["a", "b"], [1, 0], 0)
    return store


def test_new_day_reads_new_predictions_and_looks_up_late_labels_only(tmp_path):
    with store_with_two_days(tmp_path / "s.duckdb") as store:
        con = store._context().connection
        before = fingerprints.watermark(con, "m")
        predict(store, ["e", "f"], 1)  # the new day's examples
        label(store, ["e", "c"], [1, 1], 1)  # e labelled the same day, c late
        label(store, ["x"], [0], 1)  # x never predicted
        touched = TouchedPredictions(con, "m")
        touched.tables(before.labels, before.predictions)
        # c's older prediction found (late label); a, b, d untouched; x has none
        assert touched_rows(con) == [
            ("c", "v1", True),
            ("e", "v1", True),
            ("f", "v1", False),
        ]
        assert touched_rows(con) == full_join(con)
        flags = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE new_label), "
            f"count(*) FILTER (WHERE new_prediction) FROM {KEYS}"
        ).fetchall()
        assert flags == [(4, 3, 2)]  # c, e, f, x; c, e, x labelled; e, f predicted
        touched.drop()


def test_new_day_without_late_labels_touches_no_older_prediction(tmp_path):
    with store_with_two_days(tmp_path / "s.duckdb") as store:
        con = store._context().connection
        before = fingerprints.watermark(con, "m")
        predict(store, ["e", "f"], 1)
        label(store, ["e", "f"], [1, 0], 1)
        touched = TouchedPredictions(con, "m")
        touched.tables(before.labels, before.predictions)
        assert touched_rows(con) == [("e", "v1", True), ("f", "v1", True)]
        assert touched_rows(con) == full_join(con)
        touched.drop()


def test_old_example_re_predicted_by_the_same_version_is_refused(tmp_path):
    # the rule the one-version path rests on: an id stored for a version is never
    # stored again for it, so a new prediction of v1 has no older prediction of v1
    with store_with_two_days(tmp_path / "s.duckdb") as store:
        con = store._context().connection
        before = fingerprints.watermark(con, "m")
        with pytest.raises(evalstore.DuplicateIdError, match=r"1 ids are already stored"):
            predict(store, ["c", "g"], 1)
        assert fingerprints.watermark(con, "m") == before
        predict(store, ["g"], 1)
        label(store, ["c"], [0], 1)
        touched = TouchedPredictions(con, "m")
        touched.tables(before.labels, before.predictions)
        assert touched_rows(con) == [("c", "v1", True), ("g", "v1", False)]
        assert touched_rows(con) == full_join(con)
        touched.drop()


def test_old_example_re_predicted_by_another_version_looks_up_every_key(tmp_path):
    with store_with_two_days(tmp_path / "s.duckdb") as store:
        store.register_model("m", "v2", "binary")
        con = store._context().connection
        before = fingerprints.watermark(con, "m")
        predict(store, ["c", "g"], 1, version="v2")
        label(store, ["c"], [1], 1)  # c's v1 prediction (day 0) gets its label now
        touched = TouchedPredictions(con, "m")
        touched.tables(before.labels, before.predictions)
        assert touched_rows(con) == [
            ("c", "v1", True),
            ("c", "v2", True),
            ("g", "v2", False),
        ]
        assert touched_rows(con) == full_join(con)
        touched.drop()


def performance(store: evalstore.Store, **options: bool) -> list[dict]:
    table = store.performance(
        "m", window="1 day", metrics=["accuracy", "roc_auc"], as_of=T0 + dt.timedelta(days=5),
        **options,
    )  # fmt: skip
    return table.sort_by([("window_start", "ascending"), ("metric", "ascending")]).to_pylist()


def test_refresh_after_a_new_day_and_a_late_label_equals_a_fresh_call(tmp_path):
    with store_with_two_days(tmp_path / "s.duckdb") as store:
        label(store, ["c", "d"], [1, 0], 0)
        first = performance(store, persist=True)
        predict(store, ["e", "f", "g", "h"], 1)
        label(store, ["e", "f", "g", "h"], [1, 0, 1, 0], 1)
        label(store, ["a"], [0], 1)  # a correction of a day-0 label, logged on day 1
        refreshed = performance(store, persist=True)
        fresh = performance(store)
        assert refreshed == fresh
        day0 = {r["metric"]: r["value"] for r in refreshed if r["window_start"] == T0}
        # day 0 after the correction: a 0.1 -> 0, b 0.2 -> 0, c 0.3 -> 1, d 0.4 -> 0;
        # threshold 0.5: every score predicts 0 (3 of 4 right); c ranks above a and b,
        # below d (2 of 3 pairs)
        assert day0["accuracy"] == 0.75
        assert day0["roc_auc"] == pytest.approx(2 / 3, rel=1e-12)
        # before it: a 0.1 -> 1, b 0.2 -> 0, c 0.3 -> 1, d 0.4 -> 0: 2 of 4 right; of the
        # four (positive, negative) pairs only (c, b) is ordered
        before = {r["metric"]: r["value"] for r in first if r["window_start"] == T0}
        assert before["accuracy"] == 0.5
        assert before["roc_auc"] == pytest.approx(0.25, rel=1e-12)
