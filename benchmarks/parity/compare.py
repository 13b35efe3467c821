"""evalstore's presets against the peers' golden files: load the generated parity data
(``benchmarks/parity/data.py``) into a store, run ``preset="nannyml"`` and
``preset="evidently"``, and pair every golden number with evalstore's.

``tests/metrics/test_presets.py`` asserts each pair to 1e-9; run this file to print the
table method x peer x max |difference| (and the number of numbers compared):

    .venv/bin/python benchmarks/parity/compare.py

Which evalstore method a peer's method is comes from the preset registry
(:data:`evalstore.metrics.presets.PRESETS`, ``peer_name``); which number, from the golden
(``value`` and/or ``p_value``). Chunks are NannyML's ``chunk_number`` split,
``window={"chunks": n, "split": "nannyml"}``.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

import evalstore
from evalstore.metrics.presets import PRESETS

HERE = Path(__file__).resolve().parent
GOLDENS = HERE.parents[1] / "tests" / "metrics" / "goldens"
MODELS = ("big", "small")
FAMILIES = ("drift", "quality", "performance", "multivariate_drift")


def _data():  # type: ignore[no-untyped-def]
    if "parity_data" not in sys.modules:
        spec = importlib.util.spec_from_file_location("parity_data", HERE / "data.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules["parity_data"] = module
        spec.loader.exec_module(module)
    return sys.modules["parity_data"]


data = _data()


def golden(model: str) -> dict[str, Any]:
    """The golden file of ``model`` (written by ``run_peers.py``)."""
    return json.loads((GOLDENS / f"parity_{model}.json").read_text())


def load(store: evalstore.Store, model: str) -> None:
    """Register ``model`` (binary) and log its generated rows: the reference as training
    features, the analysis as serving features with predictions and the labels present."""
    store.register_model(model, "v1", "binary")
    sides = data.generate(model)
    starts = {"reference": dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
              "analysis": dt.datetime(2026, 3, 1, tzinfo=dt.UTC)}  # fmt: skip
    for side, env in (("reference", "training"), ("analysis", "serving")):
        columns = sides[side]
        n = len(columns["x_norm"])
        ids = [f"{side[0]}{i:06d}" for i in range(n)]
        ts = pa.array([starts[side] + dt.timedelta(minutes=i) for i in range(n)],
                      pa.timestamp("us", tz="UTC"))  # fmt: skip
        features: dict[str, Any] = {"example_id": ids, "ts": ts}
        for name in data.NUMERIC:
            features[name] = pa.array(columns[name], pa.float64(), from_pandas=True)
        for name in data.CATEGORICAL:
            features[name] = pa.array(list(columns[name]), pa.string())
        store.log_features(model, pa.table(features), env=env)
        if side == "analysis":
            outputs = {"example_id": ids, "ts": ts, "score": columns["score"],
                       "prediction": columns["prediction"].astype(int)}  # fmt: skip
            store.log_predictions(model, pa.table(outputs), version="v1")
            labeled = ~np.isnan(columns["label"])
            store.log_labels(model, pa.table({
                "example_id": [i for i, keep in zip(ids, labeled, strict=True) if keep],
                "label": columns["label"][labeled].astype(int),
            }))  # fmt: skip


def run(store: evalstore.Store, model: str, peer: str, family: str) -> pa.Table:
    """``store.<family>(model, preset=peer)`` over the golden's chunks and features."""
    window = {"chunks": data.SHAPES[model][2], "split": "nannyml"}
    if family == "performance":
        return store.performance(model, window=window, preset=peer)
    numeric = family == "multivariate_drift"
    features = [*data.NUMERIC] if numeric else [*data.NUMERIC, *data.CATEGORICAL]
    return getattr(store, family)(model, window=window, features=features, preset=peer)


def pairs(
    store: evalstore.Store, model: str, runs: dict[tuple[str, str, str], pa.Table] | None = None
) -> list[dict[str, Any]]:
    """Every golden number of ``model`` beside evalstore's: dicts with model, peer, family,
    the peer's method, evalstore's method, feature, chunk, field, golden, ours, diff.
    ``runs`` (optional) keeps each :func:`run`'s table by (model, peer, family)."""
    runs = {} if runs is None else runs
    records = golden(model)["records"]
    out = []
    for peer in PRESETS.values():
        for family in FAMILIES:
            mine = [r for r in records if r["peer"] == peer.name and r["family"] == family]
            if not mine:
                continue
            key = (model, peer.name, family)
            if key not in runs:
                runs[key] = run(store, model, peer.name, family)
            table = runs[key].to_pylist()
            starts = sorted({r["window_start"] for r in table})
            rows = {(r.get("method", r.get("metric")), r.get("feature", "*"),
                     starts.index(r["window_start"])): r for r in table}  # fmt: skip
            ours = {spec.peer_name: name for name, spec in peer.families[family].items()}
            for record in mine:
                method = ours.get(record["method"])
                row = rows.get((method, record["feature"], record["chunk"]))
                for field, expected in record["golden"].items():
                    got = None if row is None else row[field]
                    if expected is None and got is not None and family == "performance":
                        diff = None  # NannyML's NaN for a one-class chunk (see the preset)
                    elif expected is None or got is None:
                        diff = 0.0 if expected is None and got is None else math.inf
                    else:
                        diff = abs(got - expected)
                    out.append({"model": model, "peer": peer.name, "family": family,
                                "peer_method": record["method"], "method": method,
                                "feature": record["feature"], "chunk": record["chunk"],
                                "field": field, "golden": expected, "ours": got,
                                "diff": diff})  # fmt: skip
    return out


def table(compared: list[dict[str, Any]]) -> str:
    """Markdown: per peer, family, peer method, field and model, the count of numbers
    compared and their max |difference| (model ``big`` has a reference of 12,000 rows,
    where NannyML estimates KS and W1; ``small`` 1,500)."""
    worst: dict[tuple[str, ...], list[float | None]] = {}
    for p in compared:
        key = (p["peer"], p["family"], p["peer_method"], str(p["method"]), p["field"],
               p["model"])  # fmt: skip
        worst.setdefault(key, []).append(p["diff"])
    lines = [
        "| peer | family | peer's method | evalstore method | number | model | compared "
        "| max abs difference | peer NaN, evalstore a value |",
        "| --- | --- | --- | --- | --- | --- | ---: | ---: | ---: |",
    ]
    for (peer, family, peer_method, method, field, model), diffs in sorted(worst.items()):
        known = [d for d in diffs if d is not None]
        undefined = len(diffs) - len(known)
        lines.append(f"| {peer} | {family} | `{peer_method}` | `{method}` | {field} | "
                     f"{model} | {len(diffs)} | {max(known):.1e} | {undefined} |")  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    compared = []
    with evalstore.open() as store:
        for model in MODELS:
            load(store, model)
            compared += pairs(store, model)
    print(table(compared))


if __name__ == "__main__":
    main()
