"""Training/serving skew: the same examples, features computed by two pipelines.

A team re-logs last month's served examples into the training set of the next model,
recomputing the features offline. Two bugs slipped into the offline pipeline: income is
in thousands for some rows, and region is upper-case for others. store.skew finds both,
with the ids to look at; store.skew_summary says how many examples are affected.

Run: python examples/skew.py
"""

import numpy as np
import pyarrow as pa

import evalstore
from evalstore.core.formats import to_text

rng = np.random.default_rng(0)
n = 2_000
ids = [f"app-{i:05d}" for i in range(n)]
income = np.round(rng.lognormal(np.log(55_000), 0.4, n), 2)
utilization = np.round(rng.beta(2, 5, n), 4)
region = rng.choice(["north", "south", "east", "west"], n)
serving = pa.table(
    {"example_id": ids, "income": income, "utilization": utilization, "region": region}
)

# The offline pipeline: income in thousands for 300 rows, upper-case region for 50,
# and a float rounding difference (harmless within the tolerance) everywhere.
offline_income = income.copy()
thousands = rng.choice(n, 300, replace=False)
offline_income[thousands] = np.round(offline_income[thousands] / 1000, 2)
offline_region = region.astype(object)
upper = rng.choice(n, 50, replace=False)
offline_region[upper] = np.char.upper(region[upper].astype(str))
training = pa.table(
    {
        "example_id": ids,
        "income": offline_income,
        "utilization": utilization + 1e-12,
        "region": offline_region.astype(str),
    }
)

with evalstore.open() as store:
    store.register_model("credit", "v1", "binary", training_dataset="rebuilt_2026_11")
    store.log_features("credit", serving)  # served online
    store.log_features("credit", training, env="training", dataset="rebuilt_2026_11")

    table = store.skew("credit", tolerance=1e-6, rtol=1e-6, sample=3)
    print(
        to_text(
            table.select(
                ["feature", "n_compared", "n_mismatch", "share_mismatch", "max_abs_diff",
                 "distance", "sample_ids"]
            )
        )
    )  # fmt: skip
    summary = store.skew_summary("credit", tolerance=1e-6, rtol=1e-6).to_pylist()[0]
    print(
        f"{summary['n_examples_skewed']} of {summary['n_examples']} examples differ in at "
        f"least one feature; {summary['n_features_skewed']} of {summary['n_features']} "
        "features are skewed"
    )
