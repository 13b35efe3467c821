"""Run NannyML 0.13 and Evidently 0.7 on the generated parity data and write their numbers
as golden files (``tests/metrics/goldens/``), which ``tests/metrics/test_presets.py``
compares evalstore's presets with.

The peers are not evalstore dependencies: this script runs in an environment of their
own. Use an existing one, or let the script create it:

    python benchmarks/parity/run_peers.py --venv /work/peers-venv            # reuse
    python benchmarks/parity/run_peers.py --venv /tmp/peers --create         # create, then run

``--create`` runs ``python -m venv DIR`` and ``DIR/bin/pip install nannyml==0.13.1
evidently==0.7.23 'pandas>=2.2,<2.3'`` (NannyML 0.13 needs pandas < 2.3), then re-runs this
script with ``DIR/bin/python``. The data come from ``benchmarks/parity/data.py`` (numpy
only, seeded), which the tests import too.

What is run, per model (``big``: 12,000 reference rows, ``small``: 1,500) and per chunk
of NannyML's ``CountBasedChunker(chunk_number=n)`` over the analysis rows:

* NannyML ``UnivariateDriftCalculator`` (continuous: kolmogorov_smirnov, jensen_shannon,
  wasserstein, hellinger; categorical: chi2 (statistic and p-value), jensen_shannon,
  l_infinity, hellinger), ``MissingValuesCalculator``, ``UnseenValuesCalculator``
  (categorical columns), ``NumericalRangeCalculator`` (numeric columns),
  ``DataReconstructionDriftCalculator`` (numeric columns) and ``PerformanceCalculator``
  (binary: roc_auc, f1, precision, recall, specificity, accuracy of score / prediction /
  label), all with their defaults;
* Evidently's registered stat tests (``evidently.legacy.calculations.stattests``: psi,
  kl_div, jensenshannon, hellinger, wasserstein (normed), ks (p-value), chisquare, and z
  (p-value) on the binary ``flag``), each
  called as Evidently's ``get_one_column_drift`` calls it: infinities dropped with NULLs,
  the column type given (numeric columns ``Numerical``, ``cat`` ``Categorical``).

Output: ``tests/metrics/goldens/parity_<model>.json`` with the data's digest, the peer
versions and one record per (peer, family, method, feature, chunk): the peer's own method
name and ``golden``, the numbers it reported (``value``, and ``p_value`` for NannyML's chi2;
``p_value`` alone for Evidently's ks and chisquare, whose drift score is the p-value).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
GOLDENS = ROOT / "tests" / "metrics" / "goldens"
PINS = ["nannyml==0.13.1", "evidently==0.7.23", "pandas>=2.2,<2.3"]


def _create(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", *PINS], check=True)


def _number(x) -> float | None:  # type: ignore[no-untyped-def]
    x = float(x)
    return None if math.isnan(x) else x


def _frames(model: str):  # type: ignore[no-untyped-def]
    import pandas as pd

    sys.path.insert(0, str(HERE))
    import data

    sides = data.generate(model)
    frames = {}
    for side, columns in sides.items():
        frame = pd.DataFrame(columns)
        frame["cat"] = frame["cat"].astype(object)
        frame["ts"] = pd.date_range(
            "2026-01-01" if side == "reference" else "2026-03-01", periods=len(frame), freq="min"
        )
        frames[side] = frame
    return data, frames


def _nannyml(model: str, data, frames) -> list[dict]:  # type: ignore[no-untyped-def]
    import nannyml as nml

    chunks = data.SHAPES[model][2]
    ref, ana = frames["reference"], frames["analysis"]
    out: list[dict] = []

    def records(result, family: str, methods: dict[str, str], columns) -> None:
        """Each chunk's value: columns (feature, method, 'value') of drift results,
        (feature, 'value') of data-quality results (one method per calculator)."""
        frame = result.filter(period="analysis").to_df()
        for column in columns:
            for method, name in methods.items():
                key = (column, method, "value") if family == "drift" else (column, "value")
                if key not in frame.columns:
                    continue
                for i, value in enumerate(frame[key]):
                    out.append(
                        {
                            "peer": "nannyml",
                            "family": family,
                            "method": name,
                            "feature": column,
                            "chunk": i,
                            "golden": {"value": _number(value)},
                        }
                    )

    numeric, categorical = list(data.NUMERIC), list(data.CATEGORICAL)
    drift = nml.UnivariateDriftCalculator(
        column_names=numeric + categorical,
        continuous_methods=["kolmogorov_smirnov", "jensen_shannon", "wasserstein", "hellinger"],
        categorical_methods=["chi2", "jensen_shannon", "l_infinity", "hellinger"],
        chunk_number=chunks,
    ).fit(ref)
    names = ["kolmogorov_smirnov", "jensen_shannon", "wasserstein", "hellinger", "chi2"]
    names.append("l_infinity")
    records(drift.calculate(ana), "drift", {n: n for n in names}, numeric + categorical)
    # chi2's p-values live in the result's method objects' last calculation: recompute per
    # chunk with NannyML's own method (as its calculator does)
    from nannyml.chunk import CountBasedChunker
    from nannyml.drift.univariate.methods import Chi2Statistic
    from nannyml.thresholds import ConstantThreshold

    for column in categorical:
        method = Chi2Statistic(
            chunker=CountBasedChunker(chunk_number=chunks), threshold=ConstantThreshold(upper=None)
        )
        method.fit(ref[column])
        for i, (lo, hi) in enumerate(data.nannyml_chunks(len(ana), chunks)):
            stat = method.calculate(ana[column].iloc[lo:hi])
            for record in out:
                if (record["method"], record["feature"], record["chunk"]) == ("chi2", column, i):
                    assert record["golden"]["value"] == _number(stat)
                    record["golden"]["p_value"] = _number(method._p_value)

    missing = nml.MissingValuesCalculator(
        column_names=numeric + categorical, chunk_number=chunks
    ).fit(ref)
    records(missing.calculate(ana), "quality", {"-": "missing_values_rate"}, numeric + categorical)
    unseen = nml.UnseenValuesCalculator(column_names=categorical, chunk_number=chunks).fit(ref)
    records(unseen.calculate(ana), "quality", {"-": "unseen_values_rate"}, categorical)
    ranged = nml.NumericalRangeCalculator(column_names=numeric, chunk_number=chunks).fit(ref)
    records(ranged.calculate(ana), "quality", {"-": "out_of_range_values_rate"}, numeric)

    reconstruction = nml.DataReconstructionDriftCalculator(
        column_names=numeric, chunk_number=chunks
    ).fit(ref)
    frame = reconstruction.calculate(ana).filter(period="analysis").to_df()
    for i, value in enumerate(frame[("reconstruction_error", "value")]):
        out.append({"peer": "nannyml", "family": "multivariate_drift", "method":
                    "reconstruction_error", "feature": "*", "chunk": i,
                    "golden": {"value": _number(value)}})  # fmt: skip

    metrics = ["roc_auc", "f1", "precision", "recall", "specificity", "accuracy"]
    performance = nml.PerformanceCalculator(
        problem_type="classification_binary", y_true="label", y_pred="prediction",
        y_pred_proba="score", metrics=metrics, chunk_number=chunks,
    ).fit(ref)  # fmt: skip
    frame = performance.calculate(ana).filter(period="analysis").to_df()
    for metric in metrics:
        for i, value in enumerate(frame[(metric, "value")]):
            golden = {"value": _number(value)}
            out.append({"peer": "nannyml", "family": "performance", "method": metric,
                        "feature": "*", "chunk": i, "golden": golden})  # fmt: skip
    return out


def _evidently(model: str, data, frames) -> list[dict]:  # type: ignore[no-untyped-def]
    import numpy as np
    from evidently.legacy.calculations.stattests.registry import get_stattest
    from evidently.legacy.core import ColumnType

    chunks = data.SHAPES[model][2]
    ref, ana = frames["reference"], frames["analysis"]
    tests = {
        ColumnType.Numerical: ["psi", "kl_div", "jensenshannon", "hellinger", "wasserstein", "ks"],
        ColumnType.Categorical: ["psi", "kl_div", "jensenshannon", "hellinger", "chisquare"],
    }
    binary = {"flag"}  # Evidently's z test, for binary categorical features
    out = []
    for column in [*data.NUMERIC, *data.CATEGORICAL]:
        kind = ColumnType.Categorical if column in data.CATEGORICAL else ColumnType.Numerical

        def clean(series):  # type: ignore[no-untyped-def]
            # as evidently.legacy.calculations.data_drift.get_one_column_drift
            return series.replace([-np.inf, np.inf], np.nan).dropna()

        reference = clean(ref[column])
        for i, (lo, hi) in enumerate(data.nannyml_chunks(len(ana), chunks)):
            current = clean(ana[column].iloc[lo:hi])
            for name in [*tests[kind], *(["z"] if column in binary else [])]:
                test = get_stattest(reference, current, kind, name)
                result = test(reference.copy(), current.copy(), kind, None)
                # ks, chisquare and z report a p-value as their drift score
                field = "p_value" if name in ("ks", "chisquare", "z") else "value"
                out.append(
                    {
                        "peer": "evidently",
                        "family": "drift",
                        "method": name,
                        "feature": column,
                        "chunk": i,
                        "golden": {field: _number(result.drift_score)},
                    }
                )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--venv", type=Path, help="the peers' environment (run there)")
    parser.add_argument("--create", action="store_true", help="create --venv first")
    args = parser.parse_args()
    if args.venv is not None and Path(sys.prefix).resolve() != args.venv.resolve():
        if args.create:
            _create(args.venv)
        python = args.venv / "bin" / "python"
        subprocess.run([str(python), __file__], check=True)
        return
    if os.environ.get("PYTHONHASHSEED") != "0":
        # Evidently sums over Python sets of categories: a fixed hash seed fixes their
        # order, so the goldens are the same to the last bit on every run
        env = dict(os.environ, PYTHONHASHSEED="0")
        subprocess.run([sys.executable, __file__], check=True, env=env)
        return
    # no usage reporting from the peers (this machine may have no network at all)
    os.environ.update(
        NML_DISABLE_USAGE_LOGGING="1", DO_NOT_TRACK="1", EVIDENTLY_DISABLE_TELEMETRY="1"
    )
    import evidently
    import nannyml

    GOLDENS.mkdir(parents=True, exist_ok=True)
    for model in ("big", "small"):
        data, frames = _frames(model)
        records = _nannyml(model, data, frames) + _evidently(model, data, frames)
        golden = {
            "model": model,
            "digest": data.digest(model),
            "peers": {"nannyml": nannyml.__version__, "evidently": evidently.__version__},
            "chunks": data.nannyml_chunks(data.SHAPES[model][1], data.SHAPES[model][2]),
            "records": records,
        }
        path = GOLDENS / f"parity_{model}.json"
        path.write_text(json.dumps(golden, indent=0) + "\n")
        print(f"{path.relative_to(ROOT)}: {len(records)} records")


if __name__ == "__main__":
    main()
