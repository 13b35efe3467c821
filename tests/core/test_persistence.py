"""A store file keeps its data, registry and macros across processes and versions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import evalstore
import evalstore.core.macros
from evalstore import InvalidParameterError, ReadOnlyError, StoreVersionError
from evalstore.core.layout import MIGRATIONS, SCHEMA_VERSION
from evalstore.core.macros import SQL_FILES, install_macros, macros_hash, sql_dir
from evalstore.core.values import feature_kinds

PROJECT = Path(__file__).parents[2]
MACROS = ("hours_between", "label_coverage", "label_delay", "model_table", "volume")


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _us(t: datetime) -> int:
    return int(t.timestamp()) * 1_000_000


# Predictions around the 2024-03-10 US daylight-saving change. Labels: e0 after 6 h (and a
# correction on 03-12 that must not change its delay), e1 after 12 h, e2 after 3 h.
PRED_TS = {
    "e0": _utc(2024, 3, 9, 1),
    "e1": _utc(2024, 3, 9, 23),
    "e2": _utc(2024, 3, 10),
    "e3": _utc(2024, 3, 10, 12),
    "e4": _utc(2024, 3, 11, 6),
}
DAY1, DAY2, DAY3 = _us(_utc(2024, 3, 9)), _us(_utc(2024, 3, 10)), _us(_utc(2024, 3, 11))
DAY = 86_400_000_000
EXPECTED_COVERAGE = [
    ("v1", DAY1, DAY1 + DAY, 2, 2, 1.0),
    ("v1", DAY2, DAY2 + DAY, 2, 1, 0.5),
    ("v1", DAY3, DAY3 + DAY, 1, 0, 0.0),
]
# (version, start, end, labeled, mean, p50, p90, max): day 1 delays [6, 12], day 2 [3]
EXPECTED_DELAY = [
    ("v1", DAY1, DAY1 + DAY, 2, 9.0, 9.0, 11.4, 12.0),
    ("v1", DAY2, DAY2 + DAY, 1, 3.0, 3.0, 3.0, 3.0),
]
DAY_0301 = _us(_utc(2024, 3, 1))
DAY_0312 = _us(_utc(2024, 3, 12))
EXPECTED_VOLUME = [
    ("features", "serving", DAY1, DAY1 + DAY, 2),
    ("features", "serving", DAY2, DAY2 + DAY, 2),
    ("features", "serving", DAY3, DAY3 + DAY, 1),
    ("features", "training", DAY_0301, DAY_0301 + DAY, 3),
    ("labels", None, DAY1, DAY1 + DAY, 1),
    ("labels", None, DAY2, DAY2 + DAY, 2),
    ("labels", None, DAY_0312, DAY_0312 + DAY, 1),
    ("predictions", "serving", DAY1, DAY1 + DAY, 2),
    ("predictions", "serving", DAY2, DAY2 + DAY, 2),
    ("predictions", "serving", DAY3, DAY3 + DAY, 1),
]

# One query per macro, with windows as epoch microseconds: run verbatim by this process
# (through evalstore) and by a second process with plain duckdb.
QUERIES = {
    "volume": "SELECT kind, env, epoch_us(window_start), epoch_us(window_end), rows "
    "FROM evalstore.volume('fraud', '1 day') ORDER BY ALL",
    "label_coverage": "SELECT version, epoch_us(window_start), epoch_us(window_end), "
    "predictions, labeled, coverage FROM evalstore.label_coverage('fraud', '1 day') ORDER BY ALL",
    "label_delay": "SELECT version, epoch_us(window_start), epoch_us(window_end), labeled, "
    "delay_mean_hours, delay_p50_hours, delay_p90_hours, delay_max_hours "
    "FROM evalstore.label_delay('fraud', '1 day') ORDER BY ALL",
}


def _rows(table: pa.Table) -> list[tuple]:
    return [tuple(row.values()) for row in table.to_pylist()]


def _assert_rows(actual: list, expected: list) -> None:
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected, strict=True):
        assert len(a) == len(e), (a, e)
        for x, y in zip(a, e, strict=True):
            if isinstance(y, float):
                assert x == pytest.approx(y, rel=1e-12), (a, e)
            else:
                assert x == y, (a, e)


def _populate(store: evalstore.Store) -> None:
    store.register_model(
        "fraud",
        "v1",
        "binary",
        classes=["no", "yes"],
        threshold=0.3,
        trained_at="2024-02-01T00:00:00Z",
        dependencies={"numpy": "2.1.0", "xgboost": "2.1.0"},
        params={"depth": 4},
    )
    ids = list(PRED_TS)
    store.log_features(
        "fraud",
        pa.table({"example_id": ids, "ts": list(PRED_TS.values()), "x": [1.0, 2, 3, 4, 5]}),
    )
    store.log_features(
        "fraud",
        pa.table(
            {"example_id": ["t0", "t1", "t2"], "ts": [_utc(2024, 3, 1, h) for h in (1, 2, 3)]}
        ),
        env="training",
    )
    store.log_predictions(
        "fraud",
        pa.table(
            {"example_id": ids, "ts": list(PRED_TS.values()), "score": [0.1, 0.2, 0.3, 0.4, 0.9]}
        ),
        "v1",
    )
    store.log_labels(
        "fraud",
        pa.table(
            {
                "example_id": ["e0", "e1", "e2"],
                "label": ["no", "yes", "no"],
                "ts": [_utc(2024, 3, 9, 7), _utc(2024, 3, 10, 11), _utc(2024, 3, 10, 3)],
            }
        ),
    )
    store.log_labels(
        "fraud", pa.table({"example_id": ["e0"], "label": ["yes"], "ts": [_utc(2024, 3, 12)]})
    )


@pytest.fixture
def store_file(template, copy_template, tmp_path: Path) -> Path:
    """A fresh copy of a store file made by :func:`_populate` (built once per session)."""
    built = template("persistence", _populate, "monitoring.duckdb")
    return copy_template(built, tmp_path, "monitoring.duckdb")


def _meta(path: Path) -> dict[str, str]:
    con = duckdb.connect(str(path), read_only=True)
    try:
        return dict(con.sql("SELECT key, value FROM evalstore.meta").fetchall())
    finally:
        con.close()


# ---------------------------------------------------------------- reopen


def test_reopened_store_keeps_data_registry_and_macros(store_file):
    with evalstore.open(store_file) as store:
        [row] = store.models().to_pylist()
        assert (row["model"], row["version"], row["task"]) == ("fraud", "v1", "binary")
        assert row["classes"] == ["no", "yes"]
        assert row["positive_class"] == "yes"
        assert row["threshold"] == 0.3
        assert row["trained_at"] == _utc(2024, 2, 1)
        assert json.loads(row["dependencies"]) == {"numpy": "2.1.0", "xgboost": "2.1.0"}
        assert json.loads(row["params"]) == {"depth": 4}
        counts = store.sql(
            "SELECT (SELECT count(*) FROM fraud.features) AS f, "
            "(SELECT count(*) FROM fraud.predictions) AS p, "
            "(SELECT count(*) FROM fraud.labels) AS l, "
            "(SELECT count(*) FROM evalstore.batches) AS b"
        ).to_pylist()
        assert counts == [{"f": 8, "p": 5, "l": 4, "b": 5}]
        # the threshold 0.3 decided the stored predictions
        predictions = store.sql("SELECT example_id, prediction FROM fraud.predictions ORDER BY 1")
        assert predictions.column("prediction").to_pylist() == ["no", "no", "yes", "yes", "yes"]
        _assert_rows(_rows(store.sql(QUERIES["volume"])), EXPECTED_VOLUME)
        _assert_rows(_rows(store.sql(QUERIES["label_coverage"])), EXPECTED_COVERAGE)
        _assert_rows(_rows(store.sql(QUERIES["label_delay"])), EXPECTED_DELAY)


def test_reopen_does_not_reinstall_matching_macros(store_file):
    before = _meta(store_file)
    assert before["macros_hash"] == macros_hash()
    assert before["macros_version"] == evalstore.__version__
    evalstore.open(store_file).close()
    assert _meta(store_file) == before  # macros_installed_at untouched
    con = duckdb.connect(str(store_file))
    try:
        assert install_macros(con) is False
        assert install_macros(con, force=True) is True
    finally:
        con.close()
    after = _meta(store_file)
    assert after["macros_hash"] == before["macros_hash"]
    installed = [datetime.fromisoformat(m["macros_installed_at"]) for m in (before, after)]
    assert installed[1] > installed[0]


def test_reopen_reinstalls_when_sql_text_changes(store_file, monkeypatch):
    original = evalstore.core.macros.sql_sources()
    body = "(epoch(t1) - epoch(t0)) / 3600.0"
    assert body in original["common.sql"], "hours_between's body changed; update this test"
    modified = {**original, "common.sql": original["common.sql"].replace(body, body + " * 60")}
    monkeypatch.setattr(evalstore.core.macros, "sql_sources", lambda: dict(modified))
    old_hash = _meta(store_file)["macros_hash"]

    with evalstore.open(store_file) as store:
        minutes = store.sql(
            "SELECT evalstore.hours_between(TIMESTAMPTZ '2024-01-01 00:00:00+00', "
            "TIMESTAMPTZ '2024-01-01 01:30:00+00') AS v"
        ).column("v")[0]
        assert minutes.as_py() == pytest.approx(90.0)
        # label_delay calls the helper, so it now reports minutes (e0's 6 h = 360)
        delay = store.sql(QUERIES["label_delay"]).to_pylist()[0]
        assert delay["delay_max_hours"] == pytest.approx(720.0)
    meta = _meta(store_file)
    assert meta["macros_hash"] == macros_hash(modified) != old_hash

    monkeypatch.undo()
    with evalstore.open(store_file) as store:
        _assert_rows(_rows(store.sql(QUERIES["label_delay"])), EXPECTED_DELAY)
    assert _meta(store_file)["macros_hash"] == old_hash


CHILD = textwrap.dedent(
    """
    import json, sys
    import duckdb
    assert "evalstore" not in sys.modules, "the child must not import evalstore"
    path, time_zone, queries = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    con = duckdb.connect(path)
    con.execute(f"SET TimeZone = '{time_zone}'")
    out = {name: con.sql(query).fetchall() for name, query in queries.items()}
    con.close()
    assert "evalstore" not in sys.modules
    print(json.dumps(out))
    """
)


@pytest.mark.parametrize("time_zone", ["UTC", "America/New_York"])
def test_second_process_with_plain_duckdb_gets_same_numbers(store_file, time_zone):
    with evalstore.open(store_file, read_only=True) as store:
        ours = {name: _rows(store.sql(query)) for name, query in QUERIES.items()}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, str(store_file), time_zone, json.dumps(QUERIES)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=store_file.parent,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    theirs = json.loads(done.stdout)
    for name, rows in ours.items():
        _assert_rows(theirs[name], rows)
    _assert_rows(theirs["volume"], EXPECTED_VOLUME)
    _assert_rows(theirs["label_coverage"], EXPECTED_COVERAGE)
    _assert_rows(theirs["label_delay"], EXPECTED_DELAY)


# ---------------------------------------------------------------- migrations and versions


def test_migrations_are_recorded_once(store_file):
    for _ in range(2):
        evalstore.open(store_file).close()
    con = duckdb.connect(str(store_file), read_only=True)
    try:
        rows = con.sql(
            "SELECT version, description FROM evalstore.migrations ORDER BY version"
        ).fetchall()
        version = con.sql(
            "SELECT value FROM evalstore.meta WHERE key = 'schema_version'"
        ).fetchall()
    finally:
        con.close()
    assert rows == [(m.version, m.description) for m in MIGRATIONS]
    assert version == [(str(SCHEMA_VERSION),)]
    assert MIGRATIONS[-1].version == SCHEMA_VERSION


WINDOW_LATEST = """
    SELECT example_id, label, batch_id FROM (
        SELECT *, row_number() OVER (PARTITION BY example_id ORDER BY batch_id DESC) AS r
        FROM m.labels
    ) WHERE r = 1 ORDER BY example_id
