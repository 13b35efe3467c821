"""Limits on time: which times a store accepts, and how many windows one call builds.

**Accepted times.** DuckDB holds timestamps from 290309 BC to 294247 AD, far beyond
any event a model can have seen; a mistyped year (``20266-01-01``) or a BC date is
data corruption, and one such row once made every windowed family build millions of
empty windows. Ingest therefore refuses, before anything of the batch is committed,
every time outside the store's *time range*: by default
:data:`DEFAULT_TIME_RANGE`, ``[1900-01-01, 2200-01-01)`` UTC, the same for feature,
prediction and label ``ts`` columns and for the registry's ``trained_at`` /
``deployed_at`` / ``retired_at``. A store that really needs other times (historical
data before 1900, say) is opened with ``evalstore.open(path, time_range=(lo, hi))``;
the range belongs to the process that writes and is not stored in the file.

**Windows per call.** Every family that cuts time windows (or row chunks) bounds
their number before any work: :func:`check_window_count` estimates it from the
``min``/``max`` of the analysed times (one cheap aggregate, so rows already in a store
from before the time range was enforced are covered too) and refuses more than the
store's ``max_windows`` (:data:`DEFAULT_MAX_WINDOWS`; ``evalstore.open(path,
max_windows=n)``) with an error naming ``window`` and the count.

>>> limits = TimeLimits.of(("2000-01-01", "2100-01-01"), 500)
>>> limits.time_range[0].isoformat(), limits.max_windows
('2000-01-01T00:00:00+00:00', 500)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import duckdb

from evalstore.core.identifiers import check_model_name
from evalstore.core.layout import model_relation
from evalstore.core.registry import to_timestamp
from evalstore.core.windows import Selection, Window, checked_window_args
from evalstore.errors import InvalidParameterError

#: Times a store accepts by default: ``[lo, hi)`` in UTC.
DEFAULT_TIME_RANGE = (datetime(1900, 1, 1, tzinfo=UTC), datetime(2200, 1, 1, tzinfo=UTC))
#: Windows (time buckets or row chunks) one call may build by default.
DEFAULT_MAX_WINDOWS = 10_000
#: The tables whose ``ts`` the drift-like families (drift, quality, multivariate drift)
#: window: serving features, and predictions for the score and prediction (a label
#: takes its example's feature time).
VALUE_TABLES = ("features", "predictions")
#: The table whose ``ts`` performance, compare and health window.
PREDICTION_TABLES = ("predictions",)


@dataclass(frozen=True)
class TimeLimits:
    """A store's accepted ``time_range`` (``[lo, hi)``, aware UTC) and ``max_windows``."""

    time_range: tuple[datetime, datetime] = DEFAULT_TIME_RANGE
    max_windows: int = DEFAULT_MAX_WINDOWS

    @classmethod
    def of(cls, time_range: Sequence[Any] | None = None, max_windows: Any = None) -> TimeLimits:
        """Checked limits from ``evalstore.open``'s arguments (None: the default)."""
        bounds = DEFAULT_TIME_RANGE
        if time_range is not None:
            if isinstance(time_range, str | bytes) or len(time_range) != 2:
                raise InvalidParameterError(
                    f"time_range={time_range!r} must be a (lo, hi) pair of datetimes or "
                    "ISO-8601 texts, e.g. ('1900-01-01', '2200-01-01')"
                )
            lo = to_timestamp(time_range[0], "time_range lo")
            hi = to_timestamp(time_range[1], "time_range hi")
            if lo is None or hi is None or lo >= hi:
                raise InvalidParameterError(
                    f"time_range={time_range!r} must have lo < hi (times from lo up to hi "
                    "are accepted)"
                )
            bounds = (lo.astimezone(UTC), hi.astimezone(UTC))
        windows = DEFAULT_MAX_WINDOWS
        if max_windows is not None:
            if isinstance(max_windows, bool) or not isinstance(max_windows, int):
                raise InvalidParameterError(f"max_windows={max_windows!r} must be a positive int")
            if max_windows < 1:
                raise InvalidParameterError(f"max_windows={max_windows!r} must be at least 1")
            windows = max_windows
        return cls(bounds, windows)

    def describe(self) -> str:
        """``[lo, hi) UTC`` as text, for messages."""
        lo, hi = self.time_range
        return f"[{lo.isoformat()}, {hi.isoformat()}) UTC"

    def check_time(self, value: datetime | None, parameter: str) -> None:
        """Refuse a time (e.g. a registry time) outside the accepted range."""
        if value is None:
            return
        lo, hi = self.time_range
        if not lo <= value < hi:
            raise InvalidParameterError(
                f"{parameter}={value.isoformat()} is outside the store's time range "
                f"{self.describe()}; fix the time (a mistyped year?), or open the store "
                "with evalstore.open(path, time_range=(lo, hi)) to accept it"
            )


