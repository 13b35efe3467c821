"""Server operations under load (issue 19, points 5, 6 and 8): size bounds checked before
work, the read pool (503 + Retry-After when full, /healthz and ingest unaffected), the time
limit of every read (408), the result-size limit, JSON ingest into Arrow (overflow and deep
nesting refused with 422), DuckDB's memory cap and a SIGTERM that interrupts running
queries."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import httpx
import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

import evalstore
from evalstore.errors import InvalidParameterError
from server import create_app
from tests.conftest import blank_store

HEAVY_SQL = "SELECT count(*) FROM range(1000000000000) t(a) WHERE a % 7 = 3"
HANG_BOUND = 60.0  # seconds: a bound for a hang, not a speed assertion


def populate(store: evalstore.Store) -> None:
    """A binary model ``m`` with features in both envs and predictions."""
    store.register_model("m", "v1", "binary")
    ids = [f"e{i}" for i in range(300)]
    store.log_features(
        "m", pa.table({"example_id": ids, "x": [float(i % 17) for i in range(300)]}), env="training"
    )
    store.log_features("m", pa.table({"example_id": ids, "x": [float(i % 13) for i in range(300)]}))
    store.log_predictions(
        "m",
        pa.table({"example_id": ids, "score": [(i % 10) / 10 for i in range(300)]}),
        version="v1",
    )


@pytest.fixture
def served(template, copy_template, tmp_path):
    """A fresh copy of a file store made by :func:`populate` (built once per session)."""
    built = template("server-limits", populate, "limits.duckdb")
    store = evalstore.open(copy_template(built, tmp_path, "limits.duckdb"))
    yield store
    store.close()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda s: s.suggest("m", k=10**9, record=False),
            "k=1000000000 is above the limit of 10000",
        ),
        (
            lambda s: s.suggest("m", k=5, pool=10**7, record=False),
            "pool=10000000 is above the limit of 100000",
        ),
        (lambda s: s.drift("m", bins=10**6), "bins=1000000 is above the limit of 1000"),
        (lambda s: s.performance("m", n_boot=10**6), "n_boot=1000000 is above the limit of 10000"),
        (lambda s: s.performance("m", bins=500), "bins=500 is above the limit of 100"),
        (lambda s: s.worst_slices("m", top=10**9), "top=1000000000 is above the limit of 100000"),
        (lambda s: s.skew("m", sample=10**8), "sample=100000000 is above the limit of 10000"),
        (
            lambda s: s.multivariate_drift("m", n_permutations=10**6),
            "n_permutations=1000000 is above",
        ),
        (
            lambda s: s.multivariate_drift("m", max_rows=10**6),
            "max_rows=1000000 is above the limit of 5000",
        ),
        (
            lambda s: s.multivariate_drift("m", max_rows=5000, n_permutations=10_000),
            "max_rows=5000 with n_permutations=10000 is too much work",
        ),
    ],
)
def test_size_parameters_are_bounded_before_work(served, call, message):
    with pytest.raises(InvalidParameterError, match=message):
        call(served)


def test_bounded_int_names_type_and_lower_bound():
    from evalstore.core.bounds import bounded_int

    with pytest.raises(InvalidParameterError, match=r"k=2.5 must be a positive int \(at most 10\)"):
        bounded_int(2.5, "k", most=10)
    with pytest.raises(InvalidParameterError, match=r"n=-1 must be a non-negative int"):
        bounded_int(-1, "n", least=0, most=10)
    assert bounded_int(10, "k", most=10) == 10


def test_huge_k_is_refused_at_once_over_http(served):
    with TestClient(create_app(served)) as client:
        response = client.get("/v1/models/m/suggestions", params={"k": 10**9, "record": "false"})
    assert response.status_code == 422
    assert response.json()["error"] == "invalid_parameter"
    assert "k=1000000000 is above the limit of 10000" in response.json()["detail"]


def test_unrecorded_suggestions_do_not_take_the_store_lock(served):
    """With the writers' lock held elsewhere, record=false suggestions still answer."""
    answers: list[httpx.Response] = []
    with TestClient(create_app(served)) as client, served._lock:  # a writer holds the lock
        worker = threading.Thread(
            target=lambda: answers.append(
                client.get("/v1/models/m/suggestions", params={"k": 3, "record": "false"})
            )
        )
        worker.start()
        worker.join(HANG_BOUND)
        assert not worker.is_alive(), "record=false suggestions waited for the store lock"
    assert answers[0].status_code == 200
    assert len(answers[0].json()) == 3
    assert served.sql("SELECT count(*) AS n FROM evalstore.label_requests")["n"][0].as_py() == 0