"""


def _labels_with_corrections(store: evalstore.Store) -> list[int]:
    """Three label batches where later ones correct some examples; their batch ids."""
    store.register_model("m", "v1", "binary", classes=["no", "yes"])
    batches = [
        {"example_id": ["a", "b", "c", "d"], "label": ["no", "no", "yes", "no"]},
        {"example_id": ["b", "c", "e"], "label": ["yes", "no", "yes"]},
        {"example_id": ["c", "f"], "label": ["yes", "no"]},
    ]
    return [store.log_labels("m", pa.table(batch)).batch_id for batch in batches]


def test_label_ingest_marks_superseded_labels(tmp_path):
    with evalstore.open(tmp_path / "s.duckdb") as store:
        b1, b2, b3 = _labels_with_corrections(store)
        marks = store.sql(
            "SELECT example_id, batch_id, superseded_by FROM m.labels ORDER BY example_id, batch_id"
        ).to_pylist()
        assert [(r["example_id"], r["batch_id"], r["superseded_by"]) for r in marks] == [
            ("a", b1, None), ("b", b1, b2), ("b", b2, None), ("c", b1, b2), ("c", b2, b3),
            ("c", b3, None), ("d", b1, None), ("e", b2, None), ("f", b3, None),
        ]  # fmt: skip
        latest = store.sql("SELECT example_id, label, batch_id FROM m.labels_latest ORDER BY 1")
        assert latest.to_pylist() == store.sql(WINDOW_LATEST).to_pylist()
        as_of_b2 = store.sql(
            "SELECT example_id, label FROM evalstore.labels_as_of('m', ?) ORDER BY 1", [b2]
        ).to_pylist()
        assert as_of_b2 == [
            {"example_id": "a", "label": "no"}, {"example_id": "b", "label": "yes"},
            {"example_id": "c", "label": "no"}, {"example_id": "d", "label": "no"},
            {"example_id": "e", "label": "yes"},
        ]  # fmt: skip
        with pytest.raises(evalstore.ValidationError):  # a rejected batch marks nothing
            store.log_labels("m", pa.table({"example_id": ["a", "c"], "label": ["yes", "x"]}))
        assert store.sql("SELECT count(*) AS n FROM m.labels_latest").to_pylist() == [{"n": 6}]
        assert store.sql(
            "SELECT count(*) AS n FROM m.labels WHERE superseded_by IS NOT NULL"
        ).to_pylist() == [{"n": 3}]


def test_migration_6_marks_the_labels_of_an_older_store(tmp_path):
    path = tmp_path / "old.duckdb"
    with evalstore.open(path) as store:
        _labels_with_corrections(store)
        expected = store.sql(WINDOW_LATEST).to_pylist()
    con = duckdb.connect(str(path))  # make it the layout of schema version 5
    _drop_example_keys(con, "m")
    con.execute("DROP VIEW m.labels_latest")
    con.execute("ALTER TABLE m.labels DROP COLUMN superseded_by")
    con.execute("CREATE VIEW m.labels_latest AS SELECT example_id, label FROM m.labels")
    con.execute("DELETE FROM evalstore.migrations WHERE version >= 6")
    con.execute("UPDATE evalstore.meta SET value = '5' WHERE key = 'schema_version'")
    con.close()
    with evalstore.open(path) as store:
        assert (
            store.sql(
                "SELECT example_id, label, batch_id FROM m.labels_latest ORDER BY 1"
            ).to_pylist()
            == expected
        )
        assert store.sql(
            "SELECT count(*) AS n FROM m.labels WHERE superseded_by IS NOT NULL"
        ).to_pylist() == [{"n": 3}]
        assert store.sql("SELECT max(version) AS v FROM evalstore.migrations").to_pylist() == [
            {"v": SCHEMA_VERSION}
        ]


def _drop_example_keys(con: duckdb.DuckDBPyConnection, model: str) -> None:
    """Make a model's tables the layout before schema version 7 (no example_key)."""
    for table in ("features", "predictions", "labels"):
        con.execute(f"ALTER TABLE {model}.{table} DROP COLUMN example_key")
    con.execute(
        f"CREATE OR REPLACE VIEW {model}.labels_latest AS SELECT example_id, label, ts, source, "
        f"batch_id FROM {model}.labels WHERE superseded_by IS NULL"
    )
    con.execute(
        f"CREATE OR REPLACE VIEW {model}.evaluations AS SELECT p.example_id, p.version, p.ts, "
        "p.prediction, p.score, p.probabilities, p.latency_ms, l.label, l.ts AS label_ts, "
        "l.source AS label_source, f.* EXCLUDE (example_id, env, dataset, ts, batch_id) "
        f"FROM {model}.predictions AS p LEFT JOIN {model}.labels_latest AS l "
        f"ON l.example_id = p.example_id LEFT JOIN {model}.features AS f "
        "ON f.example_id = p.example_id AND f.env = 'serving'"
    )


