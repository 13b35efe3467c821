"""Numeric drift under a memory budget (evalstore/metrics/drift/numeric_read.py).

A call whose values exceed ``MEMORY_BUDGET`` reads and computes its features in parts; its
result must be the one-part call's, value for value and row for row (multiple-testing
corrections and thresholds run over all cells), and the parts must really be read apart.
"""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest

from evalstore.metrics.drift import numeric_read
from tests.metrics.test_numeric_drift import METHODS, _store

ALL_METHODS = [*METHODS, "anderson", "epps_singleton"]


def _passes(monkeypatch) -> list[list[str]]:
    """Record the features each read pass takes."""
    seen: list[list[str]] = []
    read = numeric_read.read_cells

    def counting(con, plan, part):
        seen.append(list(part))
        return read(con, plan, part)

    monkeypatch.setattr(numeric_read, "read_cells", counting)
    return seen


def _same(actual: pa.Table, expected: pa.Table, least: int = 40) -> None:
    assert actual.schema == expected.schema
    assert actual.num_rows == expected.num_rows > least
    for name in expected.column_names:
        got, want = actual.column(name).to_pylist(), expected.column(name).to_pylist()
        for row, (a, b) in enumerate(zip(got, want, strict=True)):
            if isinstance(b, float) and math.isnan(b):
                assert isinstance(a, float) and math.isnan(a), (name, row)
            else:
                assert a == b, (name, row, a, b)


@pytest.mark.parametrize(
    ("window", "reference", "options"),
    [
        ("1 day", "training", {}),
        ({"chunks": 3}, "training", {"correction": "bh", "binning": "sturges"}),
        (100, {"previous": 1}, {"binning": "values", "wasserstein": "raw"}),
        (
            "2 days",
            {"previous": 2},
            {
                "few_values": 4,
                "binning": "fixed",
                "bins": 6,
                "cdf_bins": 20,
                "sd_floor": 1e-3,
                "correction": "none",
            },
        ),
    ],
)
def test_a_tiny_budget_gives_the_one_part_result(monkeypatch, window, reference, options):
    store = _store(11)
    try:
        passes = _passes(monkeypatch)
        expected = store.drift("m", reference=reference, window=window, methods=ALL_METHODS,
                               **options)  # fmt: skip
        assert len(passes) == 1  # the default budget holds this data in one part
        one_part = passes[0]
        passes.clear()
        monkeypatch.setattr(numeric_read, "MEMORY_BUDGET", 1)  # every feature a part alone
        actual = store.drift("m", reference=reference, window=window, methods=ALL_METHODS,
                             **options)  # fmt: skip
    finally:
        store.close()
    # one pass per numeric feature and output, in the one-part call's order
    assert passes == [[name] for name in one_part]
    assert set(one_part) == {"noisy", "ties", "skewed", "constant", "late", "score"}
    _same(actual, expected)
    # the categorical rows, computed while numpy works on the last part, are there too
    assert {r["kind"] for r in actual.to_pylist()} == {"numeric", "categorical"}
    assert any(r["p_value"] is not None for r in actual.to_pylist())


def test_parts_fill_the_budget_in_order():
    units = {"a": 40, "b": 30, "c": 50, "d": 200, "e": 10, "f": 10}
    assert numeric_read.parts(units, 100) == [["a", "b"], ["c"], ["d"], ["e", "f"]]
    assert numeric_read.parts(units, 10_000) == [list(units)]
    assert numeric_read.parts(units, 1) == [[name] for name in units]
    assert numeric_read.parts({}, 100) == []


def test_the_budget_counts_eight_bytes_per_row_of_each_feature(monkeypatch):
    store = _store(3)
    units: list[dict[str, int]] = []
    split = numeric_read.parts

    def recording(sizes, budget):
        units.append(dict(sizes))
        return split(sizes, budget)

    monkeypatch.setattr(numeric_read, "parts", recording)
    passes = _passes(monkeypatch)
    try:
        # 400 training rows and 301 served rows (one window each day), 300 of them scored
        monkeypatch.setattr(numeric_read, "MEMORY_BUDGET", 2 * 8 * 701)
        store.drift("m", window="1 day", methods=["ks"])
    finally:
        store.close()
    features = {name: 8 * 701 for name in ("noisy", "ties", "skewed", "constant", "late")}
    assert units == [features | {"score": 8 * 300}]
    # two features' values per part; score fits with the last feature
    assert passes == [["noisy", "ties"], ["skewed", "constant"], ["late", "score"]]


def test_a_feature_larger_than_the_budget_is_read_alone_and_exactly(monkeypatch):
    store = _store(5)
    try:
        expected = store.drift("m", window="1 day", features=["noisy"], methods=["ks", "psi"])
        passes = _passes(monkeypatch)
        monkeypatch.setattr(numeric_read, "MEMORY_BUDGET", 0)
        actual = store.drift("m", window="1 day", features=["noisy"], methods=["ks", "psi"])
    finally:
        store.close()
    assert passes == [["noisy"]]
    _same(actual, expected, least=6)  # ks and psi in 4 windows
    values = np.asarray([v for v in actual.column("value").to_pylist() if v is not None])
    assert len(values) > 0 and np.all(np.isfinite(values))
