"""Cutting a family's long result table into one :class:`~evalstore.monitors.verdicts.Series`
per subject: what the families computed fresh on every run (skew, summary statistics)
hand to the rules.

A row belongs to the subject given for it (a feature, ``feature@version``, ...); subjects
come out in first-seen order, each with its rows in table order (the families' tables are
sorted by window). Window bounds become naive UTC ``datetime64[us]``, a NULL value NaN and
a NULL row count 0.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from evalstore.monitors.verdicts import Series


def by_subject(
    table: pa.Table, subjects: Sequence[str], value: str = "value", n: str = "n"
) -> list[tuple[str, Series]]:
    """One ``(subject, Series)`` per distinct entry of ``subjects`` (the subject of each row
    of ``table``, in first-seen order): windows ``window_start``/``window_end``, values
    from column ``value`` and row counts from column ``n``."""
    column = pa.array(list(subjects), pa.string())
    out = []
    for name in dict.fromkeys(subjects):
        rows = table.filter(pc.equal(column, name))
        starts = pc.cast(rows.column("window_start"), pa.timestamp("us"))
        ends = pc.cast(rows.column("window_end"), pa.timestamp("us"))
        values = [math.nan if v is None else float(v) for v in rows.column(value).to_pylist()]
        counts = [0 if v is None else int(v) for v in rows.column(n).to_pylist()]
        series = Series(
            window_start=starts.to_numpy().astype("datetime64[us]"),
            value=np.array(values, dtype=float),
            n=np.array(counts, dtype=np.int64),
            window_end=ends.to_numpy().astype("datetime64[us]"),
        )
        out.append((name, series))
    return out
