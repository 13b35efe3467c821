"""Reading the numeric values of a drift call into samples, under a memory budget.

``store.drift``'s numeric fast path (:mod:`evalstore.metrics.drift.numeric`) sorts every
cell's values in numpy, so the values of the call's reference and windows are held in
memory while a feature is computed. Held for all features at once, that is rows x
features x 8 bytes (19 GB for 25 features at 1M rows/day x 60 days), outside DuckDB's
``memory_limit``. This module bounds it before any value is read:

1. :func:`plan` counts the rows of every group (reference or window, feature rows or
   one output's rows, version) in one cheap query without values;
2. :func:`parts` splits the features (each numeric feature and each output is a unit of
   ``8 x its rows`` bytes) into consecutive parts whose values fit in
   :data:`MEMORY_BUDGET` bytes (a unit larger than the budget is a part alone);
3. :func:`read_cells` reads one part's values (only its fields) through ``drift_pairs``
   straight into one array per feature, and returns its cells.

Univariate drift's cells are independent across features, so the caller computes each
part's cells and releases them before the next part is read; every cell carries
:attr:`Cell.order`, its place in a one-part call, so the results can be put back in that
order (everything computed across cells, p-value corrections and thresholds, runs later on
all of them, in SQL).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from evalstore.core.db import Cleanup
from evalstore.core.identifiers import quote
from evalstore.core.layout import schema_prefix
from evalstore.core.macros import call
from evalstore.core.values import KEYS, output_names, output_rows
from evalstore.core.windows import Selection, restricted_view
from evalstore.metrics.drift.sorted_samples import Sample

#: Bytes of values (8 per value) one pass of a drift call reads into memory at most, unless
#: one feature alone needs more. The peak of a call is about twice this (the sorted samples'
#: caches, DuckDB's batches) plus DuckDB's own memory; each further pass reads the call's rows
#: from DuckDB again (more CPU, the same results).
MEMORY_BUDGET = 1 << 30

#: Rows per Arrow batch of the packed read: small enough that a batch in flight is a
#: fraction of the samples it is scattered into.
BATCH_ROWS = 1 << 17

#: The value of ``feature`` on the feature rows of :func:`source` (an output's rows name it).
FEATURE_ROWS = "*"

_names = itertools.count()


@dataclass
class Cell:
    """One (reference, window, feature, version) comparison."""

    ref_key: int
    window_index: int
    #: microseconds since 1970 (cast to timestamps in the result table)
    window_start: int | None
    window_end: int | None
    feature: str
    version: str
    #: the samples are released (None) once ``stats`` is filled
    window: Sample | None
    reference: Sample | None
    #: (group, feature position): the cell's place in the rows of a one-part call
    order: tuple[int, int] = (0, 0)
    edges: np.ndarray | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    #: 'values' when ``few_values`` bins this cell by value (else the call's binning)
    binning: str | None = None
    #: (bins, min_rows): KS and W1 are NannyML's estimates on ``bins`` equal-width bins
    #: (:mod:`evalstore.metrics.drift.binned_cdf`) when the reference has at least
    #: ``min_rows`` finite values; exact when bins is None
    cdf: tuple[int | None, int] = (None, 0)
    #: wasserstein 'normed' divides by max(reference population sd, sd_floor) (Evidently)
    sd_floor: float = 0.0


def source(
    con: duckdb.DuckDBPyConnection,
    model: str,
    kinds: Mapping[str, str],
    where: str | None,
    version: str | None,
    features: Sequence[str],
) -> tuple[str, list[str]]:
    """A temporary long-format relation of the numeric values of ``model``, packed.

    The same rows as ``<model>.numeric_values`` (so windows and chunks are cut exactly
    as the SQL macros cut them), restricted to ``where`` and ``version`` like it, but
    with one row per ``features`` row rather than one per feature: ``value`` is a
    struct whose fields ``c0``, ``c1``, ... hold the numeric ``features`` (returned, in
    order) and whose field ``out`` holds an output (score; prediction and label for
    regression) on the output rows, whose ``feature`` names it. Drop it with
    :func:`evalstore.core.windows.drop_view`.
    """
    s = schema_prefix(con, model)
    numeric = [f for f, kind in kinds.items() if kind == "numeric"]
    chosen = [f for f in numeric if f in features]
    outputs = output_names(con, model, "numeric")
    fields = [f"c{i} := CAST({quote(name)} AS DOUBLE)" for i, name in enumerate(chosen)]
    empty = [f"c{i} := CAST(NULL AS DOUBLE)" for i in range(len(chosen))]
    parts = []
    if outputs:  # score (binary), prediction and label (regression); none for multiclass
        parts.append(
            f"SELECT example_id, env, dataset, ts, version, feature, "
            f"struct_pack({', '.join([*empty, 'out := value'])}) AS value "
            f"FROM ({' UNION ALL '.join(output_rows(s, outputs, 'DOUBLE'))})"
        )
    if numeric or not parts:  # no numeric column at all: no rows, the same columns
        parts.append(
            f"SELECT {KEYS}, CAST(NULL AS VARCHAR) AS version, '*' AS feature, "
            f"struct_pack({', '.join([*fields, 'out := CAST(NULL AS DOUBLE)'])}) AS value "
            f"FROM {s}features" + ("" if numeric else " WHERE false")
        )
    select = " UNION ALL ".join(parts)
    return restricted_view(con, model, "", where, version, list(kinds), select), chosen


@dataclass
class Plan:
    """The groups of a drift call's rows (one query, no values) and its features."""

    pairs: str
    pairs_args: list[Any]
    #: cell, feature, version, ref_key, window_start, window_end, n per group, in order
    groups: pa.Table
    #: the packed numeric features in ``value`` field order, with their fields
    packed: dict[str, str]
    #: output names asked for (their rows are the groups whose ``feature`` names them)
    outputs: list[str]

    @property
    def sizes(self) -> np.ndarray:
        return np.asarray(self.groups.column("n"), dtype=np.int64)

    @property
    def names(self) -> list[str]:
        return self.groups.column("feature").to_pylist()

    def unit_bytes(self) -> dict[str, int]:
        """Bytes of values per unit (packed feature or output), in the order of a one-part
        call's cells within a group."""
        sizes, names = self.sizes, np.asarray(self.names, dtype=object)
        feature_rows = int(sizes[names == FEATURE_ROWS].sum())
        units = {name: 8 * feature_rows for name in self.packed}
        for name in self.outputs:
            units[name] = 8 * int(sizes[names == name].sum())
        return units