def test_migration_7_keys_the_rows_of_an_older_store(tmp_path):
    """Stored rows get example_key = the MD5 digest of the id (read as a little-endian
    128-bit integer, as DuckDB's md5_number) as a UUID, and the views join on it."""
    import hashlib
    import uuid

    path = tmp_path / "old.duckdb"
    evaluations = "SELECT * EXCLUDE (example_key) FROM m.evaluations ORDER BY example_id, version"
    with evalstore.open(path) as store:
        _labels_with_corrections(store)
        store.log_features("m", pa.table({"example_id": ["a", "b", "é", "x"], "f": [1.0, 2, 3, 4]}))
        store.log_predictions(
            "m", pa.table({"example_id": ["a", "c", "é", "x"], "prediction": ["no"] * 4}), "v1"
        )
        expected = store.sql(evaluations).to_pylist()
    con = duckdb.connect(str(path))  # make it the layout of schema version 6
    _drop_example_keys(con, "m")
    con.execute("DELETE FROM evalstore.migrations WHERE version >= 7")
    con.execute("UPDATE evalstore.meta SET value = '6' WHERE key = 'schema_version'")
    con.close()
    with pytest.raises(StoreVersionError, match=r"version 6, older .* open it once without"):
        evalstore.open(path, read_only=True)  # cannot migrate: refused, file untouched
    with evalstore.open(path) as store:
        assert store.sql(evaluations).to_pylist() == expected
        for table in ("features", "predictions", "labels"):
            rows = store.sql(f"SELECT example_id, example_key FROM m.{table}").to_pylist()
            assert rows and all(
                uuid.UUID(r["example_key"])
                == uuid.UUID(
                    int=int.from_bytes(hashlib.md5(r["example_id"].encode()).digest(), "little")
                )
                for r in rows
            )
        assert feature_kinds(store.connection, "m") == {"f": "numeric"}
        assert store.sql("SELECT max(version) AS v FROM evalstore.migrations").to_pylist() == [
            {"v": SCHEMA_VERSION}
        ]


