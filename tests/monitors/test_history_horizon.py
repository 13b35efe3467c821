"""The stored label horizon (``evalstore.label_horizons``) equals the label-delay quantile
computed from every label, after any sequence of new predictions, late labels and label
corrections; ``evalstore.label_horizon`` reads it only at its own watermark."""

from __future__ import annotations

import datetime as dt
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evalstore
from evalstore.monitors import history_horizon

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
#: The definition of evalstore.label_horizon, from every label (what the stored row
#: must equal).
REFERENCE = """
    WITH corrected AS (
        SELECT example_key, min(ts) AS label_ts FROM m.labels
        WHERE superseded_by IS NOT NULL GROUP BY example_key
    ),
    first_label AS (
        SELECT l.example_key, least(l.ts, c.label_ts) AS label_ts
        FROM m.labels_latest AS l LEFT JOIN corrected AS c ON c.example_key = l.example_key
    ),
    delays AS (
        SELECT evalstore.hours_between(p.ts, f.label_ts) AS d
        FROM m.predictions AS p JOIN first_label AS f ON f.example_key = p.example_key
    )
    SELECT CASE WHEN count(*) > 0 THEN greatest(quantile_cont(d, $q), 0.0) END, count(*)
    FROM delays
"""


def reference(con: Any, q: float) -> tuple[float | None, int]:
    value, labeled = con.execute(REFERENCE, {"q": q}).fetchall()[0]
    return value, labeled


class History:
    """Predictions and labels logged to model ``m`` from a seeded generator."""

    def __init__(self, store: evalstore.Store, seed: int) -> None:
        self.store, self.rng, self.ids, self.batch = store, np.random.default_rng(seed), [], 0
        self.second: set[str] = set()

    def predictions(self, k: int, version: str, reuse: bool) -> None:
        """``k`` predictions by ``version``: of new examples, or (``reuse``) by v2 of
        logged ones (a second version predicting examples that may be labeled already)."""
        fresh = sorted(set(self.ids) - self.second)
        if reuse and fresh:
            version = "v2"
            ids = sorted(set(self.rng.choice(fresh, k)))
            self.second |= set(ids)
        else:
            self.batch += 1
            ids = [f"e{self.batch}_{i}" for i in range(k)]
            self.ids += ids
            if version == "v2":
                self.second |= set(ids)
        minutes = self.rng.integers(0, 10 * 1440, len(ids))
        ts = [T0 + dt.timedelta(minutes=int(m)) for m in minutes]
        table = pa.table({"example_id": ids, "score": self.rng.random(len(ids)), "ts": ts})
        self.store.log_predictions("m", table, version=version)

    def labels(self, share: float, spread_days: int, unknown: int) -> None:
        """Labels for a ``share`` of the logged examples (some already labeled: their
        corrections come earlier or later than the first label) and for ``unknown``
        examples nobody predicted yet, at times spread over ``spread_days`` days."""
        chosen = list(self.rng.choice(self.ids, max(1, int(len(self.ids) * share)), False))
        self.batch += 1
        chosen += [f"e{self.batch + 1}_{i}" for i in range(unknown)]
        minutes = self.rng.integers(0, spread_days * 1440 + 1, len(chosen))
        ts = [T0 + dt.timedelta(days=2, minutes=int(m)) for m in minutes]
        table = pa.table(
            {"example_id": chosen, "label": self.rng.integers(0, 2, len(chosen)), "ts": ts}
        )
        self.store.log_labels("m", table)


operations = st.lists(
    st.one_of(
        st.tuples(st.just("predictions"), st.integers(1, 30), st.sampled_from(["v1", "v2"]),
                  st.booleans()),
        st.tuples(st.just("labels"), st.sampled_from([0.1, 0.5, 1.0]), st.integers(0, 12),
                  st.integers(0, 3)),
    ),
    min_size=1,
    max_size=6,
)  # fmt: skip


