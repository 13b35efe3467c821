"""Store files named like their models (issue 25, point 1).

``fraud.duckdb`` opens as DuckDB catalog ``fraud``; a bare ``fraud.features`` is then
ambiguous between that catalog and the model's schema. Every statement evalstore builds,
its views and its macros must work whatever the file is called, also when the file is
attached under another name (a BI tool's alias).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest

import evalstore
from evalstore.core.layout import SCHEMA_VERSION
from evalstore.errors import InvalidParameterError

START = datetime(2026, 3, 1, tzinfo=UTC)


def _features(rng: np.random.Generator, prefix: str, n: int, days: int, shift: float) -> pa.Table:
    return pa.table(
        {
            "example_id": [f"{prefix}{i}" for i in range(n)],
            "ts": [START + timedelta(hours=int(h)) for h in rng.integers(0, 24 * days, n)],
            "x1": rng.normal(shift, 1.0, n),
            "x2": rng.normal(0.0, 1.0, n),
            "region": rng.choice(["north", "south"], n).tolist(),
        }
    )


def _fill(store: evalstore.Store, model: str, task: str) -> None:
    """A small model with training, serving, predictions of two versions and labels."""
    rng = np.random.default_rng(3)
    classes = ["a", "b", "c"] if task == "multiclass" else None
    store.register_model(model, "v1", task, classes=classes, training_dataset="train")
    store.register_model(model, "v2", task, classes=classes)
    train = _features(rng, "t", 300, 10, 0.0)
    serve = _features(rng, "s", 300, 6, 0.5)
    store.log_features(model, train, env="training", dataset="train")
    store.log_features(model, serve, env="serving")
    n = serve.num_rows
    ids = serve.column("example_id")
    for version in ("v1", "v2"):
        columns = {"example_id": ids, "ts": serve.column("ts")}
        if task == "binary":
            score = rng.uniform(0, 1, n)
            columns |= {"prediction": (score > 0.5).astype(int).astype(str), "score": score}
        elif task == "multiclass":
            columns |= {"prediction": rng.choice(classes, n).tolist()}
        else:
            columns |= {"prediction": rng.normal(0, 1, n)}
        store.log_predictions(model, pa.table(columns), version)
    m = 200  # the first 200 served examples are labeled, the last 100 are not
    label_ts = [t + timedelta(hours=2) for t in serve.column("ts").to_pylist()[:m]]
    labels = {"example_id": ids[:m], "ts": label_ts}
    if task == "binary":
        labels["label"] = rng.integers(0, 2, m).astype(str)
    elif task == "multiclass":
        labels["label"] = rng.choice(classes, m).tolist()
    else:
        labels["label"] = rng.normal(0, 1, m)
    store.log_labels(model, pa.table(labels))


def _every_family(store: evalstore.Store, model: str, task: str) -> None:
    """Call each family once; each must return rows about the model (the families whose
    SQL depends on the task for every task, the others for binary only)."""
    assert store.drift(model, window="2 days").num_rows > 0
    assert store.quality(model, window="2 days").num_rows > 0
    assert store.performance(model, window="2 days", by="region").num_rows > 0
    assert store.compare(model, "v1", "v2", window="3 days").num_rows > 0
    if task != "binary":
        return
    assert store.multivariate_drift(model, window="3 days", methods=("pca",)).num_rows > 0
    assert store.infer_schema(model).num_rows > 0
    assert store.validate(model, window="2 days").num_rows > 0
    # no slice stands out and no example is both trained and served: empty, but answered
    assert "rank" in store.worst_slices(model, features=["region"]).column_names
    assert "feature" in store.skew(model).column_names
    assert store.health(model, window="1 day").num_rows > 0
    assert store.suggest(model, k=5, strategy="random").num_rows == 5
    assert store.label_requests(model).num_rows == 5
    selection = store.selection(model, env="serving")
    assert store.select(model, env="serving").num_rows == 200  # labeled_only
    info = store.snapshot(f"{model}_snap", selection)
    assert info["row_count"] == 200
    assert store.load_snapshot(f"{model}_snap").num_rows == 200


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_model_named_like_the_store_file(tmp_path, task):
    """`evalstore.open('fraud.duckdb')` then model 'fraud' works end to end."""
    path = tmp_path / "fraud.duckdb"
    with evalstore.open(path) as store:
        assert store.sql("SELECT current_database() AS c").to_pylist() == [{"c": "fraud"}]
        _fill(store, "fraud", task)
        _every_family(store, "fraud", task)
        counts = store.sql(
            "SELECT count(*) AS n FROM fraud.fraud.evaluations WHERE label IS NOT NULL"
        ).to_pylist()
        assert counts == [{"n": 400}]
    # reopening (migrations, macro stamp) and a read-only open work too
    with evalstore.open(path, read_only=True) as store:
        assert store.performance("fraud", window="30 days").num_rows > 0


def test_macros_and_views_from_plain_sql_whatever_the_catalog_is_called(tmp_path):
    """The persisted macros and views bind in a plain DuckDB connection, opened as
    catalog 'fraud' or attached under another alias and USEd (a BI tool)."""
    path = tmp_path / "fraud.duckdb"
    with evalstore.open(path) as store:
        _fill(store, "fraud", "binary")
        expected = store.sql(
            "SELECT kind, sum(rows) AS rows FROM evalstore.volume('fraud', '1 day') "
            "GROUP BY kind ORDER BY kind"
        ).to_pylist()
    assert expected == [
        {"kind": "features", "rows": 600},
        {"kind": "labels", "rows": 200},
        {"kind": "predictions", "rows": 600},
    ]
    queries = {
        "volume": "SELECT kind, sum(rows) AS rows FROM evalstore.volume('fraud', '1 day') "
        "GROUP BY kind ORDER BY kind",
        "coverage": "SELECT sum(labeled) AS labeled "
        "FROM evalstore.label_coverage('fraud', '7 days')",
        "relation": "SELECT count(*) AS n FROM evalstore.relation('fraud.numeric_values')",
        "view": "SELECT count(*) AS n FROM fraud.evaluations",
        "latest": "SELECT count(*) AS n FROM fraud.labels_latest",
    }
    plain = duckdb.connect(str(path), read_only=True)
    try:
        assert plain.execute(queries["volume"]).fetchall() == [
            (row["kind"], row["rows"]) for row in expected
        ]
        assert plain.execute(queries["coverage"]).fetchall() == [(400,)]
        # numeric rows: x1, x2 of 600 feature rows + score of 600 predictions
        assert plain.execute(queries["relation"]).fetchall() == [(1800,)]
        with pytest.raises(duckdb.BinderException, match="Ambiguous reference"):
            plain.execute(queries["view"])  # the user's own SQL must qualify
        assert plain.execute("SELECT count(*) FROM fraud.fraud.evaluations").fetchall() == [(600,)]
    finally:
        plain.close()
    alias = duckdb.connect()
    try:
        alias.execute(f"ATTACH '{path}' AS bi_copy (READ_ONLY)")
        alias.execute("USE bi_copy")
        assert alias.execute(queries["volume"]).fetchall() == [
            (row["kind"], row["rows"]) for row in expected
        ]
        assert alias.execute(queries["relation"]).fetchall() == [(1800,)]
        assert alias.execute(queries["view"]).fetchall() == [(600,)]
        assert alias.execute(queries["latest"]).fetchall() == [(200,)]
    finally:
        alias.close()


def test_store_file_named_evalstore_is_refused(tmp_path):
    """Catalog 'evalstore' would clash with the system schema: a clear error, no file."""
    path = tmp_path / "evalstore.duckdb"
    with pytest.raises(InvalidParameterError, match=r"catalog 'evalstore'.*another file name"):
        evalstore.open(path)
    assert not path.exists()
    with (
        evalstore.open(tmp_path / "monitoring.duckdb") as store,
        pytest.raises(InvalidParameterError, match="model name 'evalstore' is reserved"),
    ):
        store.register_model("evalstore", "v1", "binary")


def test_migration_rewrites_model_views_with_unqualified_names(tmp_path):
    """A store whose views name "model".table (schema version 7) gets them re-created."""
    path = tmp_path / "monitoring.duckdb"
    with evalstore.open(path) as store:
        _fill(store, "fraud", "binary")
        con = store.connection
        con.execute(
            "CREATE OR REPLACE VIEW fraud.labels_latest AS SELECT example_id, label, ts, source, "
            'batch_id, example_key FROM "fraud".labels WHERE superseded_by IS NULL'
        )
        con.execute("DELETE FROM evalstore.migrations WHERE version >= 8")
        con.execute("UPDATE evalstore.meta SET value = '7' WHERE key = 'schema_version'")
    (tmp_path / "monitoring.duckdb").rename(tmp_path / "fraud.duckdb")
    with evalstore.open(tmp_path / "fraud.duckdb") as store:
        sql = store.sql(
            "SELECT sql FROM duckdb_views() WHERE schema_name = 'fraud' "
            "AND view_name = 'labels_latest'"
        ).to_pylist()[0]["sql"]
        assert '"fraud".labels' not in sql and "FROM labels" in sql
        version = store.sql("SELECT value FROM evalstore.meta WHERE key = 'schema_version'")
        assert version.to_pylist() == [{"value": str(SCHEMA_VERSION)}]
        assert store.sql("SELECT count(*) AS n FROM fraud.fraud.labels_latest").to_pylist() == [
            {"n": 200}
        ]