@pytest.mark.parametrize("read_only", [False, True])
def test_newer_store_refuses_to_open(store_file, read_only):
    newer = SCHEMA_VERSION + 1
    con = duckdb.connect(str(store_file))
    con.execute("UPDATE evalstore.meta SET value = ? WHERE key = 'schema_version'", [str(newer)])
    con.close()
    with pytest.raises(StoreVersionError, match=r"upgrade evalstore") as info:
        evalstore.open(store_file, read_only=read_only)
    assert f"schema version {newer}" in str(info.value)
    assert f"({SCHEMA_VERSION})" in str(info.value)
    meta = _meta(store_file)  # nothing was migrated or reinstalled
    assert meta["schema_version"] == str(newer)


# ---------------------------------------------------------------- read-only


def test_read_only_reads_and_refuses_writes(store_file):
    with evalstore.open(store_file, read_only=True) as store:
        assert store.read_only is True
        assert "read-only" in repr(store)
        assert store.models().column("model").to_pylist() == ["fraud"]
        _assert_rows(_rows(store.sql(QUERIES["label_coverage"])), EXPECTED_COVERAGE)
        with pytest.raises(ReadOnlyError, match=r"read-only; open it with read_only=False"):
            store.register_model("fraud", "v2", "binary")
        with pytest.raises(ReadOnlyError, match=r"read-only"):
            store.log_labels("fraud", pa.table({"example_id": ["e3"], "label": ["no"]}))
        with pytest.raises(duckdb.Error, match=r"read-only"):
            store.sql("DELETE FROM fraud.labels")
    with evalstore.open(store_file, read_only=True) as store:
        assert store.sql("SELECT count(*) AS n FROM fraud.labels").to_pylist() == [{"n": 4}]
        assert store.models().num_rows == 1


