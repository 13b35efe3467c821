"""The labeled reference CBPE and DLE learn from, and its rows as numpy arrays.

A reference is a set of predictions whose labels are known and during which the model's
score-label relationship is taken as the one production will keep:

* ``"training"`` / ``"validation"`` / ``{"dataset": tag}``: predictions logged for the
  examples whose features carry that ``env`` (and the registered dataset tag when a
  ``version`` is given) or dataset tag, joined with their latest labels;
* ``(start, end)``: the serving predictions in that prediction-time range that are
  labeled (NannyML's reference period: an early, labeled stretch of production).

The relation has the columns of ``<model>.evaluations`` (example_id, version, ts,
prediction, score, probabilities, label and the features of the matching ``env``), so
the estimation macros (for the reference chunks that learn alert thresholds) read it as
they read the analysis rows.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from evalstore.core.db import Cleanup
from evalstore.core.identifiers import quote
from evalstore.core.layout import schema_prefix
from evalstore.core.windows import drop_temp_view, temp_view

_counter = itertools.count()


def reference_view(
    con: duckdb.DuckDBPyConnection, model: str, ref: Mapping[str, Any], later: Cleanup
) -> str:
    """A temp view of the labeled reference predictions described by ``ref``
    (:func:`evalstore.core.windows.reference_args`); returns its name. ``later`` drops the
    view and its arguments' table when the caller's block ends.

    The user's values (the range's ends, the ``env`` or dataset tag) are never pasted
    into SQL: they are bound parameters of a one-row temp table the view reads."""
    s = schema_prefix(con, model)
    n = next(_counter)
    args = quote(f"evalstore_estimation_reference_args_{n}")
    values = [ref.get(key) for key in ("ref_start", "ref_end", "ref_env", "ref_dataset")]
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {args} AS SELECT CAST(? AS TIMESTAMPTZ) AS ref_start, "
        "CAST(? AS TIMESTAMPTZ) AS ref_end, CAST(? AS VARCHAR) AS ref_env, "
        "CAST(? AS VARCHAR) AS ref_dataset",
        [None if v is None else str(v) for v in values],
    )
    later.add(con.execute, f"DROP TABLE IF EXISTS temp.main.{args}")
    arg = f"(SELECT a.{{}} FROM temp.main.{args} AS a)"
    if ref.get("ref_env") == "serving":
        conditions = ["e.label IS NOT NULL"]
        for key, op in (("ref_start", ">="), ("ref_end", "<")):
            if ref.get(key) is not None:
                conditions.append(f"e.ts {op} {arg.format(key)}")
        body = f"SELECT e.* FROM {s}evaluations AS e WHERE {' AND '.join(conditions)}"
    else:
        feature_filter = []
        for key, column in (("ref_env", "env"), ("ref_dataset", "dataset")):
            if ref.get(key) is not None:
                feature_filter.append(f"f.{column} = {arg.format(key)}")
        body = f"""
            SELECT p.example_id, p.version, p.ts, p.prediction, p.score, p.probabilities,
                   l.label, f.* EXCLUDE (example_id, env, dataset, ts, batch_id, example_key)
            FROM {s}predictions AS p
            JOIN {s}labels_latest AS l ON l.example_key = p.example_key
            JOIN {s}features AS f ON f.example_key = p.example_key
             AND {" AND ".join(feature_filter)}
        """
    view = temp_view(con, f"evalstore_estimation_reference_{n}", body)
    later.add(drop_temp_view, con, view)
    return view


def describe(reference: Any) -> str:
    """How messages name a reference."""
    if isinstance(reference, Sequence) and not isinstance(reference, str):
        return f"{tuple(str(r) for r in reference)!r} (a range of serving predictions)"
    return repr(reference)