#: ``cell`` of a row of drift_pairs: -1 - ref_key for reference rows, else the window
_CELL = "CASE WHEN side = 'reference' THEN -1 - ref_key ELSE window_index END"


def plan(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    fields: Sequence[str],
    selection: Selection,
    features: Sequence[str],
) -> Plan:
    """Count the rows of every group of ``relation`` (from :func:`source`, whose packed
    ``fields`` are given) through ``drift_pairs``: the sizes :func:`parts` and
    :func:`read_cells` need, read without values. Call it and :func:`read_cells` in one
    transaction."""
    pairs = f"evalstore.drift_pairs(?, {selection.placeholders})"
    pairs_args = [relation, *selection.args()]
    groups = call(
        con,
        f"SELECT {_CELL} AS cell, feature, version, ref_key, "
        # as microseconds: a time beyond Python's datetime (a store written before
        # the time range was enforced) must not stop the read; cast back in Arrow
        "epoch_us(any_value(window_start)) AS window_start, "
        "epoch_us(any_value(window_end)) AS window_end, "
        f"count(*) AS n FROM {pairs} "
        "GROUP BY ALL ORDER BY cell, feature, version",
        pairs_args,
    )
    packed = {name: f"c{i}" for i, name in enumerate(fields) if name in features}
    present = set(groups.column("feature").to_pylist()) - {FEATURE_ROWS}
    outputs = sorted(name for name in present if name in features)
    return Plan(pairs, pairs_args, groups, packed, outputs)


def parts(units: Mapping[str, int], budget: int) -> list[list[str]]:
    """``units`` (name: bytes), in order, cut into consecutive parts of at most ``budget``
    bytes each; a unit larger than the budget is a part alone. No units: no parts."""
    result: list[list[str]] = []
    held = budget + 1  # the first unit opens a part
    for name, size in units.items():
        if held + size > budget or not result:
            result.append([])
            held = 0
        result[-1].append(name)
        held += size
    return result