@pytest.fixture(scope="module")
def base(template) -> Any:
    def build(store: evalstore.Store) -> None:
        store.register_model("m", "v1", "binary")
        store.register_model("m", "v2", "binary")

    return template("history-horizon", build)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    ops=operations,
    seed=st.integers(0, 999),
    q=st.sampled_from([0.9, 0.5, 0.0, 1.0, 0.37]),
    band=st.sampled_from([(1, 0.0), (2, 0.05), (1000, 0.01)]),
)
def test_stored_horizon_equals_every_label(open_copy, base, ops, seed, q, band):
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(history_horizon, "MIN_BAND", band[0])
        patch.setattr(history_horizon, "BAND_SHARE", band[1])
        with open_copy(base) as store:
            con = store._context().connection
            history = History(store, seed)
            history.predictions(20, "v1", False)
            for op in ops:
                if op[0] == "predictions":
                    history.predictions(*op[1:])
                else:
                    history.labels(*op[1:])
                expected = reference(con, q)
                horizon = history_horizon.refresh(con, "m", q)
                assert (horizon.delay_hours, horizon.labeled) == expected, op
                # the macro reads the row just stored, and answers the same
                got = store.sql(
                    "SELECT delay_hours, labeled FROM evalstore.label_horizon('m', $q, NULL)",
                    {"q": q},
                ).to_pylist()
                assert got == [{"delay_hours": expected[0], "labeled": expected[1]}]


def test_macro_reads_the_stored_row_only_at_its_watermark(open_copy, base):
    with open_copy(base) as store:
        history = History(store, 3)
        history.predictions(50, "v1", False)
        history.labels(1.0, 5, 0)
        con = store._context().connection
        delay, labeled = reference(con, 0.9)
        assert history_horizon.refresh(con, "m", 0.9).delay_hours == delay
        assert labeled == 50
        # a row at the current watermark is what the macro answers (here made wrong on
        # purpose to see which branch answered)
        con.execute("UPDATE evalstore.label_horizons SET delay_hours = -1.5, labeled = 7")
        sql = "SELECT delay_hours, labeled FROM evalstore.label_horizon('m', 0.9, NULL)"
        assert store.sql(sql).to_pylist() == [{"delay_hours": -1.5, "labeled": 7}]
        # another quantile has no row: computed from every label
        other = store.sql("SELECT delay_hours FROM evalstore.label_horizon('m', 0.5, NULL)")
        assert other.to_pylist() == [{"delay_hours": reference(con, 0.5)[0]}]
        # a new batch moves the watermark: the stale row is ignored
        history.predictions(5, "v2", True)
        assert store.sql(sql).to_pylist() == [
            {"delay_hours": reference(con, 0.9)[0], "labeled": reference(con, 0.9)[1]}
        ]


def test_late_labels_move_labels_due_in_the_persisted_call(open_copy, base):
    """Performance rows' labels_due/labels_complete follow the label-delay quantile as
    late labels move it: the persisted call equals a fresh call after each batch."""
    with open_copy(base) as store:
        ids = [f"e{i}" for i in range(40)]
        ts = [T0 + dt.timedelta(hours=6 * i) for i in range(40)]
        scores = [(i % 7) / 7 for i in range(40)]
        store.log_predictions(
            "m", pa.table({"example_id": ids, "score": scores, "ts": ts}), version="v1"
        )
        arguments = {"metrics": ["accuracy"], "window": "1 day"}
        dues = []
        for lag_hours, chunk in ((1, ids[:20]), (200, ids[20:35]), (2, ids[35:])):
            rows = [ts[ids.index(i)] + dt.timedelta(hours=lag_hours) for i in chunk]
            labels = pa.table({"example_id": chunk, "label": [1] * len(chunk), "ts": rows})
            store.log_labels("m", labels)
            kept = store.performance("m", persist=True, **arguments)
            fresh = store.performance("m", **arguments)
            assert kept.equals(fresh)
            dues.append(kept.column("labels_due")[0].as_py() - kept.column("window_end")[0].as_py())
        # 0.9 quantile of 20 delays of 1 h: 1 h; with 15 of 200 h (35 delays, ranks 30
        # and 31 of 0..34): 200 h; with 5 more of 2 h (40, ranks 35 and 36): 200 h
        assert dues == [dt.timedelta(hours=1), dt.timedelta(hours=200), dt.timedelta(hours=200)]
