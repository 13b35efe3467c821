"""Every read family sees one snapshot while another thread ingests (issue 19, point 2).

A writer thread logs batches (features, predictions, labels of new examples, all
timed in 2030) into the same model through the store, while each family runs
repeatedly on a session. The analyses are restricted to times before 2025 (``until``,
or a ``where`` on ``ts``), so the rows they read never change: every run must succeed
and equal the run made before the writer started. The drift of *all* serving rows
does change while the writer runs; its numeric rows (numpy fast path) and categorical
rows (SQL macro, another statement) must still count the same analysis rows, and that
count must be one the committed batches can give.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pytest

import evalstore
from evalstore.core.db import Cleanup, transaction
from tests.conftest import blank_store

RUNS = 4
UNTIL = "2025-01-01"
SERVING = 240
BATCH = 40
START = datetime(2024, 1, 1, tzinfo=UTC)
LATER = datetime(2030, 1, 1, tzinfo=UTC)
#: the end of the serving rows (one every 3 hours from START)
SERVING_END = START + timedelta(hours=3 * SERVING)
_writer_ids = itertools.count()  # example ids stay new across writers of one store


def _features(rng: np.random.Generator, ids: list[str], start: datetime) -> pa.Table:
    n = len(ids)
    return pa.table(
        {
            "example_id": ids,
            "x": rng.normal(size=n),
            "y": rng.exponential(size=n),
            "c": rng.choice(["a", "b", "c"], n),
            "ts": [start + timedelta(hours=3 * i) for i in range(n)],
        }
    )


def _outputs(rng: np.random.Generator, ids: list[str], start: datetime, version: str):
    n = len(ids)
    ts = [start + timedelta(hours=3 * i) for i in range(n)]
    predictions = pa.table(
        {"example_id": ids, "score": rng.random(n), "ts": ts, "latency": rng.random(n) * 50}
    )
    labels = pa.table({"example_id": ids, "label": rng.integers(0, 2, n), "ts": ts})
    return predictions, labels


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[evalstore.Store]:
    """A file store with training rows, serving rows in 2024, predictions of two
    versions (v2 on half the examples), labels on two thirds, and a saved schema."""
    rng = np.random.default_rng(19)
    store = evalstore.open(tmp_path_factory.mktemp("concurrency") / "store.duckdb")
    store.register_model("m", "v1", "binary")
    store.register_model("m", "v2", "binary")
    train = [f"t{i}" for i in range(200)]
    store.log_features("m", _features(rng, train, START - timedelta(days=60)), env="training")
    ids = [f"s{i}" for i in range(SERVING)]
    store.log_features("m", _features(rng, ids, START))
    for version, chosen in (("v1", ids), ("v2", ids[::2])):
        predictions, _ = _outputs(rng, chosen, START, version)
        store.log_predictions("m", predictions, version=version, latency_column="latency")
    _, labels = _outputs(rng, ids[: 2 * SERVING // 3], START, "v1")
    store.log_labels("m", labels)
    store.infer_schema("m")
    yield store
    store.close()


class Writer:
    """A thread logging features, predictions and labels of new examples (in 2030)."""

    def __init__(self, store: evalstore.Store) -> None:
        self.store = store
        self.stop = threading.Event()
        self.rounds = 0
        self.errors: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.rng = np.random.default_rng(7)

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                ids = [f"w{next(_writer_ids)}" for _ in range(BATCH)]
                self.store.log_features("m", _features(self.rng, ids, LATER))
                predictions, labels = _outputs(self.rng, ids, LATER, "v1")
                self.store.log_predictions("m", predictions, version="v1", latency_column="latency")
                self.store.log_labels("m", labels)
                self.rounds += 1
        except BaseException as error:  # reported by the test
            self.errors.append(error)

    def __enter__(self) -> Writer:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop.set()
        self.thread.join(timeout=60)


#: Performance columns defined over every label of the model (the label-delay quantile),
#: which the writer's new labels (in 2030, delay 0) move by definition even for 2024
#: windows: a call made after one of its commits rightly differs there, so they are left
#: out of the comparison (every other column, values and counts, must not move).
MOVES_WITH_EVERY_LABEL = ("labels_due", "labels_complete")


def _rows(table: Any) -> list[str]:
    """A table's rows as reprs (NaN equals NaN), in order, without the columns of
    :data:`MOVES_WITH_EVERY_LABEL`."""
    if isinstance(table, pa.RecordBatchReader):
        table = table.read_all()
    kept = [name for name in table.column_names if name not in MOVES_WITH_EVERY_LABEL]
    return [repr(row) for row in table.select(kept).to_pylist()]


#: family name -> call on a store or session; each reads only rows timed before 2025
FAMILIES: dict[str, Callable[[evalstore.Store], Any]] = {
    "drift": lambda s: s.drift(
        "m", window="7 days", until=UNTIL, features=["x", "c", "score"], methods=["ks", "chi2"]
    ),
    "drift_previous": lambda s: s.drift(
        "m", reference={"previous": 2}, window="14 days", until=UNTIL, features=["x", "c"]
    ),
    "multivariate_drift": lambda s: s.multivariate_drift(
        "m", window="30 days", until=UNTIL, methods=["mmd", "pca"], n_permutations=20
    ),
    "quality": lambda s: s.quality("m", window="7 days", until=UNTIL),
    "validate": lambda s: s.validate("m", window="7 days", until=UNTIL),
    "skew": lambda s: s.skew("m", where=f"ts < '{UNTIL}'"),
    "skew_summary": lambda s: s.skew_summary("m", where=f"ts < '{UNTIL}'"),
    "performance": lambda s: s.performance(
        "m", window="7 days", until=UNTIL, by="c", n_boot=20, metrics=["roc_auc", "accuracy"]
    ),
    "compare": lambda s: s.compare("m", "v1", "v2", window="14 days", until=UNTIL),
    "worst_slices": lambda s: s.worst_slices(
        "m", until=UNTIL, metric="accuracy", include_all=True, top=None
    ),
    # health has no `until`: its windows run from the first row to the last, so the writer's
    # 2030 rows add empty windows after the serving rows (Feb 2024 on); keep the windows of
    # the serving rows, or the result would depend on whether an earlier test wrote 2030 rows
    "health": lambda s: s.health("m", window="1 day", sections="serving").filter(
        pa.compute.less(pa.compute.field("window_start"), pa.scalar(SERVING_END))
    ),
    # the slices strategy weighs each slice's labels of all times: left out
    "suggest": lambda s: s.suggest(
        "m",
        k=10,
        until=UNTIL,
        record=False,
        seed=3,
        weights={"entropy": 0.5, "committee": 0.2, "novelty": 0.2, "diversity": 0.1},
    ),
    "select": lambda s: s.select("m", until=UNTIL),
    "evaluations": lambda s: s.sql(
        "SELECT * FROM m.evaluations WHERE ts < ? ORDER BY example_id, version", [UNTIL]
    ),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_sees_one_snapshot_while_ingest_runs(store, family):
    call = FAMILIES[family]
    expected = _rows(call(store))
    assert expected, f"{family} returned no rows: the test would check nothing"
    failures, differing = [], 0
    with store.session() as session, Writer(store) as writer:
        for _ in range(RUNS):
            try:
                got = _rows(call(session))
            except Exception as error:  # every failure is reported below
                failures.append(f"{type(error).__name__}: {error}")
                continue
            differing += got != expected
    assert writer.errors == []
    assert failures == []
    assert differing == 0
    assert writer.rounds >= 1, "the writer never committed during the runs"


def test_drift_of_live_rows_counts_one_snapshot(store):
    """Numeric (numpy) and categorical (SQL) cells of one call count the same rows,
    and that count is the serving rows of some number of committed batches."""
    with store.session() as session, Writer(store) as writer:
        before = session.sql(
            "SELECT count(*) AS n FROM m.features WHERE env = 'serving'"
        ).to_pylist()[0]["n"]
        counts = []
        for _ in range(RUNS):
            table = session.drift("m", window={"chunks": 1}, features=["x", "c"], methods=["psi"])
            per_kind = {
                (row["kind"], row["feature"]): row["n_analysis"] for row in table.to_pylist()
            }
            assert set(per_kind) == {("numeric", "x"), ("categorical", "c")}
            assert per_kind[("numeric", "x")] == per_kind[("categorical", "c")]
            counts.append(per_kind[("numeric", "x")])
    assert writer.errors == []
    assert all(n >= before and (n - before) % BATCH == 0 for n in counts), counts
    assert counts == sorted(counts)


def test_cleanup_error_never_replaces_the_original_error():
    """A failed statement aborts DuckDB's transaction, so the cleanup that follows fails
    too; the caller must see the first error, and the connection must stay usable."""
    with blank_store() as store:
        con = store.connection
        failing = pytest.raises(evalstore.errors.InvalidParameterError, match="window='soon'")
        with failing, transaction(con), Cleanup() as later:
            con.execute("CREATE TEMP VIEW doomed AS SELECT 1 AS x")
            later.add(con.execute, "DROP VIEW doomed")
            try:
                con.execute("SELECT CAST('soon' AS INTERVAL)")
            except duckdb.Error as error:
                raise evalstore.errors.InvalidParameterError(
                    "window='soon' is not an interval"
                ) from error
        # rolled back: the view is gone and the connection takes new transactions
        assert con.execute(
            "SELECT count(*) FROM duckdb_views() WHERE view_name = 'doomed'"
        ).fetchall() == [(0,)]
        with transaction(con):
            assert con.execute("SELECT 41 + 1").fetchall() == [(42,)]


def test_a_failed_family_call_leaves_the_session_usable(store):
    """An error inside a family (here a bad predicate caught by DuckDB at run time)
    rolls its transaction back; the next call on the same session works."""
    with store.session() as session:
        with pytest.raises(duckdb.ConversionException, match="Could not convert string 'a'"):
            session.drift("m", window="7 days", until=UNTIL, where="CAST(c AS INTEGER) > 0")
        again = session.drift("m", window="7 days", until=UNTIL, features=["x"], methods=["ks"])
        assert again.num_rows > 0
        assert all(not math.isnan(v) for v in again.column("value").to_pylist() if v is not None)
