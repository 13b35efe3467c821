"""End to end: a real `evalstore serve` process on a free loopback port, driven with httpx.

Covers ingest (JSON and Arrow), queries in each format, metric routes, the Prometheus scrape,
32 concurrent writers and readers (no lost, duplicated or half-written batch), the BI snapshot
read by a separate process, and a graceful shutdown that finishes an in-flight write.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
from arrow_bodies import arrow_body
from prometheus_client.parser import text_string_to_metric_families

import evalstore

ARROW = "application/vnd.apache.arrow.stream"
START_TIMEOUT = 90.0


@pytest.fixture(scope="module")
def server(tmp_path_factory, free_port):
    """(base url, store path, snapshot path, process) of a running `evalstore serve`."""
    directory = tmp_path_factory.mktemp("e2e")
    store_path = directory / "served.duckdb"
    snapshot_path = directory / "bi" / "snapshot.duckdb"
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "from evalstore.cli import main; main()",
            "serve",
            str(store_path),
            "--port",
            str(port),
            "--snapshot",
            str(snapshot_path),
            "--snapshot-every",
            "1",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        if process.poll() is not None:
            raise AssertionError(f"server exited: {process.stdout.read().decode()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError("server did not start")
        time.sleep(0.2)
    yield url, store_path, snapshot_path, process
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)


def step_ingest_query_and_scrape(server):
    url, *_ = server
    with httpx.Client(base_url=url, timeout=60) as client:
        created = client.post("/v1/models/fraud/versions", json={"version": "v1", "task": "binary"})
        assert created.status_code == 201
        features = [
            {"example_id": f"e{i}", "ts": f"2024-03-0{1 + i % 3}T12:00:00Z", "amount": i * 1.5}
            for i in range(30)
        ]
        receipt = client.post("/v1/models/fraud/features", json=features).json()
        assert receipt["rows"] == 30 and receipt["columns_added"] == ["amount"]
        predictions = pa.table(
            {
                "example_id": [f"e{i}" for i in range(30)],
                "score": [i / 30 for i in range(30)],
                "latency_ms": [float(i) for i in range(30)],
            }
        )
        response = client.post(
            "/v1/models/fraud/predictions",
            params={"version": "v1", "latency_column": "latency_ms"},
            content=arrow_body(predictions),
            headers={"content-type": ARROW},
        )
        assert response.status_code == 200 and response.json()["rows"] == 30
        labels = [{"example_id": f"e{i}", "label": int(i >= 15)} for i in range(20)]
        assert client.post("/v1/models/fraud/labels", json=labels).json()["rows"] == 20

        query = {
            "sql": "SELECT example_id, prediction, label FROM fraud.evaluations "
            "WHERE label IS NOT NULL ORDER BY example_id LIMIT 3"
        }
        records = client.post("/v1/sql", json=query).json()
        assert records == [
            {"example_id": "e0", "prediction": "0", "label": "0"},
            {"example_id": "e1", "prediction": "0", "label": "0"},
            {"example_id": "e10", "prediction": "0", "label": "0"},
        ]
        csv = client.post("/v1/sql", json=query, headers={"accept": "text/csv"}).text
        assert csv.splitlines()[0] == '"example_id","prediction","label"'
        arrow = client.post("/v1/sql", json=query, headers={"accept": ARROW})
        table = ipc.open_stream(pa.py_buffer(arrow.content)).read_all()
        assert table.column("example_id").to_pylist() == ["e0", "e1", "e10"]

        performance = client.get(
            "/v1/models/fraud/performance", params={"metrics": "accuracy", "window": "30 days"}
        )
        assert performance.status_code == 200, performance.text
        assert performance.json()[0]["metric"] == "accuracy"
        refused = client.post("/v1/sql", json={"sql": "SELECT * FROM read_csv('/etc/passwd')"})
        assert refused.status_code == 400 and refused.json()["error"] == "function_not_allowed"

        scrape = client.get("/metrics")
        families = {f.name: f for f in text_string_to_metric_families(scrape.text)}
        rows = {
            (s.labels["model"], s.labels["kind"]): s.value
            for s in families["evalstore_ingested_rows"].samples
            if s.name.endswith("_total")
        }
        assert rows == {
            ("fraud", "features"): 30,
            ("fraud", "predictions"): 30,
            ("fraud", "labels"): 20,
        }
        coverage = families["evalstore_label_coverage"].samples[0]
        assert coverage.value == pytest.approx(20 / 30)
        latency = [
            s
            for s in families["evalstore_prediction_latency_ms"].samples
            if s.name.endswith("_count")
        ]
        assert latency[0].value == 30
        assert any(
            s.labels["metric"] == "accuracy" for s in families["evalstore_performance"].samples
        )
        requests = families["evalstore_http_request_duration_seconds"].samples
        assert any(s.labels.get("route") == "/v1/sql" for s in requests)
        errors = families["evalstore_http_errors"].samples
        assert any(s.labels.get("status") == "400" for s in errors)


def step_32_concurrent_writers_and_readers(server):
    url, *_ = server
    writers, readers, batches, batch_rows = 16, 16, 5, 200
    with httpx.Client(base_url=url, timeout=120) as client:
        client.post("/v1/models/conc/versions", json={"version": "v1", "task": "binary"})
    torn: list[int] = []

    def write(w: int) -> int:
        with httpx.Client(base_url=url, timeout=120) as client:
            for b in range(batches):
                ids = [f"w{w}b{b}r{r}" for r in range(batch_rows)]
                table = pa.table({"example_id": ids, "x": [float(w)] * batch_rows})
                if b % 2:
                    response = client.post(
                        "/v1/models/conc/features",
                        content=arrow_body(table),
                        headers={"content-type": ARROW},
                    )
                else:
                    response = client.post("/v1/models/conc/features", json=table.to_pylist())
                assert response.status_code == 200, response.text
                assert response.json()["rows"] == batch_rows
        return w

    def read(r: int) -> int:
        with httpx.Client(base_url=url, timeout=120) as client:
            for _ in range(8):
                while True:  # 16 readers exceed 4 workers + 8 queued: back off as told
                    response = client.post(
                        "/v1/sql",
                        json={"sql": "SELECT count(*) AS n FROM conc.features"},
                        headers={"accept": "text/csv" if r % 2 else "application/json"},
                    )
                    if response.status_code != 503:
                        break
                    assert response.json()["error"] == "busy", response.text
                    time.sleep(float(response.headers["retry-after"]) / 10)
                assert response.status_code == 200, response.text
                n = int(response.text.splitlines()[1]) if r % 2 else response.json()[0]["n"]
                if n % batch_rows:
                    torn.append(n)
                assert client.get("/metrics").status_code == 200
        return r

    with ThreadPoolExecutor(max_workers=writers + readers) as pool:
        futures = [pool.submit(write, w) for w in range(writers)]
        futures += [pool.submit(read, r) for r in range(readers)]
        for future in futures:
            future.result()
    assert torn == [], "a reader saw part of a batch"
    with httpx.Client(base_url=url, timeout=60) as client:
        summary = client.post(
            "/v1/sql",
            json={
                "sql": "SELECT count(*) AS n_rows, count(DISTINCT example_id) AS n_ids, "
                "count(DISTINCT batch_id) AS n_batches FROM conc.features"
            },
        ).json()[0]
        per_batch = client.post(
            "/v1/sql",
            json={
                "sql": "SELECT b.rows AS logged, count(f.example_id) AS stored "
                "FROM evalstore.batches b LEFT JOIN conc.features f USING (batch_id) "
                "WHERE b.model = 'conc' GROUP BY b.batch_id, b.rows"
            },
        ).json()
    total = writers * batches * batch_rows
    assert summary == {"n_rows": total, "n_ids": total, "n_batches": writers * batches}
    assert len(per_batch) == writers * batches
    assert all(r["logged"] == r["stored"] == batch_rows for r in per_batch)


def step_snapshot_is_readable_by_a_separate_process(server):
    url, _, snapshot_path, _ = server
    with httpx.Client(base_url=url, timeout=60) as client:
        # wait for a refresh that started after the concurrency step's writes (it writes a
        # copy, or finds the last copy already holds them: nothing committed since)
        start = datetime.now(UTC)
        deadline = time.monotonic() + 60
        while True:
            status = client.get("/healthz").json()["snapshot"]
            last, checked = status["last"], status["checked_at"]
            if last and checked and datetime.fromisoformat(checked) > start:
                break
            assert time.monotonic() < deadline, status
            time.sleep(0.3)
    assert last["storage_version"] == "v1.4.0"
    script = (
        "import duckdb, json, sys\n"
        "con = duckdb.connect(sys.argv[1], read_only=True)\n"
        "one = lambda sql: con.execute(sql).fetchone()[0]\n"
        "print(json.dumps({\n"
        "  'conc': one('SELECT count(*) FROM conc.features'),\n"
        "  'volume': one(\"SELECT sum(rows)::INT FROM evalstore.volume('fraud', '1 day')\"),\n"
        "  'evaluations': one('SELECT count(*) FROM fraud.evaluations'),\n"
        "}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(snapshot_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"conc": 16 * 5 * 200, "volume": 80, "evaluations": 30}
    leftovers = [p for p in snapshot_path.parent.iterdir() if p.name != snapshot_path.name]
    assert leftovers == []


def step_graceful_shutdown_finishes_the_write_in_flight(server):
    url, store_path, _, process = server
    n = 200_000
    table = pa.table({"example_id": [f"late{i}" for i in range(n)], "x": [1.0] * n})
    body = arrow_body(table)
    outcome: dict[str, object] = {}

    def post() -> None:
        try:
            with httpx.Client(base_url=url, timeout=120) as client:
                outcome["response"] = client.post(
                    "/v1/models/conc/features", content=body, headers={"content-type": ARROW}
                )
        except httpx.HTTPError as error:
            outcome["error"] = error

    thread = threading.Thread(target=post)
    thread.start()
    time.sleep(0.3)
    process.send_signal(signal.SIGTERM)
    thread.join(timeout=120)
    assert process.wait(timeout=120) == 0
    with evalstore.open(store_path, read_only=True) as store:
        stored = (
            store.sql("SELECT count(*) FROM conc.features WHERE example_id LIKE 'late%'")
            .column(0)[0]
            .as_py()
        )
    response = outcome.get("response")
    if response is not None and response.status_code == 200:
        assert stored == n  # acknowledged means committed
    else:
        assert stored in (0, n)  # never half a batch
    assert Path(store_path).exists()


@pytest.mark.slow
@pytest.mark.serial
def test_one_server_ingests_serves_snapshots_and_stops_gracefully(server):
    """The steps above, in this order, on one server process: each continues from what the
    previous ones wrote (the snapshot step counts the rows of the first two; the shutdown
    step writes to the concurrency step's model, then stops the server). One test, so that
    their order holds whatever order the tests run in (pytest-randomly shuffles them)."""
    step_ingest_query_and_scrape(server)
    step_32_concurrent_writers_and_readers(server)
    step_snapshot_is_readable_by_a_separate_process(server)
    step_graceful_shutdown_finishes_the_write_in_flight(server)
