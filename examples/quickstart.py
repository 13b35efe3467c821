"""Log a model's features, predictions and late labels, then ask the store about them.

Run: python examples/quickstart.py
"""

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

import evalstore

rng = np.random.default_rng(0)
n = 1_000
start = datetime(2026, 11, 1, tzinfo=UTC)
ids = [f"tx-{i:05d}" for i in range(n)]
times = [start + timedelta(minutes=30 * i) for i in range(n)]

with evalstore.open() as store:  # pass a path, e.g. "fraud.duckdb", to keep it
    store.register_model("fraud", "v1", task="binary", threshold=0.5, stage="production")
    store.log_features(
        "fraud",
        pa.table({"example_id": ids, "ts": times, "amount": rng.lognormal(3, 1, n)}),
    )
    scores = rng.uniform(size=n)
    store.log_predictions(
        "fraud", pa.table({"example_id": ids, "ts": times, "score": scores}), "v1"
    )
    # Labels arrive three days later, for the first 600 transactions only.
    labeled = pa.table(
        {
            "example_id": ids[:600],
            "ts": [t + timedelta(days=3) for t in times[:600]],
            "label": (rng.uniform(size=600) < scores[:600]).astype(int),
        }
    )
    print(store.log_labels("fraud", labeled))
    print(store.sql("SELECT * FROM evalstore.label_coverage('fraud', '7 days')").to_pandas())
    print(
        store.sql(
            "SELECT avg((prediction = label)::INT) AS accuracy FROM fraud.evaluations "
            "WHERE label IS NOT NULL"
        ).to_pylist()
    )