def test_read_only_needs_an_existing_file(tmp_path):
    missing = tmp_path / "missing.duckdb"
    with pytest.raises(InvalidParameterError, match=r"needs an existing store file.*missing"):
        evalstore.open(missing, read_only=True)
    assert not missing.exists()
    with pytest.raises(InvalidParameterError, match=r"needs an existing store file"):
        evalstore.open(None, read_only=True)


# ---------------------------------------------------------------- catalog and packaging


def test_macros_are_documented_in_the_catalog(store_file):
    con = duckdb.connect(str(store_file), read_only=True)
    try:
        rows = con.sql(
            "SELECT function_name, function_type, comment FROM duckdb_functions() "
            "WHERE database_name = current_database() AND schema_name = 'evalstore' "
            "AND function_type IN ('macro', 'table_macro') ORDER BY function_name"
        ).fetchall()
    finally:
        con.close()
    names = {name for name, _, _ in rows}
    assert set(MACROS) <= names
    for name, kind, comment in rows:
        assert comment and comment.strip(), f"macro evalstore.{name} ({kind}) has no COMMENT"
    kinds = {name: kind for name, kind, _ in rows}
    assert kinds["volume"] == kinds["label_delay"] == "table_macro"
    assert kinds["hours_between"] == "macro"


def test_sql_dir_holds_every_macro_file():
    directory = sql_dir()
    assert directory.is_dir()
    for name in SQL_FILES:
        assert (directory / name).is_file(), name
    assert (directory / "common.sql").read_text() == (PROJECT / "sql" / "common.sql").read_text()


