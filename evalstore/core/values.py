"""Long-format views of a model's values, the input of the drift and quality macros.

SQL macros cannot select a variable set of columns, so each model gets two views,
regenerated (in the ingest transaction) whenever a batch adds feature columns:

``<model>.numeric_values``
    ``example_id, env, dataset, ts, version, feature, value DOUBLE``: one row per
    example and numeric feature (integers, floats and decimals, cast to ``DOUBLE``;
    NULLs included), plus the model's outputs: ``score`` for binary models (the
    only task that defines it), ``prediction`` and ``label`` for regression.
``<model>.category_values``
    the same with ``value VARCHAR``: text and boolean features, plus ``prediction``
    and ``label`` for classification.

Features have ``version`` NULL; ``score`` and ``prediction`` rows carry the version
that predicted them, so prediction drift is measured per version. Predictions are
serving rows at their own ``ts``; a label takes the env, dataset and ``ts`` of every
feature row of its example (labels of examples without feature rows are left out).
Columns of other types (timestamps, lists, structs) are not analysed.
"""

from __future__ import annotations

from collections.abc import Sequence

import duckdb

from evalstore.core.db import one
from evalstore.core.identifiers import quote
from evalstore.core.layout import CATEGORICAL_TYPES, NUMERIC_TYPES, feature_columns, schema_prefix

KEYS = "example_id, env, dataset, ts"


def feature_kinds(con: duckdb.DuckDBPyConnection, model: str) -> dict[str, str]:
    """``{feature: 'numeric' | 'categorical'}`` for the analysable feature columns."""
    kinds = {}
    for name, kind in feature_columns(con, model).items():
        if kind in NUMERIC_TYPES or kind.startswith("DECIMAL"):
            kinds[name] = "numeric"
        elif kind in CATEGORICAL_TYPES:
            kinds[name] = "categorical"
    return kinds


def _unpivot(s: str, features: list[str], value_type: str) -> str:
    if not features:
        return (
            f"SELECT {KEYS}, CAST(NULL AS VARCHAR) AS version, CAST(NULL AS VARCHAR) AS feature, "
            f"CAST(NULL AS {value_type}) AS value FROM {s}features WHERE false"
        )
    casts = ", ".join(f"CAST({quote(f)} AS {value_type}) AS {quote(f)}" for f in features)
    return (
        f"SELECT {KEYS}, CAST(NULL AS VARCHAR) AS version, feature, value "
        f"FROM (SELECT {KEYS}, {casts} FROM {s}features) "
        f"UNPIVOT INCLUDE NULLS (value FOR feature IN ({', '.join(map(quote, features))}))"
    )


def output_rows(s: str, names: list[str], value_type: str) -> list[str]:
    """SELECTs of the long-format rows of the outputs ``names`` of the model whose tables
    have the prefix ``s`` (:func:`evalstore.core.layout.schema_prefix`; empty in its views)."""
    parts = []
    for name in names:
        if name == "label":
            parts.append(
                f"SELECT f.example_id, f.env, f.dataset, f.ts, CAST(NULL AS VARCHAR) AS version, "
                f"'label' AS feature, CAST(l.label AS {value_type}) AS value "
                f"FROM {s}labels_latest AS l "
                f"JOIN {s}features AS f ON f.example_key = l.example_key"
            )
        else:
            parts.append(
                f"SELECT example_id, 'serving' AS env, CAST(NULL AS VARCHAR) AS dataset, ts, "
                f"version, '{name}' AS feature, CAST({name} AS {value_type}) AS value "
                f"FROM {s}predictions"
            )
    return parts


def output_names(con: duckdb.DuckDBPyConnection, model: str, kind: str) -> list[str]:
    """The outputs analysed like ``kind`` ('numeric' | 'categorical') features: ``score``
    is numeric (binary models only: it is the positive-class probability, NULL by design
    for multiclass and regression); ``prediction`` and ``label`` are numeric for
    regression, else categorical."""
    task = one(con, "SELECT any_value(task) FROM evalstore.models WHERE model = ?", [model])[0]
    outputs = ["score"] if kind == "numeric" and task == "binary" else []
    if (task == "regression") == (kind == "numeric"):
        outputs += ["prediction", "label"]
    return outputs


def value_rows(
    con: duckdb.DuckDBPyConnection,
    model: str,
    value_type: str,
    features: Sequence[str] | None = None,
    prefix: str | None = None,
) -> str:
    """The SELECT of ``<model>.numeric_values`` (``value_type`` ``DOUBLE``) or
    ``<model>.category_values`` (``VARCHAR``): every row of it, or only those of
    ``features`` (feature and output names; names of the other kind are ignored).
    ``prefix`` of the model's tables: :func:`evalstore.core.layout.schema_prefix` by default,
    ``""`` in the model's own views."""
    s = schema_prefix(con, model) if prefix is None else prefix
    kind = "numeric" if value_type == "DOUBLE" else "categorical"
    outputs = output_names(con, model, kind)
    names = [f for f, k in feature_kinds(con, model).items() if k == kind]
    if features is not None:
        names = [f for f in names if f in features]
        outputs = [o for o in outputs if o in features]
    return " UNION ALL ".join(
        [_unpivot(s, names, value_type), *output_rows(s, outputs, value_type)]
    )


def covering_rows(
    con: duckdb.DuckDBPyConnection, model: str, value_type: str, features: Sequence[str]
) -> str:
    """The SELECT of :func:`value_rows` for ``features`` plus the rows that keep every
    time window of the full view non-empty: what a per-window analysis of some features
    reads when its window list must be that of the whole view (quality lists the empty
    windows between the first and last non-empty one).

    A feature row gives one long row per feature column, NULLs included, so any one
    feature column of the kind covers the windows of every other (the first is added
    when none of ``features`` is of the kind); labels take the ``ts`` of their
    example's feature rows, so ``label`` adds a window only when the kind has no
    feature column; ``score`` and ``prediction`` are at their prediction's own ``ts``
    and always kept. The extra rows are for the window list alone: the caller drops
    their results."""
    kind = "numeric" if value_type == "DOUBLE" else "categorical"
    names = [f for f, k in feature_kinds(con, model).items() if k == kind]
    chosen = [f for f in names if f in features] or names[:1]
    outputs = [
        o for o in output_names(con, model, kind) if o in features or o != "label" or not names
    ]
    return value_rows(con, model, value_type, [*chosen, *outputs])


def refresh_value_views(con: duckdb.DuckDBPyConnection, model: str) -> None:
    """(Re)create ``<model>.numeric_values`` and ``<model>.category_values``."""
    s = schema_prefix(con, model).removesuffix(".")
    numeric, category = (value_rows(con, model, kind, prefix="") for kind in ("DOUBLE", "VARCHAR"))
    con.execute(
        f"CREATE OR REPLACE VIEW {s}.numeric_values AS {numeric}; "
        f"CREATE OR REPLACE VIEW {s}.category_values AS {category}; "
        f"COMMENT ON VIEW {s}.numeric_values IS "
        "'Long format: one row per example and numeric feature (and score; regression "
        "prediction and label).'; "
        f"COMMENT ON VIEW {s}.category_values IS "
        "'Long format: one row per example and categorical feature (and classification "
        "prediction and label).';"
    )
