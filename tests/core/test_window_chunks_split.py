"""``window={"chunks": n}`` splits (issue 23, point 3): evalstore's default spreads the
remainder of rows / n over the chunks; ``"split": "nannyml"`` reproduces NannyML's
CountBasedChunker (nannyml/chunk.py: chunk_size = rows // n, then SizeBasedChunker with
its default incomplete='keep', so the remainder is a last partial chunk), named in
``variant``. The expected chunks are computed here from each rule, in numpy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from evalstore.core.windows import NANNYML_SPLIT_VARIANT, window_args
from evalstore.errors import InvalidParameterError
from tests.conftest import blank_store

START = datetime(2026, 6, 1, tzinfo=UTC)
#: (rows, n): divisible, remainders of 1..3 (11 // 4 = 2 gives five full chunks plus one),
#: n > rows (NannyML refuses; one row per chunk)
CASES = [(12, 4), (10, 4), (11, 4), (7, 3), (9, 2), (3, 5)]


def _nannyml_chunks(rows: int, n: int) -> list[tuple[int, int]]:
    """(first, last) 0-based rank of each chunk, as NannyML's SizeBasedChunker with
    chunk_size = rows // n, incomplete='keep' (at least 1 row per chunk when n > rows)."""
    size = max(1, rows // n)
    chunks = [(i, i + size - 1) for i in range(0, rows, size) if i + size - 1 < rows]
    if rows % size:
        chunks.append((size * (rows // size), rows - 1))
    return chunks


def _even_chunks(rows: int, n: int) -> list[tuple[int, int]]:
    """(first, last) rank of each non-empty chunk floor(rank * n / rows)."""
    index = np.arange(rows) * n // rows
    return [(int(np.argmax(index == k)), int(np.flatnonzero(index == k)[-1]))
            for k in np.unique(index)]  # fmt: skip


def _hours(rows: list[dict]) -> list[tuple[int, int, int]]:
    """(start hour, end hour, rows) of each window, in time order."""
    out = {(r["window_start"], r["window_end"], r.get("n_analysis", r.get("predictions")))
           for r in rows}  # fmt: skip
    return sorted(
        (int((s - START).total_seconds() // 3600), int((e - START).total_seconds() // 3600), k)
        for s, e, k in out
    )


def _expected(chunks: list[tuple[int, int]]) -> list[tuple[int, int, int]]:
    return [(first, last, last - first + 1) for first, last in chunks]


def _features_store(rows: int) -> evalstore.Store:
    store = blank_store()
    store.register_model("m", "v1", "binary", classes=[0, 1])
    rng = np.random.default_rng(rows)
    store.log_features(
        "m", pa.table({"example_id": [f"t{i}" for i in range(50)], "x": rng.normal(size=50)}),
        env="training",
    )  # fmt: skip
    ids = [str(i) for i in range(rows)]  # text order "0", "1", "10", "11", "2": not time order
    store.log_features(
        "m",
        pa.table({"example_id": ids, "x": rng.normal(size=rows),
                  "ts": [START + timedelta(hours=i) for i in range(rows)]}),
    )  # fmt: skip
    return store


@pytest.mark.parametrize(("rows", "n"), CASES)
def test_drift_chunks_follow_nannyml_and_the_default_rule(rows, n):
    with _features_store(rows) as store:
        nannyml = store.drift(
            "m", window={"chunks": n, "split": "nannyml"}, features=["x"], methods=["ks"]
        ).to_pylist()
        even = store.drift("m", window={"chunks": n}, features=["x"], methods=["ks"]).to_pylist()
    assert _hours(nannyml) == _expected(_nannyml_chunks(rows, n))
    assert _hours(even) == _expected(_even_chunks(rows, n))
    assert all(r["variant"].endswith(f"; {NANNYML_SPLIT_VARIANT}") for r in nannyml)
    assert not any(NANNYML_SPLIT_VARIANT in (r["variant"] or "") for r in even)


def test_the_rules_differ_where_n_does_not_divide_the_rows():
    assert _nannyml_chunks(11, 4) == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 10)]
    assert _even_chunks(11, 4) == [(0, 2), (3, 5), (6, 8), (9, 10)]
    assert _nannyml_chunks(12, 4) == _even_chunks(12, 4)


@pytest.mark.parametrize(("rows", "n"), CASES)
def test_performance_chunks_follow_nannyml_and_the_default_rule(rows, n):
    rng = np.random.default_rng(rows + 100)
    ids = [str(i) for i in range(rows)]
    with blank_store() as store:
        store.register_model("m", "v1", "binary", classes=[0, 1])
        store.log_predictions(
            "m",
            pa.table({"example_id": ids, "score": rng.random(rows),
                      "ts": [START + timedelta(hours=i) for i in range(rows)]}),
            "v1",
        )  # fmt: skip
        store.log_labels("m", pa.table({"example_id": ids, "label": rng.integers(0, 2, rows)}))
        nannyml = store.performance(
            "m", metrics=["accuracy"], window={"chunks": n, "split": "nannyml"}
        ).to_pylist()
        even = store.performance("m", metrics=["accuracy"], window={"chunks": n}).to_pylist()
    assert _hours(nannyml) == _expected(_nannyml_chunks(rows, n))
    assert _hours(even) == _expected(_even_chunks(rows, n))
    assert all(NANNYML_SPLIT_VARIANT in r["variant"] for r in nannyml)
    assert not any(NANNYML_SPLIT_VARIANT in (r["variant"] or "") for r in even)


def test_multivariate_drift_names_the_split():
    with _features_store(11) as store:
        rows = store.multivariate_drift(
            "m", window={"chunks": 4, "split": "nannyml"}, features=["x"], methods=["mmd"],
            n_permutations=10,
        ).to_pylist()  # fmt: skip
    assert _hours(rows) == _expected(_nannyml_chunks(11, 4))
    assert all(r["variant"].endswith(f"; {NANNYML_SPLIT_VARIANT}") for r in rows)


def test_window_args_of_each_split():
    assert window_args({"chunks": 4}) == {"chunks": 4}
    assert window_args({"chunks": 4, "split": "even"}) == {"chunks": 4}
    assert window_args({"chunks": 4, "split": "nannyml"}) == {"chunks": 4, "chunk_rows": 0}
    with pytest.raises(InvalidParameterError, match="split must be one of 'even', 'nannyml'"):
        window_args({"chunks": 4, "split": "evidently"})
    with pytest.raises(InvalidParameterError, match=r"needs a positive int"):
        window_args({"chunks": 0, "split": "nannyml"})
