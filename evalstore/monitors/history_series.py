"""The stored metric series: :func:`history` reads the metric history of a model.

It computes nothing: rows are those :func:`evalstore.monitors.history.persisted` stored,
filtered by family, metric, subject, version and window start; performance rows get
``labels_due``/``labels_complete`` as of now (they move with every label).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa

from evalstore.core.bounds import bounded_int
from evalstore.core.db import transaction
from evalstore.core.identifiers import check_model_name, quote
from evalstore.core.registry import to_timestamp
from evalstore.errors import InvalidParameterError
from evalstore.monitors.history_params import family_function

if TYPE_CHECKING:
    from evalstore.core.context import Context

#: Most rows :func:`history` returns by default, and at most.
DEFAULT_HISTORY_ROWS = 100_000
MAX_HISTORY_ROWS = 1_000_000
#: Columns of :func:`history`, in order.
HISTORY_COLUMNS = (
    "model", "family", "params_hash", "params", "window_start", "window_end", "version",
    "subject", "kind", "metric", "class", "variant", "value", "p_value", "threshold",
    "threshold_low", "threshold_source", "flagged", "ci_low", "ci_high", "n_reference",
    "n_analysis", "count", "n", "n_excluded", "predictions", "labeled", "label_coverage",
    "labels_complete", "labels_due", "reason", "slices", "features_batch",
    "predictions_batch", "labels_batch", "computed_at",
)  # fmt: skip


def history(
    ctx: Context,
    model: str,
    family: str | None = None,
    metric: str | Sequence[str] | None = None,
    feature: str | Sequence[str] | None = None,
    since: Any = None,
    until: Any = None,
    *,
    version: str | None = None,
    limit: int = DEFAULT_HISTORY_ROWS,
) -> pa.Table:
    """The stored metric series of ``model``: one row per persisted result row.

    Filters: ``family`` (drift, quality, performance), ``metric`` (a drift method,
    quality check or performance metric, or a list), ``feature`` (the subject: a
    feature, an output, or a performance slice's text, or a list), ``version``, and
    ``since <= window_start < until``. Columns (:data:`HISTORY_COLUMNS`): the call
    (``family``, ``params_hash`` and its ``params`` as JSON text), the window, the
    subject and metric, every numeric result column of the families (NULL where a family
    has none), ``flagged`` (drift's and quality's ``drifted``), ``slices`` (performance
    ``by`` keys as a map), the input watermark the row saw (``features_batch``,
    ``predictions_batch``, ``labels_batch``) and ``computed_at``. Performance rows get
    ``labels_due``/``labels_complete`` as of now. Rows are in family, call, window
    order. More than ``limit`` rows (default 100,000, at most 1,000,000) raise
    :class:`InvalidParameterError`: narrow the filters. An unregistered model or
    ``version`` raises :class:`~evalstore.errors.UnknownModelError`; a model without
    persisted calls has an empty history.
    """
    check_model_name(model)
    ctx.registration(model, version)
    if family is not None:
        family_function(family)
    limit = bounded_int(limit, "limit", most=MAX_HISTORY_ROWS)
    start, end = to_timestamp(since, "since"), to_timestamp(until, "until")
    metrics = _names(metric, "metric")
    subjects = _names(feature, "feature")
    columns = ", ".join(
        "c.params::VARCHAR AS params" if c == "params" else f"h.{quote(c)}" for c in HISTORY_COLUMNS
    )
    sql = f"""
        SELECT {columns} FROM evalstore.metric_history AS h
        JOIN evalstore.metric_history_calls AS c USING (model, family, params_hash)
        WHERE h.model = $model AND ($family IS NULL OR h.family = $family)
          AND ($metrics IS NULL OR list_contains($metrics, h.metric))
          AND ($subjects IS NULL OR list_contains($subjects, h.subject))
          AND ($version IS NULL OR h.version = $version)
          AND ($since IS NULL OR h.window_start >= $since)
          AND ($until IS NULL OR h.window_start < $until)
        ORDER BY h.family, h.params_hash, h.window_start, h.row_index
        LIMIT $limit
    """
    params = {
        "model": model, "family": family, "metrics": metrics, "subjects": subjects,
        "version": version, "since": start, "until": end, "limit": limit + 1,
    }  # fmt: skip
    con = ctx.connection
    with ctx.lock, transaction(con):
        table = con.sql(sql, params=params).to_arrow_table()
        if table.num_rows > limit:
            raise InvalidParameterError(
                f"history of {model!r} has more than limit={limit} rows for these filters; "
                "narrow them (family, metric, feature, version, since/until) or raise limit "
                "(--max-rows on the command line)"
            )
        return _history_horizon(con, table, model)


def _names(value: str | Sequence[str] | None, name: str) -> list[str] | None:
    if value is None:
        return None
    items = [value] if isinstance(value, str) else list(value)
    if not items or not all(isinstance(v, str) and v for v in items):
        raise InvalidParameterError(f"{name} must be a non-empty string or list of strings")
    return items


def _history_horizon(con: duckdb.DuckDBPyConnection, table: pa.Table, model: str) -> pa.Table:
    """Performance rows' ``labels_due``/``labels_complete`` recomputed as of now."""
    calls = sorted(
        {
            (h, p)
            for f, h, p in zip(
                table.column("family").to_pylist(),
                table.column("params_hash").to_pylist(),
                table.column("params").to_pylist(),
                strict=True,
            )
            if f == "performance"
        }
    )
    if not calls:
        return table
    horizons = []
    for call_hash, text in calls:
        params = json.loads(text)
        row = con.execute(
            "SELECT delay_hours, as_of FROM evalstore.label_horizon(?, ?, ?)",
            [model, params["delay_quantile"], params["as_of"]],
        ).fetchall()[0]
        horizons.append({"params_hash": call_hash, "delay_hours": row[0], "as_of": row[1]})
    name, ordinal = "evalstore_history_series", "evalstore_history_ordinal"
    con.register(name, table.append_column(ordinal, pa.array(range(table.num_rows))))
    con.register("evalstore_history_horizons", pa.Table.from_pylist(horizons))
    try:
        due = "evalstore.add_hours(t.window_end, h.delay_hours)"
        return con.sql(
            f"""
            SELECT t.* EXCLUDE ({ordinal}) REPLACE (
                CASE WHEN t.family = 'performance' THEN {due} ELSE t.labels_due END
                    AS labels_due,
                CASE WHEN t.family = 'performance' THEN coalesce({due} <= h.as_of, false)
                     ELSE t.labels_complete END AS labels_complete)
            FROM {name} AS t LEFT JOIN evalstore_history_horizons AS h USING (params_hash)
            ORDER BY t.{ordinal}
            """
        ).to_arrow_table()
    finally:
        con.unregister(name)
        con.unregister("evalstore_history_horizons")