def check_window_count(
    con: duckdb.DuckDBPyConnection,
    model: str,
    tables: Sequence[str],
    windows: Mapping[str, Any] | Selection,
    since: datetime | None = None,
    until: datetime | None = None,
    *,
    max_windows: int = DEFAULT_MAX_WINDOWS,
    filled: bool = False,
) -> int:
    """Refuse a call that would build more than ``max_windows`` windows; return the estimate.

    ``tables`` are the model's tables whose ``ts`` the call windows (``features`` counts
    its serving rows); ``windows`` is :func:`evalstore.core.windows.window_args`'s result
    (``width``, ``chunk_rows`` or ``chunks``) and ``since``/``until`` the analysed time
    range, or ``windows`` is a resolved :class:`~evalstore.core.windows.Selection` (which
    holds both). For a ``width`` the estimate is the span of the analysed times divided by the
    width, plus one, and at most the number of rows (a window holds at least one row);
    ``filled=True`` is for families that also list the empty windows between ``since``
    and ``until``, where the span runs from ``since`` (or the first time) to ``until``
    (or the last) and the rows do not cap it. For ``chunk_rows`` it is the rows divided
    by the chunk size, for ``chunks`` the number asked for. The times are read in SQL
    (``epoch``), so rows with times beyond Python's ``datetime`` are measured too.
    """
    if isinstance(windows, Selection):
        since, until = windows.ana_start, windows.ana_end
        windows = {
            "width": windows.width,
            "chunk_rows": windows.chunk_rows,
            "chunks": windows.chunks,
        }
    if windows.get("chunks") is not None:
        count = int(windows["chunks"])
        what = f"window={{'chunks': {count}}}"
    else:
        check_model_name(model)
        parts = []
        for table in tables:
            serving = " AND env = 'serving'" if table == "features" else ""
            parts.append(
                f"SELECT ts FROM {model_relation(con, model, table)} WHERE ($since IS NULL OR "
                f"ts >= $since) AND ($until IS NULL OR ts < $until){serving}"
            )
        width = windows.get("width")
        seconds, rows = con.execute(
            "SELECT epoch(coalesce(CASE WHEN $filled THEN $until END, max(ts))) "
            "- epoch(coalesce(CASE WHEN $filled THEN $since END, min(ts))), count(*) "
            f"FROM ({' UNION ALL '.join(parts)})",
            {
                "since": since,
                "until": until,
                "filled": filled,
            },
        ).fetchall()[0]
        if width is not None:
            step = con.execute("SELECT epoch(CAST(? AS INTERVAL))", [width]).fetchall()[0][0]
            count = 0 if seconds is None else math.floor(max(seconds, 0) / step) + 1
            if not filled:
                count = min(count, rows)
            what = f"window={width!r}"
        else:
            count = math.ceil(rows / int(windows["chunk_rows"]))
            what = f"window={windows['chunk_rows']} (rows per chunk)"
    if count > max_windows:
        raise InvalidParameterError(
            f"{what} would build about {count:,} windows, more than the limit of "
            f"{max_windows:,}; pass a wider window, or since=/until= around the times you "
            "want to see (a time far from the others, such as a mistyped year, also "
            "stretches the span: find it with SELECT min(ts), max(ts))"
        )
    return count


def prediction_windows(
    con: duckdb.DuckDBPyConnection,
    model: str,
    window: Window,
    since: datetime | None,
    until: datetime | None,
    *,
    max_windows: int = DEFAULT_MAX_WINDOWS,
) -> dict[str, Any]:
    """The window arguments of a call that windows ``model``'s prediction time over
    ``[since, until)`` (performance, compare, estimate_performance): ``window`` checked by
    :func:`~evalstore.core.windows.checked_window_args`, the call refused by
    :func:`check_window_count` when it would build more than ``max_windows`` windows."""
    windows = checked_window_args(con, window)
    check_window_count(
        con, model, PREDICTION_TABLES, windows, since, until, max_windows=max_windows
    )
    return windows