def test_wheel_ships_the_sql_files(tmp_path):
    built = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(tmp_path),
            str(PROJECT),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert built.returncode == 0, built.stderr
    [wheel] = tmp_path.glob("evalstore-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        for name in SQL_FILES:
            packaged = f"evalstore/sql/{name}"
            assert packaged in names
            assert archive.read(packaged) == (PROJECT / "sql" / name).read_bytes()
        assert {"evalstore/core/macros.py", "server/app.py"} <= names
        archive.extractall(tmp_path / "site")
    # installed from the wheel, sql_dir() finds the packaged copy
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import evalstore, evalstore.core.macros as m; print(evalstore.__file__); "
            "print(m.sql_dir()); print(*(p.name for p in m.sql_dir().iterdir()))",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(tmp_path / "site")},
        cwd=tmp_path,
        check=False,
    )
    assert found.returncode == 0, found.stderr
    module, directory, listing = found.stdout.splitlines()
    assert Path(module).is_relative_to(tmp_path / "site")
    assert Path(directory) == tmp_path / "site" / "evalstore" / "sql"
    assert set(SQL_FILES) <= set(listing.split())


def test_session_is_a_second_connection_on_the_same_store(store_file):
    with evalstore.open(store_file) as store:
        with store.session() as session:
            assert session.connection is not store.connection
            assert session.path == store.path and session.read_only is False
            _assert_rows(_rows(session.sql(QUERIES["label_coverage"])), EXPECTED_COVERAGE)
            # a commit on the store is seen by the session's next statement ...
            store.log_labels("fraud", pa.table({"example_id": ["e9"], "label": ["no"]}))
            assert session.sql("SELECT count(*) AS n FROM fraud.labels").to_pylist() == [{"n": 5}]
            # ... its temporary objects are its own, and it shows times in UTC
            session.sql("CREATE TEMP VIEW mine AS SELECT 1 AS x")
            with pytest.raises(duckdb.CatalogException, match="mine"):
                store.sql("SELECT * FROM mine")
            zone = session.sql("SELECT current_setting('TimeZone') AS z").to_pylist()
            assert zone == [{"z": "UTC"}]
            # the scipy p-value UDFs are the database's: a session uses them too
            p = session.sql("SELECT evalstore_normal_pvalue(1.959963984540054) AS p")
            assert p.column("p")[0].as_py() == pytest.approx(0.05, abs=1e-12)
        with pytest.raises(duckdb.ConnectionException):
            session.sql("SELECT 1")
        # closing the session leaves the store open
        assert store.sql("SELECT count(*) AS n FROM fraud.labels").to_pylist() == [{"n": 5}]
    with evalstore.open(store_file, read_only=True) as store, store.session() as session:
        assert session.read_only is True
        with pytest.raises(ReadOnlyError, match="read-only"):
            session.register_model("fraud", "v2", "binary")


def test_connections_run_asof_joins_as_asof_joins(tmp_path):
    """The drift macros' ASOF joins must not become nested loops (DuckDB's
    asof_loop_join_threshold, 64 by default): 0 on the store and on its cursors."""
    from evalstore.core.db import utc_cursor

    with evalstore.open(tmp_path / "s.duckdb") as store:
        setting = "SELECT current_setting('asof_loop_join_threshold') AS t"
        assert store.sql(setting).to_pylist() == [{"t": 0}]
        cursor = utc_cursor(store.connection)
        try:
            assert cursor.execute(setting).fetchall() == [(0,)]
        finally:
            cursor.close()
