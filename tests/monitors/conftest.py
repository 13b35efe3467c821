"""A small daily store for the monitor tests: model ``m`` (binary), training rows of a
numeric ``x`` (N(0, 1)) and a categorical ``c``, and :class:`Days`, which logs one day of
serving rows (x shifted by ``shift``, predictions right or wrong, labels after a delay);
``copy_of(name, build)``, a fresh copy of a store ``build`` filled once per session."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from tests.conftest import copy_store

T0 = datetime(2024, 3, 1, tzinfo=UTC)
ROWS = 240


def day_start(d: int) -> datetime:
    """Start of day ``d`` (day 0 is T0)."""
    return T0 + timedelta(days=d)


class Days:
    """Logs days of serving data into ``store`` (deterministic per day)."""

    #: Breaches when the normed Wasserstein distance is above 0.5 (clean days are near
    #: 0.05; a shift of 2 sd is near 2).
    WASSERSTEIN_ABOVE: ClassVar[dict[str, Any]] = {
        "type": "fixed",
        "direction": "above",
        "value": 0.5,
    }
    start = staticmethod(day_start)

    def __init__(self, store: evalstore.Store) -> None:
        self.store = store

    def add(
        self,
        d: int,
        shift: float = 0.0,
        *,
        correct: bool = True,
        labels: bool = False,
        label_delay: timedelta = timedelta(days=1),
    ) -> None:
        """Day ``d``: ``ROWS`` rows every 6 minutes; predictions all right (``correct``)
        or all wrong; with ``labels``, the labels at prediction time + ``label_delay``."""
        rng = np.random.default_rng(1000 + d)
        ids = [f"d{d}_{i}" for i in range(ROWS)]
        ts = [day_start(d) + timedelta(minutes=6 * i) for i in range(ROWS)]
        truth = rng.integers(0, 2, ROWS)
        score = np.where(truth == 1, 0.9, 0.1) if correct else np.where(truth == 1, 0.1, 0.9)
        self.store.log_features(
            "m",
            pa.table({"example_id": ids, "ts": ts, "x": rng.normal(shift, 1.0, ROWS),
                      "c": rng.choice(["a", "b"], ROWS)}),
        )  # fmt: skip
        self.store.log_predictions(
            "m", pa.table({"example_id": ids, "ts": ts, "score": score}), version="v1"
        )
        if labels:
            self.label(d, label_delay)

    def label(self, d: int, delay: timedelta = timedelta(days=1)) -> None:
        """The labels of day ``d``'s predictions, at prediction time + ``delay``."""
        rng = np.random.default_rng(1000 + d)
        ids = [f"d{d}_{i}" for i in range(ROWS)]
        truth = rng.integers(0, 2, ROWS)
        ts = [day_start(d) + timedelta(minutes=6 * i) + delay for i in range(ROWS)]
        self.store.log_labels("m", pa.table({"example_id": ids, "ts": ts, "label": truth}))


def training_rows(store: evalstore.Store, seed: int = 7, n: int = 2000) -> None:
    """Register model ``m`` (binary, ``v1``) and log ``n`` training rows: ``x`` ~ N(0, 1)
    and ``c`` in {a, b}, drawn with ``seed``."""
    store.register_model("m", "v1", "binary")
    rng = np.random.default_rng(seed)
    store.log_features(
        "m",
        pa.table({"example_id": [f"t{i}" for i in range(n)], "x": rng.normal(0.0, 1.0, n),
                  "c": rng.choice(["a", "b"], n)}),
        env="training",
    )  # fmt: skip


@pytest.fixture
def daily(template: Any, tmp_path: Path) -> Iterator[Days]:
    """A store with model ``m`` and its training rows; no serving day yet (a copy of a
    session template: opening an in-memory store and logging the rows per test cost ~0.3 s)."""
    built = template("monitors-daily", training_rows)
    store = evalstore.open(copy_store(built, tmp_path, "daily.duckdb"))
    yield Days(store)
    store.close()


@pytest.fixture
def copy_of(template: Any, tmp_path: Path) -> Iterator[Callable[..., evalstore.Store]]:
    """``copy_of(name, build)``: an open copy of the store file ``build(store)`` filled once
    per test session (conftest's ``template``; ``name`` is unique in the session, prefixed
    by the test module). Each call opens a new copy; they are closed at the end of the test.

    Opening an in-memory store installs every macro (~0.25 s of CPU) and registering a
    model creates its tables (~0.25 s); a copy of a built file opens in ~0.03 s, so a
    fixture that fills a store the same way for every test builds it here once instead.
    """
    opened: list[evalstore.Store] = []

    def open_copy(name: str, build: Callable[[evalstore.Store], Any]) -> evalstore.Store:
        built = template(name, build)
        store = evalstore.open(copy_store(built, tmp_path, f"copy{len(opened)}.duckdb"))
        opened.append(store)
        return store

    yield open_copy
    for store in opened:
        store.close()
