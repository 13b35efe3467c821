"""The latest value of each monitor: ``evalstore.monitor_values``.

Every monitor run records, per subject, the latest window of the series it judged that
has a finite value: the window's bounds, the value, the rule's bounds and verdict for it,
and the run's time. It is written in the run's own transaction
(:func:`evalstore.monitors.run.run_monitor`): the rows of the monitor's previous run are
replaced, so the table holds the subjects of the latest successful run (a run that fails
is rolled back and leaves the previous values). A subject whose series has no finite value
in the run has no row.

It is what ``GET /metrics`` exports as ``evalstore_monitor_value{model,monitor,subject}``
for every monitor, whatever its family: the ``health`` monitors' series are computed at
each run and stored nowhere else, and a scrape must read stored values only. Deleting a
monitor deletes its values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime

import duckdb

from evalstore.monitors.alerts import utc
from evalstore.monitors.verdicts import Verdict

#: Columns of ``evalstore.monitor_values``, in order.
COLUMNS = (
    "monitor", "subject", "model", "window_start", "window_end", "value", "lower", "upper",
    "verdict", "computed_at",
)  # fmt: skip


def latest_finite(verdicts: Sequence[Verdict]) -> Verdict | None:
    """The last verdict (series order: the newest window) whose value is finite, or None."""
    for verdict in reversed(verdicts):
        if math.isfinite(verdict.value):
            return verdict
    return None


def replace(
    con: duckdb.DuckDBPyConnection,
    monitor: str,
    model: str,
    values: Sequence[tuple[str, Verdict]],
    at: datetime,
) -> None:
    """Replace the stored values of ``monitor`` by ``values`` (``(subject, verdict)``
    pairs, verdicts of finite values), computed at ``at``. The caller holds the
    transaction."""
    con.execute("DELETE FROM evalstore.monitor_values WHERE monitor = ?", [monitor])
    if not values:
        return
    con.executemany(
        f"INSERT INTO evalstore.monitor_values ({', '.join(COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(COLUMNS))})",
        [
            [monitor, subject, model, utc(v.window_start), utc(v.window_end), v.value,
             _number(v.lower), _number(v.upper), v.status, at]
            for subject, v in values
        ],
    )  # fmt: skip


def _number(value: float) -> float | None:
    """A bound as stored: NULL for a side the rule does not check (NaN)."""
    return None if math.isnan(value) else value