def test_every_read_gets_the_sql_time_limit_body(served):
    """A time limit shorter than any work: each read is stopped with the same 408 body."""
    with TestClient(create_app(served, time_limit=1e-6)) as client:
        bodies = [
            client.post("/v1/sql", json={"sql": HEAVY_SQL}),
            client.get("/v1/models/m/drift", params={"window": "100 years"}),
            client.get("/v1/models/m/quality", params={"window": "100 years"}),
            client.get("/v1/models/m/suggestions", params={"k": 2, "record": "false"}),
            client.post("/v1/models/m/selections", json={"labeled_only": False}),
        ]
    for response in bodies:
        assert response.status_code == 408, response.text
        assert response.json() == {
            "error": "time_limit",
            "detail": "the query ran longer than the server's time limit of 1e-06 s and was "
            "interrupted; narrow it (fewer rows, a shorter time range) or pre-aggregate",
            "time_limit": 1e-06,
        }


def test_a_real_heavy_family_query_is_interrupted(served):
    """A family whose DuckDB work cannot finish in time is interrupted, and the server goes on."""
    with TestClient(create_app(served, time_limit=0.5)) as client:
        slow = client.post("/v1/sql", json={"sql": HEAVY_SQL})
        assert slow.status_code == 408 and slow.json()["error"] == "time_limit"
        ok = client.get("/v1/models/m/drift", params={"window": "100 years", "features": "x"})
        # the same server answers the next read (whatever its duration on this machine)
        assert ok.status_code in (200, 408)
        assert client.get("/healthz").status_code == 200


def test_full_read_pool_gives_503_and_keeps_healthz_and_ingest(served):
    app = create_app(served, read_workers=1, read_queue=0, time_limit=HANG_BOUND)
    reads = app.state.reads
    with TestClient(app) as client:
        answers: list[httpx.Response] = []
        slow = threading.Thread(
            target=lambda: answers.append(client.post("/v1/sql", json={"sql": HEAVY_SQL}))
        )
        slow.start()
        deadline = time.monotonic() + HANG_BOUND
        while reads.running < 1 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reads.running == 1
        busy = client.get("/v1/models/m/drift", params={"window": "100 years"})
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "1"
        assert busy.json()["error"] == "busy"
        assert "all 1 read workers are busy" in busy.json()["detail"]
        assert client.get("/healthz").status_code == 200
        ingest = client.post("/v1/models/m/labels", json=[{"example_id": "e1", "label": 1}])
        assert ingest.status_code in (200, 201), ingest.text
        reads.shutdown()  # what SIGTERM does: the running query is interrupted
        slow.join(HANG_BOUND)
        assert not slow.is_alive()
        after = client.post("/v1/sql", json={"sql": "SELECT 1 AS x"})
        assert after.status_code == 503 and after.json()["error"] == "shutting_down"
        assert after.headers["Retry-After"] == "1"
        assert client.get("/healthz").status_code == 200
    assert answers[0].status_code == 503
    assert answers[0].json()["error"] == "shutting_down"


def test_read_pool_settings_are_checked(served):
    with pytest.raises(InvalidParameterError, match="read_workers=0 must be >= 1"):
        create_app(served, read_workers=0)


def test_result_size_limit(served):
    with TestClient(create_app(served, max_result_bytes=1000)) as client:
        big = client.post("/v1/sql", json={"sql": "SELECT * FROM range(10000)"})
        small = client.post("/v1/sql", json={"sql": "SELECT 42 AS x"})
        family = client.get("/v1/models/m/drift", params={"window": "100 years"})
    assert big.status_code == 422
    assert big.json()["error"] == "result_too_large"
    assert "larger than 1000 bytes" in big.json()["detail"]
    assert big.json()["max_result_bytes"] == 1000
    assert small.json() == [{"x": 42}]
    assert family.status_code == 422 and family.json()["error"] == "result_too_large"


