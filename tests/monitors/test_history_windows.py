"""A persisted call counts the rows of its windows from the stored counts plus the rows
of later batches, and scans every row's ``ts`` again only when rows were removed."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from evalstore.monitors import fingerprints
from tests.conftest import blank_store

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def day(store: evalstore.Store, d: int, n: int = 12, prefix: str = "s") -> list[str]:
    rng = np.random.default_rng(d)
    ids = [f"{prefix}{d}_{i}" for i in range(n)]
    ts = [T0 + dt.timedelta(days=d, hours=int(h)) for h in rng.integers(0, 24, n)]
    store.log_features("m", pa.table({"example_id": ids, "x": rng.normal(size=n), "ts": ts}))
    scores = rng.random(n)
    store.log_predictions("m", pa.table({"example_id": ids, "score": scores, "ts": ts}), "v1")
    store.log_labels("m", pa.table({"example_id": ids, "label": (scores > 0.5).astype(int)}))
    return ids


@pytest.fixture
def scans(monkeypatch) -> list[Any]:
    """The ``after`` argument of every bucket_counts call (None: every row scanned)."""
    seen: list[Any] = []
    original = fingerprints.bucket_counts

    def recording(*args: Any, after: Any = None) -> Any:
        seen.append(after)
        return original(*args, after=after)

    monkeypatch.setattr(fingerprints, "bucket_counts", recording)
    return seen


@pytest.mark.parametrize(
    "family, arguments",
    [("drift", {"methods": ["psi", "ks"]}), ("performance", {"metrics": ["accuracy"]}),
     ("quality", {})],
)  # fmt: skip
def test_counts_follow_new_batches_and_rescan_after_a_removal(scans, family, arguments):
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        rng = np.random.default_rng(0)
        training = pa.table(
            {"example_id": [f"t{i}" for i in range(30)], "x": rng.normal(size=30),
             "ts": [T0 - dt.timedelta(days=10)] * 30}
        )  # fmt: skip
        store.log_features("m", training, env="training")
        ids = [i for d in range(3) for i in day(store, d)]
        call = getattr(store, family)
        call("m", persist=True, **arguments)
        assert scans == [None]  # first call: nothing stored, every row counted

        day(store, 3)
        kept = call("m", persist=True, **arguments)
        assert kept.equals(call("m", **arguments))
        assert len(scans) == 2 and scans[1] is not None  # stored counts + the new rows

        totals = store.sql(
            "SELECT feature_rows, prediction_rows FROM evalstore.metric_history_calls"
        ).to_pylist()
        assert totals == [{"feature_rows": 30 + 48, "prediction_rows": 48}]

        # two day-0 rows replaced into day 2: their old rows are gone, the totals do not
        # add up, and every row is counted again (the counts moved between windows)
        moved = pa.table(
            {"example_id": ids[:2], "x": [0.5, 0.7], "ts": [T0 + dt.timedelta(days=2)] * 2}
        )
        store.log_features("m", moved, on_conflict="replace")
        kept = call("m", persist=True, **arguments)
        assert kept.equals(call("m", **arguments))
        assert scans[2] is None
        windows = store.sql(
            "SELECT window_start, feature_rows FROM evalstore.metric_history_windows "
            "ORDER BY window_start"
        ).to_pylist()
        assert [w["feature_rows"] for w in windows] == [10, 12, 14, 12]


def test_reference_labels_part_follows_labels_of_reference_examples():
    """The stored reference fingerprint keeps its labels part while no later batch labels
    a reference example, and counts the labels of those that get one."""
    with blank_store() as store:
        store.register_model("m", "v1", "binary")
        rng = np.random.default_rng(1)
        training = pa.table(
            {"example_id": [f"t{i}" for i in range(30)], "x": rng.normal(size=30),
             "ts": [T0 - dt.timedelta(days=10)] * 30}
        )  # fmt: skip
        store.log_features("m", training, env="training")
        for d in range(2):
            day(store, d)

        def labels_part() -> list[str]:
            (row,) = store.sql("SELECT reference FROM evalstore.metric_history_calls").to_pylist()
            return json.loads(row["reference"])[1]

        store.drift("m", persist=True, methods=["psi"])
        assert labels_part()[0] == "0"
        day(store, 2)  # serving labels only: the part is kept
        store.drift("m", persist=True, methods=["psi"])
        assert labels_part()[0] == "0"
        store.log_labels("m", pa.table({"example_id": ["t1", "t2", "t3"], "label": [1, 0, 1]}))
        kept = store.drift("m", persist=True, methods=["psi"])
        assert labels_part()[0] == "3"
        assert kept.equals(store.drift("m", methods=["psi"]))
