"""Does store.suggest pick better labels than chance? A simulated labeling loop.

Data: a generated binary task (10 numeric features, a categorical ``region`` whose third
value is rare and shifted, a linear true logit with sharp coefficients, 2% label noise):
``--pool`` unlabeled
serving examples, a labeled seed set of ``--seed-size`` training rows, and a held-out
test set of 5,000 rows.

Loop, per strategy and repetition: a numpy logistic regression (Newton / IRLS, L2 1e-3, on
standardized features + one-hot region) is trained on the seed set; its pool predictions
are logged as version v0. Each round ``store.suggest(k=--round)`` picks examples, the
oracle's labels are logged (which fulfils the requests), the model is retrained on seed +
everything labeled so far, and its pool predictions are logged as the next version (the
one the next round ranks). After each budget in ``--budgets`` it records:

* **accuracy** of the retrained model on the test set (higher is better);
* **estimate error**: |accuracy of the v0 model estimated from the labeled picks - its
  true accuracy on the whole pool|, i.e. how wrong a dashboard reading the picked labels
  would be about the deployed model (lower is better).

``random`` is the baseline (a seeded uniform sample of the same candidates). Results are
means over ``--reps`` repetitions (different data and seeds); the table prints each
strategy's accuracy and its difference to random at the same budget.

Usage::

    python benchmarks/simulate_labeling.py [--pool 4000] [--reps 2] [--budgets 100,200,400]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyarrow as pa

import evalstore

STRATEGIES = (
    "random", "least_confidence", "margin", "entropy", "committee", "novelty", "slices",
    "diversity", "mix",
)  # fmt: skip
REGIONS = np.array(["north", "south", "rare"])
FEATURES = 10
#: True coefficients: a sharp, linear boundary (the logistic model can learn it; how fast
#: depends on which labels it gets).
BETA = np.random.default_rng(7).normal(size=FEATURES) * 2.0


def make_data(n: int, rng: np.random.Generator, shift: float = 0.0) -> dict[str, np.ndarray]:
    x = rng.normal(size=(n, FEATURES))
    x[:, 0] += shift
    region = REGIONS[rng.choice(3, n, p=[0.6, 0.32, 0.08])]
    logit = x @ BETA + np.where(region == "rare", 1.5, 0.0) - np.where(region == "south", 0.5, 0)
    y = (rng.uniform(size=n) < 1 / (1 + np.exp(-logit))).astype(int)
    flip = rng.uniform(size=n) < 0.02
    y[flip] = 1 - y[flip]
    return {"x": x, "region": region, "y": y}


def design(data: dict[str, np.ndarray]) -> np.ndarray:
    onehot = (data["region"][:, None] == REGIONS[None, :]).astype(float)
    return np.column_stack([np.ones(len(data["y"])), data["x"], onehot[:, 1:]])


def fit(x: np.ndarray, y: np.ndarray, l2: float = 1e-3, steps: int = 25) -> np.ndarray:
    """L2-regularised logistic regression by Newton's method (IRLS)."""
    w = np.zeros(x.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + l2 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + l2 * np.eye(x.shape[1])
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.max(np.abs(step)) < 1e-8:
            break
    return w


def predict(w: np.ndarray, x: np.ndarray) -> np.ndarray:
    return 1 / (1 + np.exp(-(x @ w)))


def feature_table(ids: list[str], data: dict[str, np.ndarray]) -> pa.Table:
    columns = {"example_id": ids}
    for j in range(data["x"].shape[1]):
        columns[f"x{j}"] = data["x"][:, j]
    columns["region"] = data["region"]
    return pa.table(columns)


def run_one(strategy: str, rep: int, args: argparse.Namespace) -> list[tuple[int, float, float]]:
    rng = np.random.default_rng(1000 + rep)
    seed = make_data(args.seed_size, rng)
    pool = make_data(args.pool, rng, shift=0.3)  # serving has drifted a little
    test = make_data(5000, rng, shift=0.3)
    xs, xp, xt = design(seed), design(pool), design(test)
    pool_ids = [f"p{i}" for i in range(args.pool)]
    index = {e: i for i, e in enumerate(pool_ids)}
    results = []
    with evalstore.open() as store:
        store.register_model("sim", "v0", "binary")
        store.log_features(
            "sim", feature_table([f"s{i}" for i in range(args.seed_size)], seed), env="training"
        )
        store.log_labels(
            "sim",
            pa.table({"example_id": [f"s{i}" for i in range(args.seed_size)], "label": seed["y"]}),
        )
        store.log_features("sim", feature_table(pool_ids, pool))
        w0 = fit(xs, seed["y"])
        p0 = predict(w0, xp)
        true_acc0 = float(np.mean((p0 >= 0.5) == pool["y"]))
        store.log_predictions("sim", pa.table({"example_id": pool_ids, "score": p0}), version="v0")
        if strategy == "committee":  # a second, differently regularised committee member
            store.register_model("sim", "c0", "binary")
            wc = fit(xs, seed["y"], l2=30.0)
            store.log_predictions(
                "sim", pa.table({"example_id": pool_ids, "score": predict(wc, xp)}), version="c0"
            )
        labeled: list[int] = []
        version = 0
        for budget in args.budgets:
            while len(labeled) < budget:
                k = min(args.round, budget - len(labeled))
                picks = store.suggest(
                    "sim", k=k, strategy=strategy, version=f"v{version}", seed=rep * 100 + version
                )
                chosen = [index[e] for e in picks.column("example_id").to_pylist()]
                if not chosen:
                    break
                store.log_labels(
                    "sim",
                    pa.table(
                        {"example_id": [pool_ids[i] for i in chosen], "label": pool["y"][chosen]}
                    ),
                )
                labeled += chosen
                w = fit(
                    np.vstack([xs, xp[labeled]]), np.concatenate([seed["y"], pool["y"][labeled]])
                )
                version += 1
                store.register_model("sim", f"v{version}", "binary")
                store.log_predictions(
                    "sim",
                    pa.table({"example_id": pool_ids, "score": predict(w, xp)}),
                    version=f"v{version}",
                )
                if strategy == "committee":
                    store.register_model("sim", f"c{version}", "binary")
                    wc = fit(
                        np.vstack([xs, xp[labeled]]),
                        np.concatenate([seed["y"], pool["y"][labeled]]),
                        l2=30.0,
                    )
                    store.log_predictions(
                        "sim",
                        pa.table({"example_id": pool_ids, "score": predict(wc, xp)}),
                        version=f"c{version}",
                    )
            accuracy = float(np.mean((predict(w, xt) >= 0.5) == test["y"]))
            estimate = float(np.mean((p0[labeled] >= 0.5) == pool["y"][labeled]))
            results.append((budget, accuracy, abs(estimate - true_acc0)))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pool", type=int, default=4000)
    parser.add_argument("--seed-size", type=int, default=100)
    parser.add_argument("--reps", type=int, default=2)
    parser.add_argument("--round", type=int, default=20, help="labels per round")
    parser.add_argument("--budgets", default="100,200,400")
    parser.add_argument("--strategies", default=",".join(STRATEGIES))
    args = parser.parse_args()
    args.budgets = [int(b) for b in args.budgets.split(",")]
    start = time.perf_counter()
    table: dict[tuple[str, int], list[tuple[float, float]]] = {}
    for strategy in args.strategies.split(","):
        for rep in range(args.reps):
            for budget, accuracy, error in run_one(strategy, rep, args):
                table.setdefault((strategy, budget), []).append((accuracy, error))
    print(
        f"pool {args.pool:,} unlabeled, seed {args.seed_size} labeled, rounds of {args.round}, "
        f"mean of {args.reps} repetitions ({time.perf_counter() - start:.0f} s)\n"
    )
    header = "| strategy | " + " | ".join(f"acc @{b}" for b in args.budgets)
    header += " | " + " | ".join(f"est. err @{b}" for b in args.budgets) + " |"
    print(header)
    print("|:--" + "|--:" * (2 * len(args.budgets)) + "|")
    for strategy in args.strategies.split(","):
        cells = []
        for b in args.budgets:
            acc = np.mean([a for a, _ in table[(strategy, b)]])
            base = np.mean([a for a, _ in table[("random", b)]]) if ("random", b) in table else acc
            cells.append(f"{acc:.4f} ({acc - base:+.4f})" if strategy != "random" else f"{acc:.4f}")
        for b in args.budgets:
            cells.append(f"{np.mean([e for _, e in table[(strategy, b)]]):.4f}")
        print(f"| {strategy} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
