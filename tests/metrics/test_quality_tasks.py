"""Quality checks only the columns a model's task defines (issue 25, point 2).

``score`` is the positive-class probability of a binary model and NULL by design for
multiclass and regression models: checking it reported ``missing = 1.0`` in every window.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

import evalstore
from evalstore.errors import InvalidParameterError
from tests.conftest import blank_store

START = datetime(2026, 5, 4, tzinfo=UTC)
DAYS = 4
N = 400


def _store(task: str) -> tuple[evalstore.Store, dict[str, np.ndarray]]:
    """A model of ``task`` whose feature ``x`` (and, for binary, ``score``) has NULLs."""
    rng = np.random.default_rng({"binary": 1, "multiclass": 2, "regression": 3}[task])
    store = blank_store()
    classes = ["a", "b", "c"] if task == "multiclass" else None
    store.register_model("m", "v1", task, classes=classes)
    hours = rng.integers(0, 24 * DAYS, N)
    ts = [START + timedelta(hours=int(h)) for h in hours]
    ids = [f"e{i}" for i in range(N)]
    x = rng.normal(0, 1, N)
    x_null = rng.random(N) < 0.2
    train_x = rng.normal(0, 1, N)
    store.log_features(
        "m",
        pa.table({"example_id": [f"t{i}" for i in range(N)], "ts": ts, "x": train_x}),
        env="training",
    )
    store.log_features(
        "m", pa.table({"example_id": ids, "ts": ts, "x": pa.array(x, mask=x_null)}), env="serving"
    )
    columns = {"example_id": ids, "ts": ts}
    score_null = np.zeros(N, dtype=bool)
    if task == "binary":
        score = rng.random(N)
        score_null = rng.random(N) < 0.1
        columns |= {"prediction": (score > 0.5).astype(int).astype(str)}
        columns |= {"score": pa.array(score, mask=score_null)}
        labels = rng.integers(0, 2, N).astype(str)
    elif task == "multiclass":
        columns |= {"prediction": rng.choice(classes, N).tolist()}
        labels = rng.choice(classes, N)
    else:
        columns |= {"prediction": rng.normal(0, 1, N)}
        labels = rng.normal(0, 1, N)
    store.log_predictions("m", pa.table(columns), "v1")
    store.log_labels("m", pa.table({"example_id": ids, "label": labels, "ts": ts}))
    day = (hours // 24).astype(int)
    return store, {"day": day, "x_null": x_null, "score_null": score_null}


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_quality_checks_the_outputs_the_task_defines(task):
    store, truth = _store(task)
    with store:
        rows = store.quality("m", window="1 day").to_pylist()
        features = {r["feature"] for r in rows}
        expected = {"x", "prediction", "label"} | ({"score"} if task == "binary" else set())
        assert features == expected
        missing = {
            (r["feature"], (r["window_start"] - START).days): r
            for r in rows
            if r["method"] == "missing"
        }
        for day in range(DAYS):
            in_day = truth["day"] == day
            assert missing[("x", day)]["value"] == pytest.approx(truth["x_null"][in_day].mean())
            # every prediction and label is there: nothing missing, nothing flagged
            for output in ("prediction", "label"):
                assert missing[(output, day)]["value"] == 0.0
                assert missing[(output, day)]["drifted"] is False
            if task == "binary":
                share = truth["score_null"][in_day].mean()
                assert missing[("score", day)]["value"] == pytest.approx(share)
        # no check of any column reports a whole window missing
        assert all(r["value"] < 0.5 for r in missing.values())
        # the long-format views (the SQL macros' input, for BI users too) agree
        scored = store.sql(
            "SELECT count(*) AS n FROM m.numeric_values WHERE feature = 'score'"
        ).to_pylist()
        assert scored == [{"n": N if task == "binary" else 0}]


@pytest.mark.parametrize("task", ["multiclass", "regression"])
def test_asking_for_the_score_of_a_model_without_one(task):
    store, _ = _store(task)
    with store, pytest.raises(InvalidParameterError, match=rf"a {task} model has no score"):
        store.quality("m", features=["score"])
