"""Ingest benchmark: evalstore's validated, transactional ingest vs raw DuckDB.

Writes ``--rows`` rows (default 1,000,000) of 20 float64 + 5 string features, plus an
``example_id`` string and a ``ts`` timestamp, into a fresh DuckDB *file* in a temporary
directory, and prints one line per case:

* ``duckdb CTAS from Arrow (raw reference)``: ``duckdb.connect(file)``, ``CREATE TABLE t
  AS SELECT * FROM arrow_table``, ``close()`` (checkpoint), all timed. The yardstick for
  the ratio column.
* Peers: DuckDB's own Parquet reader (``CREATE TABLE t AS SELECT * FROM read_parquet``)
  on the same file the Parquet cases read, and pandas ``df.to_parquet``.
* ``evalstore log_features(...)`` from a pyarrow Table, a pandas DataFrame and a Parquet
  path (in-process), and ``evalstore CLI ingest features`` on that Parquet file (run as
  a subprocess; its time includes interpreter start-up and imports).
* ``evalstore ... store holds N rows``: the Arrow case into a store that already holds
  ``--rows`` serving rows with other ids, so the duplicate-id check joins against them.

For each evalstore case the store is created and the model registered untimed; the timed
region is ``log_features`` (plan, insert, validation queries, COMMIT) plus ``Store.close``
(checkpoint), mirroring the raw line, which is timed from connect to close.

Every case runs ``--repeat`` times (default 3), each time in a fresh subprocess
(``bench_ingest.py --case NAME`` re-invoking this file), interleaved across cases; the
table shows medians. Besides wall time it shows the run's CPU time (all threads) and the
CPU time other processes took meanwhile, which tells a slow run on a shared machine from
a slow ingest. Peak RSS is the process's high-water mark (``VmHWM``, what ``ru_maxrss``
reports), reset to the current RSS once the input data is built (``/proc/self/clear_refs``)
so it covers the timed region; the baseline is the RSS at that point (input data,
interpreter, imports, open store). For the CLI case both figures are the CLI process's
``ru_maxrss`` (``RUSAGE_CHILDREN`` of a small launcher), the baseline that of
``evalstore --version``.

Data generation is deterministic (``numpy.random.default_rng(0)``).

Usage::

    python benchmarks/bench_ingest.py [--rows N] [--repeat R]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from harness import (
    Timed,
    emit,
    host_busy_seconds,
    kib_to_mb,
    load_average,
    median,
    run_cases,
    run_child,
    setting,
    start_measuring,
    table,
    versions,
)

import evalstore

MODEL = "bench"
FLOAT_FEATURES = 20
STRING_FEATURES = 5
TARGET_RATIO = 1.5
TARGET_ROWS_PER_S = 1_000_000
RAW = "raw-ctas"
TARGET_CASE = "arrow"
PARQUET_FILE = "features.parquet"


# ---------------------------------------------------------------- data


def make_table(rows: int, id_offset: int = 0) -> pa.Table:
    """``rows`` feature rows: example_id, ts, f00..f19 (float64), s0..s4 (string).

    Deterministic: numpy ``default_rng(0)``. String feature ``s<i>`` draws from
    ``10 ** (i + 1)`` distinct values (10 to 100,000), like categorical features from a
    country code to a merchant id. Ids are ``ex-<9 digits>`` from ``id_offset`` on.
    """
    rng = np.random.default_rng(0)
    ids = pa.array(np.arange(id_offset, id_offset + rows)).cast(pa.string())
    columns: dict[str, pa.Array] = {
        "example_id": pc.binary_join_element_wise("ex-", pc.utf8_lpad(ids, 9, "0"), ""),
        "ts": pa.array(
            np.datetime64("2026-01-01T00:00:00", "us")
            + rng.integers(0, 30 * 86_400 * 10**6, rows).astype("timedelta64[us]")
        ),
    }
    for i in range(FLOAT_FEATURES):
        columns[f"f{i:02d}"] = pa.array(rng.standard_normal(rows))
    for i in range(STRING_FEATURES):
        cardinality = 10 ** (i + 1)
        vocabulary = pa.array([f"s{i}_{v:06d}" for v in range(cardinality)])
        codes = pa.array(rng.integers(0, cardinality, rows, dtype=np.int32))
        columns[f"s{i}"] = pa.DictionaryArray.from_arrays(codes, vocabulary).cast(pa.string())
    return pa.table(columns)


# ---------------------------------------------------------------- cases (child side)


def _fresh(workdir: Path, name: str, suffix: str = ".duckdb") -> Path:
    path = workdir / f"{name}-{os.getpid()}{suffix}"
    _remove(path)
    return path


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    Path(f"{path}.wal").unlink(missing_ok=True)


def _new_store(path: Path) -> evalstore.Store:
    store = evalstore.open(path)
    store.register_model(MODEL, "v1", "binary")
    return store


def _stored_rows(path: Path, env: str = "serving") -> int:
    with evalstore.open(path, read_only=True) as store:
        table = store.sql(f"SELECT count(*) AS n FROM {MODEL}.features WHERE env = ?", [env])
    return table.column("n")[0].as_py()


def _evalstore_case(workdir: Path, name: str, data: Any, prefilled: Path | None = None) -> dict:
    path = _fresh(workdir, name)
    if prefilled is not None:
        shutil.copyfile(prefilled, path)
        before = _stored_rows(path)
        store = evalstore.open(path)
    else:
        before = 0
        store = _new_store(path)
    measured = start_measuring()
    with Timed() as timed:
        receipt = store.log_features(MODEL, data)
        store.close()
    result = timed.result(measured, rows=receipt.rows)
    written = _stored_rows(path) - before
    if written != receipt.rows:
        raise RuntimeError(f"{name}: receipt says {receipt.rows} rows, the store has {written}")
    _remove(path)
    return result


def _raw_ctas(workdir: Path, name: str, source: str, data: Any = None) -> dict:
    """``CREATE TABLE t AS <source>`` into a fresh DuckDB file, connect to close."""
    path = _fresh(workdir, name)
    measured = start_measuring()
    with Timed() as timed:
        con = duckdb.connect(str(path))
        if data is not None:
            con.register("arrow_table", data)
        con.execute(f"CREATE TABLE t AS {source}")
        con.close()
    with duckdb.connect(str(path), read_only=True) as check:
        written = check.execute("SELECT count(*) FROM t").fetchone()[0]
    _remove(path)
    return timed.result(measured, rows=written)


def case_raw_ctas(workdir: Path, rows: int) -> dict:
    return _raw_ctas(workdir, RAW, "SELECT * FROM arrow_table", make_table(rows))


def case_raw_parquet(workdir: Path, rows: int) -> dict:
    parquet = str(workdir / PARQUET_FILE).replace("'", "''")
    return _raw_ctas(workdir, "raw-parquet", f"SELECT * FROM read_parquet('{parquet}')")


def case_pandas_parquet(workdir: Path, rows: int) -> dict:
    frame = make_table(rows).to_pandas()
    path = _fresh(workdir, "pandas", ".parquet")
    measured = start_measuring()
    with Timed() as timed:
        frame.to_parquet(path)
    written = pq.ParquetFile(path).metadata.num_rows
    _remove(path)
    return timed.result(measured, rows=written)


def case_arrow(workdir: Path, rows: int) -> dict:
    return _evalstore_case(workdir, "arrow", make_table(rows))


def case_pandas(workdir: Path, rows: int) -> dict:
    return _evalstore_case(workdir, "pandas", make_table(rows).to_pandas())


def case_parquet_api(workdir: Path, rows: int) -> dict:
    return _evalstore_case(workdir, "parquet-api", str(workdir / PARQUET_FILE))


def case_arrow_prefilled(workdir: Path, rows: int) -> dict:
    prefilled = workdir / "prefilled.duckdb"
    return _evalstore_case(workdir, "prefilled", make_table(rows), prefilled=prefilled)


def _cli_command() -> list[str]:
    script = Path(sys.executable).with_name("evalstore")
    if script.exists():
        return [str(script)]
    found = shutil.which("evalstore")
    if found:
        return [found]
    return [sys.executable, "-c", "from evalstore.cli import main; main()"]


#: Runs a command; prints its wall and CPU seconds and ``ru_maxrss`` as JSON. The CLI is
#: started from this small interpreter because a child's ``ru_maxrss`` starts from the
#: high-water mark of the process that spawned it (the kernel carries it over at exec).
_LAUNCHER = """
import json, resource, subprocess, sys, time
start = time.perf_counter()
done = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
seconds = time.perf_counter() - start
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({
    "seconds": seconds, "cpu_seconds": usage.ru_utime + usage.ru_stime,
    "maxrss": usage.ru_maxrss, "returncode": done.returncode,
    "stderr": done.stderr.decode(errors="replace")[-2000:],
}))
"""


def _launch(command: list[str]) -> dict:
    done = subprocess.run(
        [sys.executable, "-S", "-c", _LAUNCHER, *command], capture_output=True, check=True
    )
    result = json.loads(done.stdout)
    if result["returncode"]:
        raise RuntimeError(f"{' '.join(command)} failed: {result['stderr'].strip()}")
    return result


def case_parquet_cli(workdir: Path, rows: int) -> dict:
    cli = _cli_command()
    path = _fresh(workdir, "parquet-cli")
    _new_store(path).close()
    idle = _launch([*cli, "--version"])
    host = host_busy_seconds()
    run = _launch(
        [*cli, "-s", str(path), "ingest", "features", "--model", MODEL, str(workdir / PARQUET_FILE)]
    )
    host = host_busy_seconds() - host
    result = {
        "seconds": run["seconds"],
        "cpu_seconds": run["cpu_seconds"],
        "other_cpu_seconds": max(0.0, host - run["cpu_seconds"]),
        "rows": _stored_rows(path),
        "peak_mb": kib_to_mb(run["maxrss"]),
        "baseline_mb": kib_to_mb(idle["maxrss"]),
        "peak_reset": False,
    }
    _remove(path)
    return result


def prepare(workdir: Path, rows: int) -> dict:
    """Untimed inputs shared by the runs: the Parquet file and the prefilled store."""
    table = make_table(rows)
    pq.write_table(table, workdir / PARQUET_FILE)
    del table
    prefilled = workdir / "prefilled.duckdb"
    _remove(prefilled)
    with _new_store(prefilled) as store:
        store.log_features(MODEL, make_table(rows, id_offset=rows))
    metadata = pq.ParquetFile(workdir / PARQUET_FILE).metadata
    return {
        "parquet_mb": (workdir / PARQUET_FILE).stat().st_size / 1e6,
        "row_groups": metadata.num_row_groups,
        "compression": metadata.row_group(0).column(0).compression if rows else "none",
    }


#: key -> (label, function); the table follows this order.
CASES: dict[str, tuple[str, Callable[[Path, int], dict]]] = {
    RAW: ("duckdb CTAS from Arrow (raw reference)", case_raw_ctas),
    "raw-parquet": ("duckdb CTAS from read_parquet (peer)", case_raw_parquet),
    "pandas-parquet": ("pandas df.to_parquet (peer)", case_pandas_parquet),
    "arrow": ("evalstore log_features(pyarrow.Table)", case_arrow),
    "pandas": ("evalstore log_features(pandas.DataFrame)", case_pandas),
    "parquet-api": ("evalstore log_features(parquet path)", case_parquet_api),
    "parquet-cli": ("evalstore CLI ingest features parquet", case_parquet_cli),
    "arrow-prefilled": (
        "evalstore log_features(Table), store holds {n} rows",
        case_arrow_prefilled,
    ),
}


# ---------------------------------------------------------------- driver (parent side)


def _versions() -> str:
    return versions("duckdb", "pyarrow", "pandas", "numpy", "evalstore")


def _fmt_int(value: float) -> str:
    return f"{value:,.0f}"


def report(
    rows: int, results: dict[str, list[dict]], repeat: int, load: list[float], inputs: dict
) -> str:
    """The results table (medians), with the setting and the targets."""
    raw = median(results[RAW], "seconds")
    header = (
        "case",
        "rows",
        "seconds",
        "rows/s",
        "ratio vs raw DuckDB CTAS",
        "peak RSS MB",
        "baseline RSS MB",
        "CPU s",
        "other procs CPU s",
        "runs (s)",
    )
    lines = []
    for key, runs in results.items():
        seconds = median(runs, "seconds")
        lines.append(
            (
                CASES[key][0].format(n=_fmt_int(rows)),
                _fmt_int(runs[0]["rows"]),
                f"{seconds:.3f}",
                _fmt_int(runs[0]["rows"] / seconds),
                f"{seconds / raw:.2f}x",
                f"{median(runs, 'peak_mb'):.0f}",
                f"{median(runs, 'baseline_mb'):.0f}",
                f"{median(runs, 'cpu_seconds'):.2f}",
                f"{median(runs, 'other_cpu_seconds'):.2f}",
                " ".join(f"{run['seconds']:.2f}" for run in runs),
            )
        )
    target = results[TARGET_CASE]
    ratio = median(target, "seconds") / raw
    speed = target[0]["rows"] / median(target, "seconds")
    not_reset = [
        key for key, runs in results.items() if key != "parquet-cli" and not runs[0]["peak_reset"]
    ]
    out = [
        *setting(
            f"evalstore ingest benchmark: {_fmt_int(rows)} rows x ({FLOAT_FEATURES} float64 + "
            f"{STRING_FEATURES} string features, example_id string, ts timestamp) into a "
            "DuckDB file",
            _versions(),
            load,
        ),
        f"Parquet input (pyarrow write_table defaults): {inputs['parquet_mb']:.0f} MB, "
        f"{inputs['row_groups']} row group(s), {inputs['compression']}; read from the page cache",
        f"median of {repeat} run(s), each in a fresh process. seconds: connect/log_features to "
        "close, incl. commit and checkpoint; CPU s: user + system, all threads;",
        "peak RSS: high-water mark over the timed region; baseline RSS: with the input data "
        "built (CLI: the CLI process, baseline = `evalstore --version`); other procs CPU s: CPU "
        "time the rest of the machine used meanwhile (> 0: the run shared the cores)",
        *(
            [f"(peak RSS could not be reset: for {', '.join(not_reset)} it includes data building)"]
            if not_reset
            else []
        ),
        "",
        *table(header, lines),
        "",
        f"targets for evalstore's validated transactional ingest from Arrow "
        f"('{CASES[TARGET_CASE][0]}'):",
        f"  within {TARGET_RATIO}x of the raw DuckDB CTAS line: {ratio:.2f}x  "
        f"-> {'MET' if ratio <= TARGET_RATIO else 'MISSED'}",
        f"  >= {_fmt_int(TARGET_ROWS_PER_S)} rows/s: {_fmt_int(speed)} rows/s  "
        f"-> {'MET' if speed >= TARGET_ROWS_PER_S else 'MISSED'}",
    ]
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows per ingest")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (median shown)")
    parser.add_argument("--case", choices=[*CASES, "prepare"], help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be at least 1")

    if args.case is not None:  # child: one run of one case, result as JSON on stdout
        if args.workdir is None:
            parser.error("--case needs --workdir")
        run = prepare if args.case == "prepare" else CASES[args.case][1]
        emit(run(args.workdir, args.rows))
        return

    load = [load_average()]
    with tempfile.TemporaryDirectory(prefix="evalstore-bench-") as tmp:
        common = ["--rows", str(args.rows), "--workdir", tmp]
        print(f"preparing inputs in {tmp} ...", file=sys.stderr, flush=True)
        inputs = run_child(__file__, ["--case", "prepare", *common])
        results = run_cases(__file__, CASES, common, args.repeat)
    load.append(load_average())
    print(report(args.rows, results, args.repeat, load, inputs))


if __name__ == "__main__":
    main()
