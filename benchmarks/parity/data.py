"""The generated data of the parity goldens: one definition, read by the peers' script
(``benchmarks/parity/run_peers.py``, in NannyML's and Evidently's own environment) and by
``tests/metrics/test_presets.py`` (in evalstore's).

numpy only, seeded (``numpy.random.default_rng``, PCG64, whose streams numpy keeps stable
across versions); :func:`digest` hashes the arrays so a test can tell that the data it
loads is the data the goldens were computed on.

Two models:

* ``big``: a reference of 12,000 rows, so NannyML's KS and Wasserstein take their binned
  estimates (references of >= 10,000 values); 5,003 analysis rows cut by NannyML's
  ``chunk_number=7``: 7 chunks of floor(5003 / 7) = 714 rows and an eighth of 5, whose 4
  labeled rows are all negative and predicted negative (one class);
* ``small``: a reference of 1,500 rows (exact KS and Wasserstein) and 2,600 analysis rows
  in 4 chunks (650 each).

Columns of both: ``x_norm`` (normal, rounded to 2 decimals: ties; 4% NULL), ``x_gap``
(a two-bump mixture with an empty band between the bumps: empty bins), ``x_int`` (integers
0..7 as doubles: a low-cardinality numeric, <= 20 distinct values; 2% NULL), ``x_shift``
(the analysis shifted beyond the reference's range: out-of-range values and mass outside
the edges), ``x_tiny`` (sd 2e-4, below Evidently's 0.001 floor of the normed
Wasserstein's divisor), ``cat`` (categories a..e, the analysis adds an unseen ``z``; 5%
NULL), ``tier`` (four categories whose shares move a little, none unseen; 2% NULL),
``flag`` (binary, yes/no; 3% NULL);
``score``, ``prediction`` (decided at 0.5) and ``label`` of a binary model, 10% of the
analysis labels missing. NULLs are NaN here (None for ``cat``); no infinities (NannyML's
histograms reject them).
"""

from __future__ import annotations

import hashlib

import numpy as np

#: model -> (reference rows, analysis rows, chunks, seed)
SHAPES = {"big": (12_000, 5_003, 7, 2301), "small": (1_500, 2_600, 4, 2302)}
NUMERIC = ("x_norm", "x_gap", "x_int", "x_shift", "x_tiny")
CATEGORICAL = ("cat", "tier", "flag")
CATEGORIES = np.array(["a", "b", "c", "d", "e"])
TIERS = np.array(["gold", "silver", "bronze", "basic"])


def _columns(rng: np.random.Generator, n: int, analysis: bool) -> dict[str, np.ndarray]:
    shift = 0.3 if analysis else 0.0
    x_norm = np.round(rng.normal(shift, 1.0, n), 2)
    x_norm[rng.random(n) < 0.04] = np.nan
    bump = rng.random(n) < (0.55 if analysis else 0.7)
    x_gap = np.where(bump, rng.normal(0.0, 0.5, n), rng.normal(6.0, 0.4, n))
    x_int = rng.integers(0, 8 if analysis else 7, n).astype(float)
    x_int[rng.random(n) < 0.02] = np.nan
    x_shift = rng.lognormal(0.0 if not analysis else 0.4, 0.6, n)
    x_tiny = 3.0 + rng.normal(1e-4 if analysis else 0.0, 2e-4, n)
    weights = [0.3, 0.25, 0.2, 0.15, 0.1]
    cat = rng.choice(CATEGORIES, n, p=weights).astype(object)
    if analysis:
        cat[rng.random(n) < 0.03] = "z"
    cat[rng.random(n) < 0.05] = None
    tier = rng.choice(TIERS, n, p=[0.4, 0.3, 0.2, 0.1] if not analysis else [0.35, 0.3, 0.2, 0.15])
    tier = tier.astype(object)
    tier[rng.random(n) < 0.02] = None
    flag = np.where(rng.random(n) < (0.3 if analysis else 0.25), "yes", "no").astype(object)
    flag[rng.random(n) < 0.03] = None
    logit = 0.8 * np.nan_to_num(x_norm) - 0.3 * np.nan_to_num(x_int) + rng.normal(0, 1, n)
    score = 1 / (1 + np.exp(-logit))
    label = (rng.random(n) < score).astype(float)
    if analysis:
        label[rng.random(n) < 0.1] = np.nan
    return {
        "x_norm": x_norm, "x_gap": x_gap, "x_int": x_int, "x_shift": x_shift, "x_tiny": x_tiny,
        "cat": cat, "tier": tier, "flag": flag,
        "score": np.round(score, 4), "prediction": (score >= 0.5).astype(float), "label": label,
    }  # fmt: skip


def generate(model: str) -> dict[str, dict[str, np.ndarray]]:
    """``{"reference": columns, "analysis": columns}`` of ``model`` (see the module
    docstring); rows are in time order (row i of a side is its i-th by ``ts``)."""
    n_ref, n_ana, _, seed = SHAPES[model]
    rng = np.random.default_rng(seed)
    sides = {"reference": _columns(rng, n_ref, False), "analysis": _columns(rng, n_ana, True)}
    if model == "big":  # the last, 5-row chunk holds one class (labels and decisions)
        last = sides["analysis"]
        last["label"][-5:] = [0.0, np.nan, 0.0, 0.0, 0.0]
        last["prediction"][-5:] = 0.0
    return sides


def nannyml_chunks(n: int, chunks: int) -> list[tuple[int, int]]:
    """[start, end) row ranges of NannyML's ``CountBasedChunker(chunk_number=chunks)``:
    floor(n / chunks) rows each, the remainder a last, shorter chunk."""
    size = n // chunks
    bounds = [(i * size, (i + 1) * size) for i in range(chunks)]
    if size * chunks < n:
        bounds.append((size * chunks, n))
    return bounds


def digest(model: str) -> str:
    """sha256 of ``model``'s generated data (every column of both sides, in order)."""
    h = hashlib.sha256()
    for side, columns in generate(model).items():
        for name, values in columns.items():
            h.update(f"{side}.{name}".encode())
            h.update(repr(values.tolist()).encode())
    return h.hexdigest()
