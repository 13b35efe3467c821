"""Production health: the Python front-end of ``sql/health.sql``.

The ML Test Score's monitors of the system around a model (staleness, computational
regressions, dependency changes) and the golden signals (latency, traffic, errors), in one
long table computed by the macro ``evalstore.health`` (the comments in ``sql/health.sql``
define every figure). Sections and metrics:

============= ==================================================== =================
section       metric (per)                                         unit
============= ==================================================== =================
staleness     version_age, model_age, training_data_age            days
              (deployed version, at ``as_of``)
serving       predictions, throughput, errors, error_rate,         count,
              latency_p50, latency_p95, latency_p99                predictions/s,
              (version x window of prediction time)                share, ms
ingest        freshness (stream), ingest_batches, ingest_rows      hours, count, rows
              (stream x window of commit time)
dependencies  dependency_added, dependency_removed,                (text in detail)
              dependency_changed (version x package)
============= ==================================================== =================

Decisions:

* **Errors** are predictions logged with a NULL prediction (a failed or timed-out call
  logged as such); ``error_rate = errors / predictions``.
* **Latency quantiles** are ``quantile_cont``: linear interpolation between order
  statistics, ``numpy.quantile``'s default ``method='linear'``, over the window's non-NULL
  ``latency_ms``.
* **Throughput** is predictions / window length in seconds (event time), so the first
  and last windows, which the data may cover only partly, read lower.
* **Windows without traffic** appear with ``predictions = 0`` (from a version's first
  window to the model's last one): a silent version is a health finding, not a gap.
* **Two clocks.** Staleness is measured at ``as_of`` (event time; default the model's
  latest prediction ts, reproducible for back-filled data; pass a time or ``"now"``).
  Ingest freshness is measured at ``now`` (wall clock; default the current time), since
  ``evalstore.batches`` stamps batches with the time they were committed.
* **Consecutive versions** for dependency diffs are in registration order
  (``created_at``, then version); a package's version is compared as text.
* **Deployed** versions (staleness) are those with ``deployed_at <= as_of`` and no
  ``retired_at`` before it.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.core.db import transaction
from evalstore.core.identifiers import check_model_name
from evalstore.core.macros import call
from evalstore.core.registry import to_timestamp
from evalstore.core.time_limits import PREDICTION_TABLES, check_window_count
from evalstore.core.windows import check_width
from evalstore.errors import InvalidParameterError

if TYPE_CHECKING:
    from evalstore.core.context import Context

SECTIONS = ("staleness", "serving", "ingest", "dependencies")
#: Every metric, in result order within a section.
METRICS = (
    "version_age", "model_age", "training_data_age", "predictions", "throughput", "errors",
    "error_rate", "latency_p50", "latency_p95", "latency_p99", "freshness", "ingest_batches",
    "ingest_rows", "dependency_added", "dependency_removed", "dependency_changed",
)  # fmt: skip
RESULT_COLUMNS = (
    "section", "window_start", "window_end", "version", "subject", "metric", "value",
    "unit", "detail",
)  # fmt: skip


def health(
    ctx: Context,
    model: str,
    window: str = "1 day",
    version: str | None = None,
    sections: Sequence[str] | str | None = None,
    *,
    as_of: Any = None,
    now: Any = None,
) -> pa.Table:
    """Health figures of ``model``: staleness, golden signals, ingest, dependency changes.

    ``window`` is an interval (``"1 hour"``, ``"1 day"``) cutting prediction time (serving
    figures) and commit time (ingest volume); row-count windows do not apply here, since
    throughput needs a duration. ``version`` keeps one version's rows (ingest rows of
    other streams, which have no version, are dropped too); ``sections`` picks some of
    ``staleness``, ``serving``, ``ingest``, ``dependencies``. ``as_of`` and ``now`` set
    the two clocks (see the module docstring).

    Returns a long Arrow table: ``section, window_start, window_end, version, subject,
    metric, value, unit, detail`` (columns :data:`RESULT_COLUMNS`), in section order,
    then by window and version. A model without predictions has no serving rows.

    >>> import evalstore, pyarrow as pa
    >>> store = evalstore.open()
    >>> _ = store.register_model("m", "v1", "regression")
    >>> _ = store.log_predictions("m", pa.table({
    ...     "example_id": ["a", "b", "c"], "prediction": [1.0, None, 3.0],
    ...     "latency_ms": [10.0, 20.0, 40.0],
    ...     "ts": pa.array([0, 1, 2], pa.timestamp("s", tz="UTC"))}),
    ...     version="v1", latency_column="latency_ms")
    >>> table = store.health("m", window="1 day", sections="serving")
    >>> for row in table.select(["metric", "value", "unit"]).to_pylist()[2:5]:
    ...     print(row)
    {'metric': 'errors', 'value': 1.0, 'unit': 'count'}
    {'metric': 'error_rate', 'value': 0.3333333333333333, 'unit': 'share'}
    {'metric': 'latency_p50', 'value': 20.0, 'unit': 'ms'}
    >>> store.close()
    """
    check_model_name(model)
    ctx.registration(model)
    if version is not None:
        ctx.registration(model, version)
    if not isinstance(window, str) or window.strip().isdigit():
        # a bare number: every other family reads it as rows per window, DuckDB as seconds
        raise InvalidParameterError(
            f"window={window!r}: health needs an interval such as '1 hour' or '1 day' "
            "(throughput is per second of a window, so row-count windows do not apply; "
            "a bare number is rows per window in the other families: write the unit, "
            "e.g. '5000 seconds')"
        )
    chosen = _sections(sections)
    clock = _clock(as_of, "as_of")
    wall = _clock(now, "now")
    con = ctx.connection
    with ctx.lock, transaction(con):  # one snapshot for every statement
        check_width(con, window)
        # every version gets each window from its first prediction to the last one
        check_window_count(
            con, model, PREDICTION_TABLES, {"width": window}, filled=True,
            max_windows=ctx.limits.max_windows,
        )  # fmt: skip
        return call(
            con,
            "SELECT * FROM evalstore.health(?, ?, ?, ?) "
            "WHERE list_contains(?, section) AND (? IS NULL OR version = ?) "
            "ORDER BY list_position(?, section), window_start NULLS FIRST, "
            "version NULLS FIRST, subject NULLS FIRST, list_position(?, metric)",
            [model, window, clock, wall, chosen, version, version, SECTIONS, METRICS],
        )


def _sections(sections: Sequence[str] | str | None) -> list[str]:
    if sections is None:
        return list(SECTIONS)
    chosen = [sections] if isinstance(sections, str) else list(sections)
    unknown = [s for s in chosen if s not in SECTIONS]
    if unknown or not chosen:
        raise InvalidParameterError(
            f"sections={sections!r}: {unknown or 'none given'}; choose from {', '.join(SECTIONS)}"
        )
    return chosen


def _clock(value: Any, name: str) -> datetime | None:
    if isinstance(value, str) and value.strip().lower() == "now":
        return datetime.now(UTC)
    return to_timestamp(value, name)


def wide(table: pa.Table) -> dict[str, pa.Table]:
    """A :func:`health` result as one readable wide table per section (for the CLI/demo).

    ``staleness``: version, stage and one column per age; ``serving``: window_start,
    version and one column per signal; ``ingest``: subject, version, freshness_hours and
    total batches/rows; ``dependencies``: version, package, change, detail. Sections
    without rows are left out.
    """
    rows = table.to_pylist()
    out: dict[str, pa.Table] = {}
    keys = {
        "staleness": ("version", "detail"),
        "serving": ("window_start", "version"),
        "ingest": ("subject", "version"),
    }
    for section, key in keys.items():
        cells: dict[tuple, dict[str, Any]] = {}
        for row in (r for r in rows if r["section"] == section):
            cell = cells.setdefault(
                tuple(row[k] for k in key), dict(zip(key, [row[k] for k in key], strict=True))
            )
            name = row["metric"]
            if section == "ingest":
                if name == "freshness":
                    cell["freshness_hours"] = row["value"]
                    continue
                name = name.removeprefix("ingest_")
                cell[name] = (cell.get(name) or 0) + (row["value"] or 0)
            else:
                cell[name] = row["value"]
        if cells:
            records = list(cells.values())
            if section == "staleness":
                for record in records:
                    record["stage"] = record.pop("detail")
            names = list(dict.fromkeys(k for record in records for k in record))
            out[section] = pa.Table.from_pylist([{n: r.get(n) for n in names} for r in records])
    changes = [r for r in rows if r["section"] == "dependencies"]
    if changes:
        out["dependencies"] = pa.Table.from_pylist(
            [
                {
                    "version": r["version"],
                    "package": r["subject"],
                    "change": r["metric"].removeprefix("dependency_"),
                    "detail": r["detail"],
                }
                for r in changes
            ]
        )
    return out
