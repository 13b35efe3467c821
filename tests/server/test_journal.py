"""Journaled ingest over HTTP (:mod:`server.journal`): the same answers and the same rows
as the group commit, receipts before DuckDB holds the rows, the direct lane."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

import evalstore
from evalstore.core.journal import journal_path, read
from server.app import create_app
from tests.conftest import copy_store

PREDICT = "/v1/models/fraud/predictions?version=v1"
LABEL = "/v1/models/fraud/labels"
FEATURES = "/v1/models/fraud/features"


def row(example: str, **values: Any) -> list[dict[str, Any]]:
    return [{"example_id": example, "ts": "2026-01-01T00:00:00Z", **values}]


#: (path, body, headers): good requests and each kind of error, in order
REQUESTS: list[tuple[str, Any, dict[str, str]]] = [
    (PREDICT, row("a", prediction=1, score=0.2), {}),
    (PREDICT, row("a", prediction=0, score=0.3), {}),  # a stored id: 409
    (PREDICT, row("b", prediction=1, score=1.5), {}),  # not a probability: 422
    (PREDICT, row("c", prediction=7, score=0.5), {}),  # not a class: 422
    (PREDICT, [*row("d", prediction=1), *row("d", prediction=0)], {}),  # repeated: 409
    ("/v1/models/fraud/predictions?version=v9", row("e", prediction=1), {}),  # unknown version
    (PREDICT, row("f", prediction="x1"), {}),
    (PREDICT, row("g", prediction=1, score="high"), {}),  # a text score: 409 (planning)
    (LABEL, row("a", label=1), {"Idempotency-Key": "k-1"}),
    (LABEL, row("a", label=0), {"Idempotency-Key": "k-1"}),  # a retry: the first receipt
    (LABEL, row("a", label=0), {}),  # a correction supersedes
    (LABEL, row("zz", label=None), {}),  # no label type: 409 (planning)
    (FEATURES, row("a", x=1.5), {}),  # a new column: the direct lane
    (FEATURES, row("b", x=2.5), {}),
    (FEATURES, row("b", x=3.5), {}),  # stored for this env: 409
    (PREDICT, [row(f"m{i}", prediction=i % 2, score=0.1)[0] for i in range(1_200)], {}),
]


def answers(store: evalstore.Store, **options: Any) -> tuple[list[tuple[int, Any]], dict]:
    """Send :data:`REQUESTS` one by one; return (status, body without batch_id) of each,
    and the rows stored (without batch ids)."""
    app = create_app(store, checkpoint_idle=None, monitor_every=0, **options)
    out = []
    with TestClient(app) as client:
        for path, body, headers in REQUESTS:
            response = client.post(path, json=body, headers=headers)
            payload = response.json()
            if isinstance(payload, dict):
                payload.pop("batch_id", None)
            out.append((response.status_code, payload))
    tables = {
        name: store.sql(
            f"SELECT * EXCLUDE (batch_id{', superseded_by' if name == 'labels' else ''}) "
            f"FROM fraud.{name} ORDER BY ALL"
        ).to_pylist()
        for name in ("predictions", "labels", "features")
    }
    tables["batches"] = store.sql(
        "SELECT kind, rows, version, env, source, batch_key, columns_added, receipt "
        "FROM evalstore.batches ORDER BY batch_id"
    ).to_pylist()
    tables["latest"] = store.sql(
        "SELECT example_id, label FROM fraud.labels_latest ORDER BY ALL"
    ).to_pylist()
    return out, tables


def test_journaled_answers_and_rows_are_the_group_commits(store_template, tmp_path):

    results = {}
    for mode in ("group", "journal"):
        directory = tmp_path / mode
        directory.mkdir()
        with evalstore.open(copy_store(store_template, directory)) as store:
            results[mode] = answers(store, journal=mode == "journal")
            if mode == "journal":
                assert journal_path(store.path).stat().st_size == 0  # emptied at close
    assert results["journal"][0] == results["group"][0]
    assert results["journal"][1] == results["group"][1]
    statuses = [status for status, _ in results["journal"][0]]
    assert statuses == [200, 409, 422, 422, 409, 404, 422, 409, 200, 200, 200, 409, 200, 200,
                        409, 200]  # fmt: skip
    assert results["journal"][0][9][1]["duplicate"] is True


@pytest.fixture
def journaled(store: evalstore.Store) -> Any:
    """A client of a journaled server whose applier waits 30 s between applies (drains
    and close apply at once)."""
    app = create_app(
        store, checkpoint_idle=None, monitor_every=0, journal=True, journal_apply_every=30.0
    )
    with TestClient(app) as client:
        yield client


def count(store: evalstore.Store) -> int:
    return store.sql("SELECT count(*) AS n FROM fraud.predictions").to_pylist()[0]["n"]


def test_a_receipt_is_given_when_journaled_and_rows_show_once_applied(store, journaled):
    committer = journaled.app.state.committer
    response = journaled.post(PREDICT, json=row("a", prediction=1))
    assert response.status_code == 200
    batch_id = response.json()["batch_id"]
    entries, _, _ = read(journal_path(store.path))
    assert [r.batch_id for e in entries for r in e.requests] == [batch_id]
    assert count(store) == 0  # journaled, not yet applied
    status = journaled.get("/healthz").json()["ingest"]["journal"]
    assert (status["journaled"], status["applied"], status["waiting"]) == (1, 0, 1)
    committer.drain()
    assert store.sql("SELECT batch_id FROM fraud.predictions").to_pylist() == [
        {"batch_id": batch_id}
    ]
    status = journaled.get("/healthz").json()["ingest"]["journal"]
    assert (status["applied"], status["waiting"], status["applies"]) == (1, 0, 1)
    assert status["lag_ms"]["p50"] is not None


def test_an_id_or_batch_key_journaled_but_not_applied_is_recognised(store, journaled):
    first = journaled.post(PREDICT, json=row("a", prediction=1), headers={"Idempotency-Key": "q"})
    assert first.status_code == 200 and count(store) == 0
    retry = journaled.post(PREDICT, json=row("zz", prediction=1), headers={"Idempotency-Key": "q"})
    assert retry.status_code == 200
    assert retry.json() == {**first.json(), "duplicate": True}
    again = journaled.post(PREDICT, json=row("a", prediction=0))  # the direct lane drains
    assert again.status_code == 409
    assert again.json()["examples"] == ["a"]
    assert count(store) == 1


def test_an_id_written_by_the_direct_lane_is_known_to_the_journal(store, journaled):
    journaled.app.state.committer._writer.sync_every = 3600  # no catch-up after applies
    assert journaled.post(PREDICT, json=row("a", prediction=1)).status_code == 200
    bulk = [row(f"b{i}", prediction=1)[0] for i in range(1_100)]  # > 1,000 rows: direct
    assert journaled.post(PREDICT, json=bulk).status_code == 200
    again = journaled.post(PREDICT, json=row("b7", prediction=1))
    assert again.status_code == 409 and again.json()["examples"] == ["b7"]
    assert journaled.post(PREDICT, json=row("c", prediction=1)).status_code == 200
    journaled.app.state.committer.drain()
    assert count(store) == 1_102


def test_concurrent_requests_repeating_an_id_store_it_once(store, journaled):
    responses: list[Any] = [None] * 12

    def send(i: int) -> None:
        responses[i] = journaled.post(PREDICT, json=row(f"x{i % 6}", prediction=1))

    threads = [threading.Thread(target=send, args=(i,)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    journaled.app.state.committer.drain()
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] * 6 + [409] * 6
    stored = store.sql(
        "SELECT example_id, count(*) AS n FROM fraud.predictions GROUP BY 1 ORDER BY 1"
    ).to_pylist()
    assert stored == [{"example_id": f"x{i}", "n": 1} for i in range(6)]


def test_a_registry_change_is_seen_by_the_next_request(store, journaled):
    bad = journaled.post(PREDICT, json=row("a", prediction=2))
    assert bad.status_code == 422 and "2" in bad.json()["detail"]
    store.register_model("fraud", "v1", "binary", classes=[1, 2], positive_class=1, replace=True)
    good = journaled.post(PREDICT, json=row("a", prediction=2))
    assert good.status_code == 200
    assert journaled.post(PREDICT, json=row("b", prediction=0)).status_code == 422


def test_the_journal_is_emptied_once_applied_past_its_size_limit(store, journaled):
    committer = journaled.app.state.committer
    committer.truncate_bytes = 1  # (default 8 MiB)
    path = journal_path(store.path)
    assert journaled.post(PREDICT, json=row("a", prediction=1)).status_code == 200
    assert path.stat().st_size > 0
    committer.drain()
    deadline = time.monotonic() + 30
    while path.stat().st_size and time.monotonic() < deadline:
        time.sleep(0.01)
    assert path.stat().st_size == 0
    assert journaled.post(PREDICT, json=row("b", prediction=1)).status_code == 200
    entries, _, _ = read(path)  # appends go on at the start of the emptied file
    assert [e.requests[0].rows for e in entries] == [1]


def test_a_failing_apply_keeps_the_journal_and_answers_the_direct_lane_503(
    store, journaled, monkeypatch
):
    import server.journal

    committer = journaled.app.state.committer
    real_apply = server.journal.apply

    def failing(*args: Any) -> Any:
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(server.journal, "apply", failing)
    monkeypatch.setattr(server.journal, "DRAIN_TIMEOUT", 0.5)
    assert journaled.post(PREDICT, json=row("a", prediction=1)).status_code == 200
    answer = journaled.post(PREDICT, json=row("a", prediction=1))  # a repeat: direct lane
    assert answer.status_code == 503
    assert answer.json()["error"] == "journal_not_applied"
    assert "disk full (simulated)" in answer.json()["detail"]
    assert answer.headers["Retry-After"] == "1"
    status = journaled.get("/healthz").json()["ingest"]["journal"]
    assert status["waiting"] == 1 and "disk full" in status["apply_error"]
    monkeypatch.setattr(server.journal, "apply", real_apply)
    assert committer.drain(30)
    assert count(store) == 1
    assert journaled.post(PREDICT, json=row("a", prediction=1)).status_code == 409


def test_an_in_memory_store_keeps_the_group_commit(tmp_path: Path):
    with evalstore.open() as store:
        app = create_app(store, journal=True, checkpoint_idle=None, monitor_every=0)
        assert "journal" not in app.state.committer.status()


def test_serve_journal_options_reach_the_app(monkeypatch, tmp_path):
    """``evalstore serve --journal --journal-apply-every S`` passes both to the app."""
    from click.testing import CliRunner

    import server.app
    from evalstore.cli import main

    built: dict[str, Any] = {}

    class Stop(Exception):
        pass

    def fake_create_app(opened: Any, **options: Any) -> None:
        built.update(options)
        raise Stop  # before serving

    monkeypatch.setattr(server.app, "create_app", fake_create_app)  # serve imports it per call
    args = ["serve", str(tmp_path / "s.duckdb"), "--journal", "--journal-apply-every", "0.25"]
    result = CliRunner().invoke(main, args, prog_name="evalstore")
    assert isinstance(result.exception, Stop), result.output
    assert (built["journal"], built["journal_apply_every"]) == (True, 0.25)
    result = CliRunner().invoke(main, args[:2], prog_name="evalstore")
    assert (built["journal"], built["journal_apply_every"]) == (False, 0.1)
