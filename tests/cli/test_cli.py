"""The ``evalstore`` command line, driven through click's CliRunner."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import click
import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.ipc as ipc
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result

import evalstore
from evalstore.cli import main
from evalstore.core.layout import SCHEMA_VERSION
from evalstore.errors import ValidationError


def _utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, list(args), env=env, prog_name="evalstore")


def ok(*args: str) -> Result:
    result = invoke(*args)
    assert result.exit_code == 0, (result.output, result.exception)
    return result


def assert_one_line_error(result: Result, pattern: str) -> str:
    """Exit status 1, exactly one line on stderr, ``Error: ...``, and no traceback."""
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), repr(result.exception)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert re.search(pattern, lines[0]), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def registered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store made by `init` and `register` (built once; tests get a copy)."""
    path = str(tmp_path_factory.mktemp("registered") / "cli.duckdb")
    result = ok("init", path)
    assert result.stdout == f"store {path} ready (schema version {SCHEMA_VERSION})\n"
    ok(
        "-s",
        path,
        "register",
        "--model",
        "fraud",
        "--version",
        "v1",
        "--task",
        "binary",
        "--classes",
        "no,yes",
        "--threshold",
        "0.3",
        "--stage",
        "production",
        "--params",
        '{"depth": 4, "eta": 0.1}',
        "--dependencies",
        '{"xgboost": "2.1.0", "numpy": "2.1"}',
    )
    return Path(path)


