"""The estimated_performance monitor's default lookback: without ``since`` in its options,
a time-window monitor analyses the last 90 days of predictions (from the start of the
window holding latest - 90 days; earlier when its learn_period starts before)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pytest

from evalstore.monitors import definitions, estimation_series
from evalstore.monitors.run import compute
from tests.conftest import blank_store

START = datetime(2026, 1, 5, tzinfo=UTC)  # a Monday
DAYS, PER_DAY = 120, 12
REF = (START.isoformat(), (START + timedelta(days=10)).isoformat())
RULE = {"type": "fixed", "direction": "below", "value": 0.1}


@pytest.fixture(scope="module")
def store():
    rng = np.random.default_rng(3)
    n = DAYS * PER_DAY
    score = np.round(rng.uniform(size=n), 2)
    ids = [f"e{i}" for i in range(n)]
    ts = pa.array(
        [START + timedelta(seconds=int(i * 86400 // PER_DAY)) for i in range(n)],
        pa.timestamp("us", "UTC"),
    )
    store = blank_store()
    store.register_model("m", "v1", "binary")
    store.log_predictions("m", pa.table({"example_id": ids, "score": score, "ts": ts}), "v1")
    labeled = 10 * PER_DAY
    y = (rng.uniform(size=labeled) < score[:labeled]).astype(int)
    store.log_labels("m", pa.table({"example_id": ids[:labeled], "label": y}))
    yield store
    store.close()


def _first_start(store, **kwargs) -> datetime:
    ctx = store._context()
    monitor = definitions.check(
        ctx, "probe", "m", "estimated_performance", "accuracy", RULE, reference=REF, **kwargs
    )
    with ctx.lock:
        [part] = compute(ctx, monitor, persist=False)
    first = part.series.window_start[0].astype("datetime64[us]").item()
    return first.replace(tzinfo=UTC)


def test_default_lookback_is_90_days(store):
    assert estimation_series.DEFAULT_LOOKBACK_DAYS == 90
    last_day = START + timedelta(days=DAYS - 1)  # latest prediction on day 119
    assert _first_start(store, window="1 day") == last_day - timedelta(days=90)
    # weekly windows: the start of the week holding latest - 90 days (a Monday)
    assert _first_start(store, window="7 days") == START + timedelta(days=28)


def test_since_in_options_and_learn_period_override_the_default(store):
    since = START + timedelta(days=3)
    assert _first_start(store, window="1 day", options={"since": since.isoformat()}) == since
    rule = {"type": "learned", "k": 3.0, "direction": "below"}
    ctx = store._context()
    monitor = definitions.check(
        ctx, "probe", "m", "estimated_performance", "accuracy", rule, reference=REF,
        window="1 day", learn_period=REF,
    )  # fmt: skip
    assert estimation_series.call_arguments(ctx, monitor)["since"] == START