def test_memory_limit_is_set_before_the_lock(served):
    create_app(served, memory_limit="1GiB")
    row = served.sql(
        "SELECT current_setting('memory_limit') AS m, current_setting('lock_configuration') AS l"
    )
    assert row.to_pylist() == [{"m": "1.0 GiB", "l": True}]


def test_bad_memory_limit_is_refused(tmp_path):
    with (
        blank_store() as store,
        pytest.raises(
            InvalidParameterError, match="memory_limit='lots' is not a DuckDB memory size"
        ),
    ):
        create_app(store, memory_limit="lots")


@pytest.mark.parametrize(
    ("body", "code", "detail"),
    [
        (
            b'[{"example_id": "a", "x": 99999999999999999999999}]',
            422,
            "column 'x' holds an integer outside the 64-bit range",
        ),
        (
            b'{"example_id": ["a"], "x": [-9223372036854775809]}',
            422,
            "column 'x' holds an integer outside",
        ),
        (
            b'[{"example_id": "a", "x": ' + b"[" * 3000 + b"]" * 3000 + b"}]",
            422,
            "more than 32 levels deep",
        ),
        (
            b'[{"example_id": "a", "x": 1}, {"example_id": "b", "x": "y"}]',
            422,
            "changed from number to string",
        ),
        (b'{"example_id": ["a", "b"], "x": [1]}', 422, "different lengths"),
    ],
)
def test_json_ingest_refusals(served, body, code, detail):
    with TestClient(create_app(served)) as client:
        response = client.post(
            "/v1/models/m/features", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == code, response.text
    assert response.json()["error"] == "invalid_json"
    assert detail in response.json()["detail"]


def test_json_ingest_keeps_text_and_reads_ndjson(served):
    with TestClient(create_app(served)) as client:
        records = [{"example_id": "n1", "x": 1.5, "day": "2026-01-01", "big": 9223372036854775807}]
        assert client.post("/v1/models/m/features", json=records).status_code in (200, 201)
        ndjson = b'{"example_id": "n2", "x": 2.5, "day": "2026-01-02", "big": 1}\n'
        response = client.post(
            "/v1/models/m/features",
            content=ndjson,
            headers={"content-type": "application/x-ndjson"},
        )
        assert response.status_code in (200, 201), response.text
    rows = served.sql(
        "SELECT example_id, x, day, big FROM m.features WHERE example_id IN ('n1', 'n2') ORDER BY 1"
    ).to_pylist()
    assert rows == [
        {"example_id": "n1", "x": 1.5, "day": "2026-01-01", "big": 9223372036854775807},
        {"example_id": "n2", "x": 2.5, "day": "2026-01-02", "big": 1},
    ]


@pytest.mark.slow
@pytest.mark.serial
def test_sigterm_interrupts_running_queries(tmp_path, free_port):
    path = tmp_path / "served.duckdb"
    evalstore.open(path).close()
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", "from evalstore.cli import main; main()", "serve", str(path),
         "--port", str(port), "--time-limit", "600", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert process.poll() is None, process.stdout.read().decode()
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.2)
        answers: list[object] = []

        def query() -> None:
            try:
                answers.append(httpx.post(f"{url}/v1/sql", json={"sql": HEAVY_SQL}, timeout=120))
            except httpx.HTTPError as error:
                answers.append(error)

        worker = threading.Thread(target=query)
        worker.start()
        time.sleep(1.5)  # let the query start (it would run for hours)
        process.send_signal(signal.SIGTERM)
        # a bound for a hang (the query alone would run for hours), not a speed assertion
        assert process.wait(timeout=10) == 0
        worker.join(10)
        answer = answers[0]
        if isinstance(answer, httpx.Response):
            assert answer.status_code == 503, answer.text
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