@pytest.fixture
def store_path(registered: Path, tmp_path: Path) -> str:
    copy = tmp_path / "cli.duckdb"
    shutil.copyfile(registered, copy)
    return str(copy)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Features as Parquet, predictions as CSV, labels as Arrow IPC (file format)."""
    tmp_path = tmp_path_factory.mktemp("files")
    features = tmp_path / "features.parquet"
    pq.write_table(
        pa.table(
            {
                "example_id": ["a", "b", "c"],
                "ts": [_utc(2024, 1, 1, 1), _utc(2024, 1, 1, 2), _utc(2024, 1, 2, 3)],
                "income": [1000.0, 2500.5, None],
                "region": ["north", "south", "north"],
            }
        ),
        features,
    )
    predictions = tmp_path / "predictions.csv"
    predictions.write_text(
        "example_id,ts,score\n"
        "a,2024-01-01T01:00:00Z,0.1\n"
        "b,2024-01-01T02:00:00Z,0.3\n"
        "c,2024-01-02T03:00:00Z,0.8\n"
    )
    labels = tmp_path / "labels.arrow"
    table = pa.table(
        {
            "example_id": ["a", "c"],
            "label": ["no", "yes"],
            "ts": [_utc(2024, 1, 1, 7), _utc(2024, 1, 2, 5)],
        }
    )
    with ipc.new_file(labels, table.schema) as writer:
        writer.write_table(table)
    return {"features": features, "predictions": predictions, "labels": labels}


@pytest.fixture(scope="module")
def loaded(registered: Path, files: dict[str, Path]) -> str:
    """The registered store with the three files ingested; tests only read it."""
    store_path = str(registered.with_name("loaded.duckdb"))
    shutil.copyfile(registered, store_path)
    out = ok("-s", store_path, "ingest", "features", "-m", "fraud", str(files["features"]))
    assert out.stdout == "batch 1: 3 features rows; added columns income, region\n"
    out = ok(
        "-s", store_path, "ingest", "predictions", "-m", "fraud", "-v", "v1",
        str(files["predictions"]),
    )  # fmt: skip
    assert out.stdout == "batch 2: 3 predictions rows\n"
    out = ok(
        "-s", store_path, "ingest", "labels", "-m", "fraud", "--source", "chargebacks",
        str(files["labels"]),
    )  # fmt: skip
    assert out.stdout == "batch 3: 2 labels rows\n"
    return store_path


def _sql_json(store_path: str, query: str, *params: str) -> list[dict]:
    args = ["-s", store_path, "sql", query, "-f", "json"]
    for p in params:
        args += ["-p", p]
    return json.loads(ok(*args).stdout)


# ---------------------------------------------------------------- init, register, models


def test_init_creates_a_store_and_is_idempotent(tmp_path):
    path = tmp_path / "new.duckdb"
    assert ok("init", str(path)).stdout == f"store {path} ready (schema version {SCHEMA_VERSION})\n"
    assert path.exists()
    assert ok("init", str(path)).stdout == f"store {path} ready (schema version {SCHEMA_VERSION})\n"
    with evalstore.open(path, read_only=True) as store:
        assert store.models().num_rows == 0


def test_store_from_environment_variable(store_path):
    result = invoke("models", "-f", "json", env={"EVALSTORE_STORE": store_path})
    assert result.exit_code == 0, result.output
    assert [r["model"] for r in json.loads(result.stdout)] == ["fraud"]


def test_register_stores_classes_threshold_params_and_dependencies(store_path):
    [row] = _sql_json(store_path, "SELECT * FROM evalstore.models")
    assert row["model"] == "fraud" and row["version"] == "v1" and row["task"] == "binary"
    assert row["classes"] == ["no", "yes"]
    assert row["positive_class"] == "yes"
    assert row["threshold"] == 0.3
    assert row["stage"] == "production"
    assert json.loads(row["params"]) == {"depth": 4, "eta": 0.1}
    assert json.loads(row["dependencies"]) == {"xgboost": "2.1.0", "numpy": "2.1"}
    assert datetime.fromisoformat(row["created_at"]).utcoffset().total_seconds() == 0


def test_register_prints_what_it_did_and_integer_classes(store_path):
    out = ok(
        "-s", store_path, "register", "-m", "churn", "-v", "v7", "--task", "binary",
        "--classes", "0,1", "--positive-class", "0", "--trained-at", "2024-05-01T12:00:00Z",
    )  # fmt: skip
    assert out.stdout == "registered churn v7 (binary)\n"
    [row] = _sql_json(store_path, "SELECT * FROM evalstore.models WHERE model = ?", "churn")
    assert row["classes"] == ["0", "1"]
    assert row["positive_class"] == "0"
    assert row["trained_at"] == "2024-05-01T12:00:00+00:00"


def test_models_table_and_json(store_path):
    ok(
        "-s",
        store_path,
        "register",
        "-m",
        "fraud",
        "-v",
        "v2",
        "--task",
        "binary",
        "--classes",
        "no,yes",
    )
    text = ok("-s", store_path, "models").stdout.splitlines()
    # the table shows the columns chosen for reading; the others are named at the end
    # (trained_at, deployed_at, ... are NULL in every row, so they are left out too)
    assert text[0].split() == ["model", "version", "task", "stage", "classes", "threshold"]
    assert set(text[1]) <= {"-", " "}
    assert [line.split()[:2] for line in text[2:4]] == [["fraud", "v1"], ["fraud", "v2"]]
    assert text[4] == "(2 rows)"
    assert text[5].startswith("not shown: ")
    assert "params" in text[5] and "dependencies" in text[5]
    records = json.loads(ok("-s", store_path, "models", "-m", "fraud", "-f", "json").stdout)
    assert [r["version"] for r in records] == ["v1", "v2"]
    assert json.loads(ok("-s", store_path, "models", "-m", "nothing", "-f", "json").stdout) == []


# ---------------------------------------------------------------- ingest


def test_ingest_from_parquet_csv_and_arrow(loaded):
    features = _sql_json(loaded, "SELECT * EXCLUDE (batch_id) FROM fraud.features ORDER BY 1")
    assert [(r["example_id"], r["env"], r["income"], r["region"]) for r in features] == [
        ("a", "serving", 1000.0, "north"),
        ("b", "serving", 2500.5, "south"),
        ("c", "serving", None, "north"),
    ]
    assert features[2]["ts"] == "2024-01-02T03:00:00+00:00"
    predictions = _sql_json(
        loaded,
        "SELECT example_id, version, ts, score, prediction FROM fraud.predictions ORDER BY 1",
    )
    # threshold 0.3: a score at or above it predicts the positive class
    assert [(r["example_id"], r["score"], r["prediction"]) for r in predictions] == [
        ("a", 0.1, "no"),
        ("b", 0.3, "yes"),
        ("c", 0.8, "yes"),
    ]
    assert predictions[0]["ts"] == "2024-01-01T01:00:00+00:00"
    labels = _sql_json(loaded, "SELECT example_id, label, ts, source FROM fraud.labels ORDER BY 1")
    assert [tuple(r.values()) for r in labels] == [
        ("a", "no", "2024-01-01T07:00:00+00:00", "chargebacks"),
        ("c", "yes", "2024-01-02T05:00:00+00:00", "chargebacks"),
    ]
    batches = _sql_json(loaded, "SELECT kind, rows FROM evalstore.batches ORDER BY batch_id")
    assert [(b["kind"], b["rows"]) for b in batches] == [
        ("features", 3),
        ("predictions", 3),
        ("labels", 2),
    ]


def test_ingest_training_features_with_options(store_path, tmp_path):
    path = tmp_path / "train.csv"
    path.write_text("id,age\nt1,30\nt2,41\n")
    out = ok(
        "-s", store_path, "ingest", "features", "-m", "fraud", "--env", "training",
        "--dataset", "train_q3", "--id-column", "id", str(path),
    )  # fmt: skip
    assert out.stdout == "batch 1: 2 features rows; added columns age\n"
    rows = _sql_json(
        store_path, "SELECT example_id, env, dataset, age FROM fraud.features ORDER BY 1"
    )
    assert rows == [
        {"example_id": "t1", "env": "training", "dataset": "train_q3", "age": 30},
        {"example_id": "t2", "env": "training", "dataset": "train_q3", "age": 41},
    ]


# ---------------------------------------------------------------- sql and output formats

COVERAGE = "SELECT * FROM evalstore.label_coverage(?, '1 day') ORDER BY window_start"


def test_sql_json_has_iso_times(loaded):
    rows = _sql_json(loaded, COVERAGE, "fraud")
    assert rows == [
        {
            "model": "fraud",
            "version": "v1",
            "window_start": "2024-01-01T00:00:00+00:00",
            "window_end": "2024-01-02T00:00:00+00:00",
            "predictions": 2,
            "labeled": 1,
            "coverage": 0.5,
        },
        {
            "model": "fraud",
            "version": "v1",
            "window_start": "2024-01-02T00:00:00+00:00",
            "window_end": "2024-01-03T00:00:00+00:00",
            "predictions": 1,
            "labeled": 1,
            "coverage": 1.0,
        },
    ]
    assert datetime.fromisoformat(rows[0]["window_start"]) == _utc(2024, 1, 1)


def test_sql_csv(loaded):
    out = ok("-s", loaded, "sql", COVERAGE, "-p", "fraud", "-f", "csv").stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [(r["version"], r["predictions"], r["labeled"], r["coverage"]) for r in rows] == [
        ("v1", "2", "1", "0.5"),
        ("v1", "1", "1", "1"),
    ]
    assert rows[0]["window_start"].startswith("2024-01-01 00:00:00")
    back = pacsv.read_csv(io.BytesIO(out.encode()))
    assert back.column("window_end").to_pylist() == [_utc(2024, 1, 2), _utc(2024, 1, 3)]


def test_sql_arrow(loaded):
    result = ok("-s", loaded, "sql", COVERAGE, "-p", "fraud", "-f", "arrow")
    table = ipc.open_stream(io.BytesIO(result.stdout_bytes)).read_all()
    assert table.column_names == [
        "model",
        "version",
        "window_start",
        "window_end",
        "predictions",
        "labeled",
        "coverage",
    ]
    assert table.schema.field("window_start").type == pa.timestamp("us", tz="UTC")
    assert table.column("window_start").to_pylist() == [_utc(2024, 1, 1), _utc(2024, 1, 2)]
    assert table.column("coverage").to_pylist() == [0.5, 1.0]


def test_sql_table(loaded):
    out = ok("-s", loaded, "sql", COVERAGE, "-p", "fraud").stdout.splitlines()
    assert out[0].split() == [
        "model",
        "version",
        "window_start",
        "window_end",
        "predictions",
        "labeled",
        "coverage",
    ]
    # windows at midnight UTC print as dates
    assert out[2].split() == ["fraud", "v1", "2024-01-01", "2024-01-02", "2", "1", "0.5"]
    assert out[-1] == "(2 rows)"
    for option in ("--limit", "--max-rows"):  # --max-rows: the old name, still accepted
        truncated = ok("-s", loaded, "sql", COVERAGE, "-p", "fraud", option, "1").stdout
        assert (
            truncated.splitlines()[-1] == "… 1 more row (2 in all); use --limit 2 or --format csv"
        )
        assert len(truncated.splitlines()) == 4


def test_sql_several_params(loaded):
    rows = _sql_json(
        loaded,
        "SELECT count(*) AS n FROM fraud.predictions WHERE example_id IN (?, ?)",
        "a",
        "c",
    )
    assert rows == [{"n": 2}]


def test_sql_opens_the_store_read_only(loaded):
    assert_one_line_error(
        invoke("-s", loaded, "sql", "DELETE FROM fraud.labels"), r"^Error: .*read-only"
    )
    assert _sql_json(loaded, "SELECT count(*) AS n FROM fraud.labels") == [{"n": 2}]


# ---------------------------------------------------------------- errors


def test_error_missing_id_column_writes_nothing(store_path, tmp_path):
    path = tmp_path / "noid.csv"
    path.write_text("id,score\na,0.1\n")
    result = invoke("-s", store_path, "ingest", "predictions", "-m", "fraud", "-v", "v1", str(path))
    assert_one_line_error(result, r"^Error: missing column 'example_id' \(id_column='example_id'\)")
    assert _sql_json(store_path, "SELECT count(*) AS n FROM evalstore.batches") == [{"n": 0}]


def test_error_unknown_model(store_path, files):
    result = invoke("-s", store_path, "ingest", "labels", "-m", "nope", str(files["labels"]))
    assert_one_line_error(result, r"^Error: model 'nope' is not registered")


def test_error_unknown_version(store_path, files):
    result = invoke(
        "-s", store_path, "ingest", "predictions", "-m", "fraud", "-v", "v9",
        str(files["predictions"]),
    )  # fmt: skip
    assert_one_line_error(result, r"^Error: model 'fraud' has no version 'v9' \(registered: v1\)")


@pytest.mark.parametrize(
    "command",
    [["models"], ["sql", "SELECT 1"], ["register", "-m", "x", "-v", "1", "--task", "binary"]],
)
def test_error_store_missing(tmp_path, command):
    missing = tmp_path / "missing.duckdb"
    result = invoke("-s", str(missing), *command)
    assert_one_line_error(
        result, rf"^Error: store '{re.escape(str(missing))}' does not exist; create it with"
    )
    assert not missing.exists()


@pytest.mark.parametrize("option", ["--params", "--dependencies"])
def test_error_bad_json(store_path, option):
    result = invoke(
        "-s", store_path, "register", "-m", "fraud", "-v", "v2", "--task", "binary", option, "{bad",
    )  # fmt: skip
    assert_one_line_error(result, rf"^Error: {option} is not valid JSON: Expecting property name")
    assert [
        r["version"] for r in _sql_json(store_path, "SELECT version FROM evalstore.models")
    ] == ["v1"]


def test_error_register_conflict(store_path):
    result = invoke("-s", store_path, "register", "-m", "fraud", "-v", "v2", "--task", "regression")
    assert_one_line_error(result, r"^Error: model 'fraud' is registered with task 'binary'")


def test_error_bad_sql_is_one_line(store_path):
    result = invoke("-s", store_path, "sql", "SELECT * FROM nothere")
    assert_one_line_error(result, r"^Error: Catalog Error: Table with name nothere does not exist")


def test_error_unreadable_file(store_path, tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"garbage")
    result = invoke("-s", store_path, "ingest", "features", "-m", "fraud", str(path))
    assert_one_line_error(result, r"^Error: cannot read '.*broken\.parquet' as parquet")


# ---------------------------------------------------------------- help texts


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    yield prefix, group
    for name, command in group.commands.items():
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))
        else:
            yield (*prefix, name), command


COMMANDS = list(_commands(main))


def test_every_command_is_covered():
    names = {" ".join(path) for path, _ in COMMANDS}
    assert names == {
        "",
        "init",
        "register",
        "models",
        "ingest",
        "ingest features",
        "ingest predictions",
        "ingest labels",
        "sql",
        "demo",
        "drift",
        "quality",
        "summary",
        "validate",
        "schema",
        "schema infer",
        "schema show",
        "performance",
        "estimate",
        "slices",
        "skew",
        "compare",
        "health",
        "serve",
        "suggest",
        "requests",
        "requests list",
        "requests cancel",
        "requests expire",
        "select",
        "snapshot",
        "snapshot create",
        "snapshot list",
        "snapshot show",
        "snapshot delete",
        "monitor",
        "monitor add",
        "monitor apply",
        "monitor backtest",
        "monitor defaults",
        "monitor delete",
        "monitor list",
        "monitor prometheus-rules",
        "monitor run",
        "history",
        "alerts",
        "alerts list",
        "alerts ack",
        "alerts silence",
        "channel",
        "channel add",
        "channel list",
        "channel delete",
        "report",
        "ui",
        "lake",
        "lake export",
        "multivariate-drift",
    }


def _logical_lines(text: str) -> list[str]:
    """Non-empty lines, with shell continuations (trailing backslash) joined."""
    lines: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line and not pending:
            continue
        if line.endswith("\\"):
            pending += line[:-1].strip() + " "
            continue
        lines.append(pending + line)
        pending = ""
    return lines


@pytest.mark.parametrize(
    ("path", "command"), COMMANDS, ids=[" ".join(p) or "main" for p, _ in COMMANDS]
)
def test_help_ends_with_an_example(path, command):
    result = invoke(*path, "--help")
    assert result.exit_code == 0
    assert result.stdout.startswith(f"Usage: {' '.join(('evalstore', *path))} ")
    description = result.stdout.split("\nOptions:")[0]
    lines = _logical_lines(description)
    assert "Example:" in lines, description
    last = lines[-1]
    assert last.startswith("evalstore "), f"help of {path} does not end with an example: {last!r}"
    # the example runs the command it documents
    assert " ".join(path) in last


# ---------------------------------------------------------------- demo


@pytest.mark.slow
def test_demo_builds_a_store_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "demo.duckdb"
    out = ok("demo", str(path), "--days", "10").stdout
    for section in (
        "evalstore demo: model 'credit_default', 10 days of serving",
        "== Model registry",
        "== Ingest audit trail (evalstore.batches)",
        "(evalstore.volume)",
        "(evalstore.label_coverage)",
        "(evalstore.label_delay, v1)",
        f"Store written to {path}.",
    ):
        # prose is wrapped to the terminal: compare with the wrapped lines rejoined
        assert section in " ".join(line.strip() for line in out.splitlines()), section
    # the demo's tables fit the terminal like every other command's ($COLUMNS, else 120)
    widest = max(out.splitlines(), key=len)
    assert len(widest) <= 120, widest
    with evalstore.open(path, read_only=True) as store:
        kinds = store.sql(
            "SELECT kind, sum(rows)::BIGINT AS rows FROM evalstore.batches GROUP BY kind"
        ).to_pylist()
        serving_days = store.sql(
            "SELECT count(DISTINCT ts::DATE) AS d FROM credit_default.features "
            "WHERE env = 'serving'"
        ).to_pylist()
    totals = {r["kind"]: r["rows"] for r in kinds}
    assert set(totals) == {"features", "predictions", "labels"}
    assert all(n > 0 for n in totals.values())
    assert serving_days == [{"d": 10}]

    result = invoke("demo", str(path), "--days", "3")
    assert_one_line_error(result, r"demo\.duckdb exists; pass --overwrite to replace it")
    with evalstore.open(path, read_only=True) as store:  # untouched
        again = store.sql(
            "SELECT kind, sum(rows)::BIGINT AS rows FROM evalstore.batches GROUP BY kind"
        )
    assert {r["kind"]: r["rows"] for r in again.to_pylist()} == totals
    # --overwrite replacing a store: tests/test_docs_pages_metrics.py checks it on the quick
    # start's `evalstore demo demo.duckdb --overwrite --days 21` (one demo run fewer here)


def test_demo_rejects_non_positive_days(tmp_path):
    result = invoke("demo", str(tmp_path / "d.duckdb"), "--days", "0")
    assert_one_line_error(
        result,
        r"^Error: Invalid value for '--days': 0 is not in the range x>=1\. "
        r"\(see 'evalstore demo --help'\)$",
    )
    assert not (tmp_path / "d.duckdb").exists()


@pytest.fixture(scope="module")
def drifting(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A store where `x` shifts on the second day and `y` does not."""
    path = str(tmp_path_factory.mktemp("drift") / "drift.duckdb")
    rng = np.random.default_rng(11)
    start = datetime(2026, 5, 1, tzinfo=UTC)
    with evalstore.open(path) as store:
        store.register_model("m", "v1", "binary")
        n = 2000
        store.log_features(
            "m",
            pa.table(
                {
                    "example_id": [f"t{i}" for i in range(n)],
                    "x": rng.normal(size=n),
                    "y": rng.normal(size=n),
                }
            ),
            env="training",
        )
        shift = np.repeat([0.0, 2.0], n // 2)
        store.log_features(
            "m",
            pa.table(
                {
                    "example_id": [f"s{i}" for i in range(n)],
                    "ts": [
                        start + timedelta(days=int(s > 0), seconds=i) for i, s in enumerate(shift)
                    ],
                    "x": rng.normal(size=n) + shift,
                    "y": rng.normal(size=n),
                }
            ),
        )
    return path


def test_drift_prints_a_grid_with_drifted_cells_marked(drifting):
    out = ok("-s", drifting, "drift", "-m", "m", "--features", "x,y").stdout.splitlines()
    assert out[0].split() == ["feature", "05-01", "05-02"]
    assert out[2].split() == ["x", ".", "X"]
    assert out[3].split() == ["y", ".", "."]
    assert out[-1].startswith("X = drifted")


def test_drift_csv_matches_the_python_api(drifting):
    out = ok(
        "-s", drifting, "drift", "-m", "m", "--features", "x", "--methods", "ks,psi", "-f", "csv"
    ).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    with evalstore.open(drifting, read_only=True) as store:
        expected = store.drift("m", features=["x"], methods=["ks", "psi"]).to_pylist()
    assert [(r["method"], float(r["value"])) for r in rows] == [
        (e["method"], pytest.approx(e["value"], abs=1e-12)) for e in expected
    ]
    assert [r["drifted"] for r in rows] == ["false", "false", "true", "true"]


def test_drift_chunks_with_nannyml_split_match_the_python_api(drifting):
    out = ok(
        "-s", drifting, "drift", "-m", "m", "--features", "x", "--methods", "ks",
        "-w", "chunks:3:nannyml", "-f", "csv",
    ).stdout  # fmt: skip
    rows = list(csv.DictReader(io.StringIO(out)))
    with evalstore.open(drifting, read_only=True) as store:
        expected = store.drift(
            "m", features=["x"], methods=["ks"], window={"chunks": 3, "split": "nannyml"}
        ).to_pylist()
    assert [(float(r["value"]), r["variant"]) for r in rows] == [
        (pytest.approx(e["value"], abs=1e-12), e["variant"]) for e in expected
    ]
    assert len(rows) >= 3
    assert all("NannyML" in r["variant"] for r in rows)


def test_drift_rejects_an_unknown_chunk_split(drifting):
    result = invoke("-s", drifting, "drift", "-m", "m", "-w", "chunks:3:sometimes")
    assert result.exit_code != 0
    assert (
        "window={'chunks': 3, 'split': 'sometimes'}: split must be one of 'even', 'nannyml'"
        in result.output
    )


def test_drift_rejects_a_bad_reference(drifting):
    result = invoke("-s", drifting, "drift", "-m", "m", "-r", "yesterday")
    assert_one_line_error(
        result,
        r"^Error: Invalid value for '--reference': use training, validation, dataset:TAG, "
        r"previous:N or START\.\.END \(see 'evalstore drift --help'\)$",
    )


def test_quality_schema_and_validate_commands(drifting):
    # quality: x has no NaN/inf/unseen problems; the grid marks nothing but prints both days
    out = ok("-s", drifting, "quality", "-m", "m", "--features", "x").stdout.splitlines()
    assert out[0].split() == ["feature", "05-01", "05-02"]
    assert out[-1] == "X = a check failed, . = not, ? = undefined"
    # schema infer saves min/max of the training values; day two's shifted x exceeds max
    inferred = ok("-s", drifting, "schema", "infer", "-m", "m").stdout
    assert "x" in inferred and "numeric" in inferred
    shown = list(
        csv.DictReader(
            io.StringIO(ok("-s", drifting, "schema", "show", "-m", "m", "-f", "csv").stdout)
        )
    )
    with evalstore.open(drifting, read_only=True) as store:
        x_max = store.sql("SELECT max(x) FROM m.features WHERE env = 'training'").column(0)[0]
    assert {r["feature"]: float(r["max"]) for r in shown}["x"] == pytest.approx(x_max.as_py())
    failed = ok(
        "-s", drifting, "validate", "-m", "m", "--features", "x", "--failed", "-f", "csv"
    ).stdout
    rows = list(csv.DictReader(io.StringIO(failed)))
    assert {(r["window_start"][:10], r["method"]) for r in rows} == {("2026-05-02", "above_max")}


# ---------------------------------------------------------------- output that fits the terminal


def _lines(result: Result) -> list[str]:
    return result.stdout.splitlines()


WIDE_QUERY = (
    "SELECT i, i * 1.0e-7 AS tiny, repeat('abcdefgh ', 12) AS long_text, "
    "'2026-01-01 12:34:56'::TIMESTAMPTZ AS ts, i * 1000003 AS big, "
    "'a constant label' AS label_a, 'another label' AS label_b, 'third label' AS label_c "
    "FROM range(120) t(i)"
)


@pytest.mark.parametrize("columns", ["80", "120"])
def test_tables_fit_the_terminal_and_cap_the_rows(loaded, columns):
    result = invoke("-s", loaded, "sql", WIDE_QUERY, env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    lines = _lines(result)
    assert max(len(line) for line in lines) <= int(columns)
    assert lines[0].split()[:2] == ["i", "tiny"]
    assert lines[3].split()[:2] == ["1", "1e-07"]  # a number is never cut
    assert len([line for line in lines if re.match(r"^\d+ ", line)]) == 50
    assert "… 70 more rows (120 in all); use --limit 120 or --format csv" in lines
    assert "…" in lines[2]  # the long text is shortened, not wrapped


def test_limit_applies_to_every_format(loaded):
    query = "SELECT i FROM range(120) t(i)"
    assert len(_lines(ok("-s", loaded, "sql", query, "--limit", "0"))) == 2 + 120 + 1
    assert _lines(ok("-s", loaded, "sql", query, "--limit", "3"))[-1] == (
        "… 117 more rows (120 in all); use --limit 120 or --format csv"
    )
    assert len(_lines(ok("-s", loaded, "sql", query, "-f", "csv"))) == 1 + 120  # csv: all
    assert _lines(ok("-s", loaded, "sql", query, "-f", "csv", "--limit", "3")) == [
        '"i"', "0", "1", "2",
    ]  # fmt: skip
    assert json.loads(ok("-s", loaded, "sql", query, "-f", "json", "--limit", "2").stdout) == [
        {"i": 0},
        {"i": 1},
    ]
    arrow = ok("-s", loaded, "sql", query, "-f", "arrow", "--limit", "4").stdout_bytes
    assert ipc.open_stream(io.BytesIO(arrow)).read_all().column("i").to_pylist() == [0, 1, 2, 3]


def test_limit_is_on_every_tabular_command():
    tabular = {
        path: command for path, command in COMMANDS if any(p.name == "fmt" for p in command.params)
    }
    assert len(tabular) >= 15
    for path, command in tabular.items():
        names = {p.name for p in command.params}
        assert "limit" in names, path


def test_arrow_to_a_terminal_is_refused(loaded, monkeypatch):
    from evalstore.cli import render as cli_render

    monkeypatch.setattr(cli_render, "stdout_is_tty", lambda: True)
    result = invoke("-s", loaded, "sql", "SELECT 1 AS x", "-f", "arrow")
    assert_one_line_error(
        result,
        r"^Error: Invalid value for '--format' / '-f': arrow writes a binary Arrow IPC "
        r"stream, not for a terminal; redirect it .* or use --format csv or json "
        r"\(see 'evalstore sql --help'\)$",
    )


def test_suggest_shows_whole_reasons_wrapped(loaded):
    args = ["-s", loaded, "suggest", "-m", "fraud", "-k", "3", "--no-record"]
    reasons = [r["reason"] for r in json.loads(ok(*args, "-f", "json").stdout)]
    # one unlabeled example to suggest; its reason is longer than the terminal is wide
    assert len(reasons) == 1 and len(reasons[0]) > 60
    result = invoke(*args, env={"COLUMNS": "60"})
    assert result.exit_code == 0, result.output
    lines = _lines(result)
    assert max(len(line) for line in lines) <= 60
    start = lines[0].index("reason")
    text = " ".join(line[start:].strip() for line in lines[2:] if len(line) > start)
    for reason in reasons:
        assert " ".join(reason.split()) in text
    assert "…" not in result.stdout


@pytest.fixture(scope="module")
def sixty_days(tmp_path_factory: pytest.TempPathFactory) -> str:
    """Serving features over 60 days: more daily windows than a terminal shows."""
    path = str(tmp_path_factory.mktemp("sixty") / "sixty.duckdb")
    rng = np.random.default_rng(3)
    start = datetime(2026, 5, 1, tzinfo=UTC)
    with evalstore.open(path) as store:
        store.register_model("m", "v1", "binary")
        training = {"example_id": [f"t{i}" for i in range(200)], "x": rng.normal(size=200)}
        store.log_features("m", pa.table(training), env="training")
        n = 60 * 10
        serving = {
            "example_id": [f"s{i}" for i in range(n)],
            "ts": [start + timedelta(days=i // 10, minutes=i % 10) for i in range(n)],
            "x": rng.normal(size=n),
        }
        store.log_features("m", pa.table(serving))
    return path


@pytest.mark.parametrize("columns", ["80", "120"])
def test_drift_grid_defaults_to_weeks_when_days_do_not_fit(sixty_days, columns):
    result = invoke("-s", sixty_days, "drift", "-m", "m", env={"COLUMNS": columns})
    assert result.exit_code == 0, result.output
    lines = _lines(result)
    assert max(len(line) for line in lines) <= int(columns)
    header = lines[0].split()
    assert header[0] == "feature"
    # weekly windows (DuckDB's weeks start on Monday): 2026-04-27 ... 2026-06-29
    assert header[1:] == ["04-27", "05-04", "05-11", "05-18", "05-25", "06-01", "06-08",
                          "06-15", "06-22", "06-29"]  # fmt: skip
    note = " ".join(lines[lines.index(next(x for x in lines if x.startswith("note: "))) :])
    assert note == (
        f"note: 60 daily windows do not fit {columns} columns, so the windows are 7 days; "
        "pass --window '1 day' for days (the latest that fit, or all with --format csv)"
    )


def test_drift_grid_with_daily_windows_asked_for_shows_the_latest(sixty_days):
    result = invoke("-s", sixty_days, "drift", "-m", "m", "-w", "1 day", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = _lines(result)
    assert max(len(line) for line in lines) <= 80
    header = lines[0].split()
    assert header[-1] == "06-29"  # the last day, 2026-05-01 + 59 days
    assert len(header) - 1 == (80 - len("feature")) // 7
    assert not any(line.startswith("note: ") for line in lines)
    assert any(
        line.startswith(f"showing the latest {len(header) - 1} of 60 windows") for line in lines
    )
    # csv is not cut: every (window, feature, method) row
    csv_out = ok("-s", sixty_days, "drift", "-m", "m", "-w", "1 day", "-f", "csv").stdout
    days = {row["window_start"][:10] for row in csv.DictReader(io.StringIO(csv_out))}
    assert len(days) == 60


# ---------------------------------------------------------------- usage errors: one line, exit 1


@pytest.mark.parametrize(
    ("args", "pattern"),
    [
        (
            ["models", "--bogus"],
            r"^Error: No such option '--bogus'\. \(see 'evalstore models --help'\)$",
        ),
        (["drift"], r"^Error: Missing option '--model' / '-m'\. \(see 'evalstore drift --help'\)$"),
        (["nosuch"], r"^Error: No such command 'nosuch'\. \(see 'evalstore --help'\)$"),
        (["--nosuch"], r"^Error: No such option '--nosuch'\. \(see 'evalstore --help'\)$"),
        (
            ["ingest", "labels", "-m", "fraud", "missing.csv"],
            r"^Error: Invalid value for 'FILE': File 'missing\.csv' does not exist\. "
            r"\(see 'evalstore ingest labels --help'\)$",
        ),
        (
            ["models", "-f", "xml"],
            r"^Error: Invalid value for '--format' / '-f': 'xml' is not one of 'table', 'csv', "
            r"'json', 'arrow'\. \(see 'evalstore models --help'\)$",
        ),
    ],
)
def test_usage_errors_are_one_line_with_exit_status_1(args, pattern):
    assert_one_line_error(invoke(*args), pattern)


def test_usage_error_from_a_real_process():
    """The installed entry point, not only CliRunner: one line on stderr, status 1."""
    import subprocess
    import sys

    code = "from evalstore.cli import main; main(prog_name='evalstore')"
    done = subprocess.run(
        [sys.executable, "-c", code, "models", "--bogus"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr == "Error: No such option '--bogus'. (see 'evalstore models --help')\n"


# ---------------------------------------------------------------- startup


def test_importing_the_cli_loads_no_heavy_module():
    import subprocess
    import sys

    code = (
        "import sys, evalstore.cli\n"
        "heavy = ['duckdb', 'pyarrow', 'numpy', 'scipy', 'pandas', 'sqlglot', 'evalstore.store']\n"
        "print(','.join(m for m in heavy if m in sys.modules) or 'none')\n"
        "import evalstore\n"
        "print(evalstore.open.__module__, evalstore.Store.__name__, evalstore.Receipt.__name__)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["none", "evalstore.store Store Receipt"]


# ---------------------------------------------------------------- ingest: duplicates, label times


def test_a_file_ingested_twice_is_refused_before_it_is_streamed(
    loaded, files, tmp_path, monkeypatch
):
    from evalstore.cli import ingest_files as cli_ingest

    store_path = str(tmp_path / "again.duckdb")
    shutil.copyfile(loaded, store_path)
    streamed: list[str] = []
    real = cli_ingest.run_with_progress
    monkeypatch.setattr(
        cli_ingest,
        "run_with_progress",
        lambda path, reader, log: streamed.append(path) or real(path, reader, log),
    )
    result = invoke("-s", store_path, "ingest", "features", "-m", "fraud", str(files["features"]))
    assert_one_line_error(
        result,
        rf"^Error: 3 of the first 3 ids in {re.escape(str(files['features']))} are already "
        rf"stored for env 'serving' \(batch 1 from {re.escape(str(files['features']))}\), for "
        r"example \['a', 'b', 'c'\]; this file looks ingested already\. Nothing was written; "
        r"pass --on-conflict replace to overwrite them or --on-conflict ignore",
    )
    result = invoke(
        "-s", store_path, "ingest", "predictions", "-m", "fraud", "-v", "v1",
        str(files["predictions"]),
    )  # fmt: skip
    assert_one_line_error(
        result,
        r"^Error: 3 of the first 3 ids in .*predictions\.csv are already stored for version "
        r"'v1' \(batch 2 from .*predictions\.csv\), for example \['a', 'b', 'c'\]",
    )
    assert streamed == []  # refused before the progress bar (and the stream) started
    assert _sql_json(store_path, "SELECT count(*) AS n FROM evalstore.batches") == [{"n": 3}]
    # with --on-conflict ignore the file streams and every row is skipped
    out = ok(
        "-s", store_path, "ingest", "features", "-m", "fraud", "--on-conflict", "ignore",
        str(files["features"]),
    )  # fmt: skip
    assert out.stdout == "batch 4: 0 features rows; skipped 3 already stored\n"
    assert streamed == [str(files["features"])]


def test_labels_get_one_time_with_labeled_at(store_path, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("example_id,label\na,no\nb,yes\n")
    out = ok(
        "-s", store_path, "ingest", "labels", "-m", "fraud", "--labeled-at",
        "2024-01-05T12:00:00+02:00", str(path),
    )  # fmt: skip
    assert out.stdout == "batch 1: 2 labels rows\n"
    rows = _sql_json(store_path, "SELECT example_id, label, ts FROM fraud.labels ORDER BY 1")
    assert rows == [
        {"example_id": "a", "label": "no", "ts": "2024-01-05T10:00:00+00:00"},
        {"example_id": "b", "label": "yes", "ts": "2024-01-05T10:00:00+00:00"},
    ]
    # a date alone is midnight UTC
    dated = tmp_path / "dated.csv"
    dated.write_text("example_id,label\nc,no\n")
    out = ok(
        "-s", store_path, "ingest", "labels", "-m", "fraud", "--labeled-at", "2024-02-01",
        str(dated),
    )  # fmt: skip
    assert out.stdout == "batch 2: 1 labels rows\n"
    [row] = _sql_json(store_path, "SELECT ts FROM fraud.labels WHERE example_id = 'c'")
    assert row == {"ts": "2024-02-01T00:00:00+00:00"}
    # a file with its own time column is refused, not silently overridden; nothing written
    timed = tmp_path / "timed.csv"
    timed.write_text("example_id,label,ts\nd,no,2030-01-01T00:00:00Z\n")
    assert_one_line_error(
        invoke(
            "-s",
            store_path,
            "ingest",
            "labels",
            "-m",
            "fraud",
            "--labeled-at",
            "2024-02-01",
            str(timed),
        ),
        r"timed\.csv has a time column 'ts' and --labeled-at was given: keep one",
    )
    assert _sql_json(store_path, "SELECT count(*) AS n FROM evalstore.batches") == [{"n": 2}]


def test_labeled_at_errors(store_path, tmp_path):
    path = tmp_path / "labels.csv"
    path.write_text("example_id,label,when\na,no,2024-01-01\n")
    base = ["-s", store_path, "ingest", "labels", "-m", "fraud"]
    assert_one_line_error(
        invoke(*base, "--labeled-at", "last tuesday", str(path)),
        r"^Error: --labeled-at 'last tuesday' is not an ISO-8601 time; write e\.g\. 2026-11-30",
    )
    assert_one_line_error(
        invoke(*base, "--labeled-at", "2024-01-02", "--ts-column", "when", str(path)),
        r"^Error: give either --ts-column or --labeled-at, not both "
        r"\(see 'evalstore ingest labels --help'\)$",
    )
    assert _sql_json(store_path, "SELECT count(*) AS n FROM evalstore.batches") == [{"n": 0}]
    # --ts-column names the file's own time column
    out = ok(*base, "--ts-column", "when", str(path))
    assert out.stdout == "batch 1: 1 labels rows\n"
    assert _sql_json(store_path, "SELECT ts FROM fraud.labels") == [
        {"ts": "2024-01-01T00:00:00+00:00"}
    ]


# ---------------------------------------------------------------- a store another process holds


@pytest.fixture
def held(loaded: str):
    """The loaded store held open for writing by another process whose command line
    looks like `evalstore serve --port 8765` (no server is started)."""
    import subprocess
    import sys

    code = (
        "import sys, time, duckdb\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "print('holding', flush=True)\n"
        "sys.stdin.read()\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, loaded, "serve", "--port", "8765"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        yield loaded, holder.pid
    finally:
        holder.stdin.close()
        holder.wait(timeout=60)


def test_a_store_held_by_the_server_says_what_to_do(held):
    path, pid = held
    result = invoke("-s", path, "drift", "-m", "fraud", "-w", "7 days", env={"COLUMNS": "400"})
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        f"Error: store {path!r} is in use by process {pid} (evalstore serve at "
        "http://127.0.0.1:8765). A DuckDB file has one owner at a time; no other process "
        "can open it, not even to read.",
        "While it runs, ask the server instead (metric families take the command's options "
        "as query parameters):",
        "  curl -s 'http://127.0.0.1:8765/v1/models/fraud/drift?format=csv&window=7%20days'",
        "or read the BI snapshot it writes (serve --snapshot), or stop it.",
    ]
    # every command that opens the store says the same; others suggest /v1/sql
    for args in (["models"], ["sql", "SELECT 1"], ["ingest", "labels", "-m", "fraud", path]):
        result = invoke("-s", path, *args, env={"COLUMNS": "400"})
        assert result.exit_code == 1
        lines = result.stderr.splitlines()
        assert lines[0].startswith(f"Error: store {path!r} is in use by process {pid}")
        assert len(lines) == 4
        assert "/v1/sql -H 'content-type: application/json'" in lines[2]


def test_default_store_is_monitoring_duckdb(tmp_path, monkeypatch):
    """Without --store or $EVALSTORE_STORE: monitoring.duckdb in the current directory
    (evalstore.duckdb would open as catalog 'evalstore', which the library refuses)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVALSTORE_STORE", raising=False)
    assert ok("init").stdout == f"store monitoring.duckdb ready (schema version {SCHEMA_VERSION})\n"
    assert (tmp_path / "monitoring.duckdb").exists()
    assert ok("models", "-f", "json").stdout == "[]\n"


def test_ingest_receipt_comes_after_the_finished_progress_bar(store_path, files, monkeypatch):
    from evalstore.cli import ingest_files as cli_ingest

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    seen_by_receipt: list[str] = []
    receipt_lines = cli_ingest.receipt_lines
    monkeypatch.setattr(cli_ingest, "progress_stream", lambda: terminal)
    monkeypatch.setattr(
        cli_ingest,
        "receipt_lines",
        lambda receipt: seen_by_receipt.append(terminal.getvalue()) or receipt_lines(receipt),
    )
    out = ok("-s", store_path, "ingest", "features", "-m", "fraud", str(files["features"]))
    assert out.stdout == "batch 1: 3 features rows; added columns income, region\n"
    [bar] = seen_by_receipt
    assert "ingesting" in bar and "3/3" in bar
    assert bar.endswith("\n")  # the bar's line was ended before the receipt was printed


def test_serve_passes_time_range_and_max_windows_to_the_store(
    monkeypatch, tmp_path, empty_template, copy_template
):
    """--time-range / --max-windows reach evalstore.open; a malformed range is one line."""
    import server.serve

    opened = {}

    def fake_open(path, **kwargs):
        opened.update(kwargs, path=path)
        raise _Stop  # before serving

    monkeypatch.setattr(server.serve.evalstore, "open", fake_open)
    path = str(tmp_path / "s.duckdb")
    result = invoke("serve", path, "--time-range", "1800-01-01, 2300-01-01", "--max-windows", "50")
    assert isinstance(result.exception, _Stop), result.output
    assert opened == {"path": path, "time_range": ("1800-01-01", "2300-01-01"), "max_windows": 50}
    assert_one_line_error(
        invoke("serve", path, "--time-range", "1800-01-01"), r"--time-range.*two ISO-8601 times"
    )
    monkeypatch.undo()
    # (copies of an empty store file: an in-memory store would install every macro)
    wide = copy_template(empty_template, tmp_path, "wide.duckdb")
    with evalstore.open(wide, time_range=("1800-01-01", "2300-01-01")) as store:
        store.register_model("m", "v1", "binary")
        receipt = store.log_features("m", pa.table({"example_id": ["a"], "ts": [_dt(1850)]}))
        assert receipt.rows == 1
    default = copy_template(empty_template, tmp_path, "default.duckdb")
    with evalstore.open(default) as store, pytest.raises(ValidationError, match="ts"):
        store.register_model("m", "v1", "binary")
        store.log_features("m", pa.table({"example_id": ["a"], "ts": [_dt(1850)]}))


class _Stop(Exception):
    pass


def _dt(year: int) -> datetime:
    return datetime(year, 6, 1, tzinfo=UTC)