def read_cells(con: duckdb.DuckDBPyConnection, plan: Plan, part: Sequence[str]) -> list[Cell]:
    """The cells of the features and outputs ``part``, their samples read in one pass.

    Every feature of the part gets one array with a contiguous run per group (reference
    or window, version), and each streamed batch is scattered into those runs, so the
    rows are held once, in the arrays the samples sort in place, never concatenated or
    permuted. Only the part's fields and groups are read.
    """
    groups = plan.groups.to_pydict()
    sizes = plan.sizes
    features = [name for name in plan.packed if name in part]
    outputs = set(part) - set(features)
    wanted = np.asarray(
        [
            (name == FEATURE_ROWS and bool(features)) or name in outputs
            for name in groups["feature"]
        ],
        dtype=bool,
    )
    if not wanted.any():
        return []
    is_output = np.asarray([name != FEATURE_ROWS for name in groups["feature"]])
    # each family (feature rows, output rows) gets its own arrays, runs in group order
    start = np.zeros_like(sizes)
    for family in (is_output & wanted, ~is_output & wanted):
        start[family] = np.cumsum(sizes[family]) - sizes[family]
    columns = {name: np.empty(int(sizes[~is_output & wanted].sum())) for name in features}
    out = np.empty(int(sizes[is_output & wanted].sum()))
    targets = [(columns[name], plan.packed[name]) for name in features]
    _scatter(con, plan, wanted, start, is_output, targets, out)
    position = {name: i for i, name in enumerate([*plan.packed, *plan.outputs])}
    references: dict[tuple[int, str, str], Sample] = {}
    analysis = []
    for g in np.flatnonzero(wanted):
        code, version = groups["cell"][g], groups["version"][g]
        rows = slice(int(start[g]), int(start[g] + sizes[g]))
        if not is_output[g]:
            samples = [(name, column[rows]) for name, column in columns.items()]
        else:
            samples = [(groups["feature"][g], out[rows])]
        for feature, values in samples:
            sample = Sample(values, owned=True)  # its own run of an array nobody else reads
            if code < 0:
                references[(groups["ref_key"][g], feature, version)] = sample
            else:  # a window's start and end are the same on all its rows
                analysis.append(
                    (groups["ref_key"][g], code, groups["window_start"][g],
                     groups["window_end"][g], feature, version, sample,
                     (int(g), position[feature]))
                )  # fmt: skip
    return [
        Cell(ref, window_index, begin, end, feature, version, sample,
             references.get((ref, feature, version)), order)
        for ref, window_index, begin, end, feature, version, sample, order in analysis
    ]  # fmt: skip


def _scatter(
    con: duckdb.DuckDBPyConnection,
    plan: Plan,
    wanted: np.ndarray,
    start: np.ndarray,
    is_output: np.ndarray,
    targets: Sequence[tuple[np.ndarray, str]],
    out: np.ndarray,
) -> None:
    """Stream the values of the ``wanted`` groups into ``targets`` (feature rows: an array
    and the ``value`` field it takes) and ``out`` (output rows): group g's rows fill
    ``start[g]``, ``start[g] + 1``, ... in arrival order."""
    name = f"evalstore_drift_groups_{next(_names)}"
    gid = pa.array(np.arange(plan.groups.num_rows, dtype=np.int32))
    keys = plan.groups.select(["cell", "feature", "version"]).append_column("gid", gid)
    keys = keys.filter(pa.array(wanted))
    members = [member for _, member in targets] + (["out"] if len(out) else [])
    value = ", ".join(f"{m} := p.value.{m}" for m in members)
    with Cleanup() as later:
        con.register(name, keys)
        later.add(con.unregister, name)
        reader = con.sql(
            f"SELECT g.gid, struct_pack({value}) AS value "
            f"FROM (SELECT {_CELL} AS cell, feature, version, value FROM {plan.pairs}) AS p "
            f"JOIN {quote(name)} AS g USING (cell, feature, version)",
            params=plan.pairs_args,
        ).to_arrow_reader(BATCH_ROWS)
        # an unfinished result blocks the connection (even its ROLLBACK): closed first
        later.add(reader.close)
        fill = start.copy()
        for batch in reader:
            gid = batch.column(0).to_numpy()
            counts = np.bincount(gid, minlength=len(start))
            present = np.flatnonzero(counts)
            if len(present) == 1:  # one group: a contiguous run
                g = present[0]
                dest: np.ndarray | slice = slice(int(fill[g]), int(fill[g] + counts[g]))
                output_rows = bool(is_output[g])
            else:
                order = np.argsort(gid, kind="stable")
                ranked = gid[order]
                first = np.cumsum(counts) - counts  # each group's first row in ``order``
                dest = np.empty(len(gid), dtype=np.int64)
                dest[order] = fill[ranked] + np.arange(len(gid)) - first[ranked]
                output_rows = is_output[gid]
            fill += counts
            value_column = batch.column(1)
            if isinstance(output_rows, np.ndarray):  # rows of both families
                jobs = [(out, "out", output_rows)]
                jobs += [(target, member, ~output_rows) for target, member in targets]
            else:  # every row goes to the same arrays
                jobs = [(out, "out", None)] if output_rows else [(*t, None) for t in targets]
            for target, member, rows in jobs:
                if rows is not None and not rows.any():
                    continue
                values = _numbers(pc.struct_field(value_column, member))
                if rows is None:
                    target[dest] = values
                else:
                    target[dest[rows]] = values[rows]
            del batch, value_column
    expected = start + np.where(wanted, plan.sizes, 0)
    if not np.array_equal(fill, expected):
        raise RuntimeError("evalstore: the drift rows changed while they were read; run again")


def _numbers(array: pa.Array) -> np.ndarray:
    """``array`` (numbers) as numpy, NULL as NaN (a view of Arrow's buffer where it can)."""
    return array.to_numpy(zero_copy_only=False)
