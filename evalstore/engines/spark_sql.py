"""Spark SQL from evalstore's macros: the per-dialect equivalents of the DuckDB-only
helpers, and the rewrites of DuckDB constructs sqlglot does not carry to Spark.

Everything Spark-specific is in this module, in two lists (docs/scaling.md reproduces
them):

:data:`SPARK_HELPERS`, the helper macros replaced by a Spark equivalent
    ``window_start``, ``window_end``, ``interval_us`` (time arithmetic on epoch
    microseconds: ``unix_micros``/``timestamp_micros``; widths are constants, measured by
    DuckDB when the query is built, and may not hold months), ``hours_between`` (the
    macro's doubles over :data:`_EPOCH`),
    ``quantile_edges`` (DuckDB's ``quantile_cont`` over a constant list of levels, then
    the exact quantile by sort below: never ``approx_percentile``), ``bucket_index``
    and ``bucket_start`` (performance windows: integer arithmetic on epoch microseconds),
    ``integer_value`` (Spark's lower-case ``typeof`` names), ``smallest`` (DuckDB's
    ``min(x, n)``: ``slice`` of the sorted ``collect_list``), ``with_slice`` (the rows of
    its relation as they are: the engine's evaluations always carry ``slice``).
    The per-cell helpers over small lists (``categorical_methods``, ``numeric_methods``,
    ``binned_scores``: one row per window, feature and method) are not translated: the
    engine computes everything before them on Spark and runs them on the driver with the
    store's own macros (:func:`evalstore.engines.sql_inline.split`).
:func:`rewrite`, the constructs rewritten on the inlined tree
    ``AS [NOT] MATERIALIZED`` CTE hints (dropped), ``ASOF LEFT JOIN`` (the left rows and the
    right rows in one sort per key, each left row carrying the last right row before it:
    :func:`evalstore.engines.sql_inline.rewrite_asof_joins`),
    ``list(x ORDER BY y)`` (``collect_list`` of ``(y, x)`` structs, sorted, then ``x``:
    Spark's ``collect_list`` keeps no order), ``list_sum`` (``aggregate``; NULL for an
    empty or all-NULL list, as DuckDB), ``isfinite(v)`` (``abs(v) < Infinity``),
    ``isinf(v)`` (``abs(v) = Infinity``),
    ``quantile_cont(x, q)`` and the edges above (an exact quantile by sort: ``row_number``
    and ``count`` windows per group, then DuckDB's interpolation on the two neighbouring
    ranks, :func:`_sorted_quantiles`; Spark's own ``percentile`` neither spills nor
    interpolates to DuckDB's last bit),
    ``HUGEINT`` casts (``DECIMAL(38, 0)``: exact integers up to 10^38),
    ``nextafter(x, +-inf)`` (``java.lang.Math.nextUp``/``nextDown`` via ``java_method``),
    ``len(list)`` (``size``), ``lead``/``lag`` over a named window with a frame (the
    window inlined without it: Spark refuses frames there), ``epoch(ts)`` (DuckDB's ICU
    epoch of a TIMESTAMPTZ, in its doubles: :data:`_EPOCH`), and ``unnest(l)`` beside
    ``generate_subscripts(l, 1)`` in one SELECT (``inline`` of ``(value, 1-based
    position)`` structs).

Beside them, the SQL the Spark engine writes itself around the macros (no metric in it):
the restricted views of ``version=`` / ``where=`` (:func:`restriction`; a ``where`` text
only after the store's checker, :func:`checked_predicate`), the evaluations a performance
macro reads (:func:`evaluations`, :func:`slice_index`) and the relations a lake lacks
(:func:`lake_system_views`).

The queries run with ``spark.sql.ansi.enabled=false`` (the engine sets it for its own
statements), so that, as in DuckDB, a division by zero gives NULL instead of an error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import cache
from typing import TYPE_CHECKING

import duckdb
import sqlglot
from sqlglot import exp

from evalstore.core.windows import check_predicate
from evalstore.engines.sql_inline import rewrite_asof_joins
from evalstore.errors import InvalidParameterError

if TYPE_CHECKING:
    from evalstore.metrics.slice_keys import _Slice


def _spark(template: str, **values: exp.Expression) -> exp.Expression:
    """``template`` (Spark SQL) parsed, with the columns named like ``values`` replaced."""
    tree = sqlglot.parse_one(template, read="spark")
    for column in list(tree.find_all(exp.Column)):
        if column.table == "" and column.name in values:
            value = values[column.name].copy()
            simple = isinstance(value, exp.Literal | exp.Column | exp.Null | exp.Paren)
            column.replace(value if simple else exp.Paren(this=value))
    return tree


@cache
def interval_micros(width: str) -> int:
    """Microseconds of a month-free interval text such as ``'1 day'`` (DuckDB parses it,
    as the store does); raises :class:`InvalidParameterError` for months or years."""
    with duckdb.connect() as con:
        months, micros = con.execute(
            "SELECT datepart('year', CAST(? AS INTERVAL)) * 12 "
            "+ datepart('month', CAST(? AS INTERVAL)), "
            "epoch_us(TIMESTAMP '1970-01-01' + CAST(? AS INTERVAL))",
            [width, width, width],
        ).fetchall()[0]
    if months:
        raise InvalidParameterError(
            f"window={width!r}: the Spark engine takes month-free widths ('1 day', '7 days', "
            "'6 hours'); calendar months have no fixed length in microseconds"
        )
    return int(micros)


def _width(arg: exp.Expression) -> exp.Expression:
    """The width argument as a constant number of microseconds (NULL stays NULL)."""
    if isinstance(arg, exp.Paren):
        arg = arg.this
    if isinstance(arg, exp.Null):
        return exp.Null()
    if isinstance(arg, exp.Literal) and arg.is_string:
        return exp.Literal.number(interval_micros(arg.this))
    raise InvalidParameterError(
        f"the window width must be a constant when a query is built for Spark, got {arg.sql()}"
    )


def _window_start(args: list[exp.Expression]) -> exp.Expression:
    ts, width = args
    return _spark(
        "timestamp_micros(unix_micros(ts) - pmod(unix_micros(ts) - 946857600000000, w))",
        ts=ts,
        w=_width(width),
    )


def _window_end(args: list[exp.Expression]) -> exp.Expression:
    start, width = args
    return _spark("timestamp_micros(unix_micros(s) + w)", s=start, w=_width(width))


def _interval_us(args: list[exp.Expression]) -> exp.Expression:
    return _width(args[0])


#: DuckDB's ``epoch(ts)`` of a TIMESTAMPTZ (every ``ts`` of the store), as its ICU
#: extension computes it in doubles: whole milliseconds (floored) / 1000 plus the
#: remaining microseconds / 1e6. Not ``micros / 1e6`` (DuckDB's TIMESTAMP without time
#: zone), which differs in the last bit for about one value in four.
_EPOCH = (
    "(CAST((unix_micros({t}) - pmod(unix_micros({t}), 1000)) DIV 1000 AS DOUBLE) "
    "/ CAST(1000 AS DOUBLE) + CAST(pmod(unix_micros({t}), 1000) AS DOUBLE) "
    "/ CAST(1000000 AS DOUBLE))"
)


def _hours_between(args: list[exp.Expression]) -> exp.Expression:
    """``evalstore.hours_between(t0, t1)``, its macro's doubles:
    ``(epoch(t1) - epoch(t0)) / 3600.0``."""
    t0, t1 = args
    return _spark(
        f"({_EPOCH.format(t='b')} - {_EPOCH.format(t='a')}) / CAST(3600 AS DOUBLE)",
        a=t0,
        b=t1,
    )


def _quantile_edges(args: list[exp.Expression]) -> exp.Expression:
    value, bins = args
    if isinstance(bins, exp.Paren):
        bins = bins.this
    if not (isinstance(bins, exp.Literal) and not bins.is_string):
        raise InvalidParameterError("bins must be a constant when a query is built for Spark")
    n = int(bins.this)
    # DuckDB's i / bins (a DOUBLE division), the same numbers as Python's
    levels = ", ".join(repr(i / n) for i in range(1, n))
    middle = f"percentile(v, array({levels}))" if levels else "CAST(array() AS ARRAY<DOUBLE>)"
    return _spark(
        f"array_sort(array_distinct(concat(array(min(v)), {middle}, array(max(v)))))", v=value
    )


def _bucket_index(args: list[exp.Expression]) -> exp.Expression:
    """``evalstore.bucket_index(ts, width)``: the window key
    ``floor((ts - 2000-01-03 UTC) / width)`` in microseconds, as integer arithmetic on
    ``unix_micros`` (the macro's month-free branch; widths with months are refused)."""
    ts, width = args
    return _spark(
        "(unix_micros(ts) - 946857600000000 - pmod(unix_micros(ts) - 946857600000000, w)) DIV w",
        ts=ts,
        w=_width(width),
    )


def _bucket_start(args: list[exp.Expression]) -> exp.Expression:
    """``evalstore.bucket_start(index, width)``: the start of the window of key ``index``,
    ``timestamp_micros(2000-01-03 UTC + index * width)``."""
    index, width = args
    return _spark("timestamp_micros(946857600000000 + i * w)", i=index, w=_width(width))


def _integer_value(args: list[exp.Expression]) -> exp.Expression:
    """``evalstore.integer_value(x)``: x as a BIGINT when its type is an integer type
    (Spark's ``typeof`` names them in lower case: tinyint, smallint, int, bigint; Spark has
    no unsigned types), else NULL."""
    return _spark(
        "CASE WHEN typeof(x) IN ('tinyint', 'smallint', 'int', 'bigint') "
        "THEN CAST(x AS BIGINT) END",
        x=args[0],
    )


def _smallest(args: list[exp.Expression]) -> exp.Expression:
    """``evalstore.smallest(x, n)`` (DuckDB's ``min(x, n)``): the n smallest non-NULL
    values of x ascending, NULL when there are none (``collect_list`` drops NULLs)."""
    value, n = args
    return _spark(
        "CASE WHEN count(x) > 0 THEN slice(array_sort(collect_list(x)), 1, n) END", x=value, n=n
    )


def _with_slice(args: list[exp.Expression]) -> exp.Expression:
    """``evalstore.with_slice(source)``: the rows of ``evalstore.relation(source)``. DuckDB's
    macro adds a NULL ``slice`` with ``UNION ALL BY NAME`` when the relation has none; the
    relations the Spark engine passes (its evaluations views) always carry ``slice``."""
    call = exp.Anonymous(this="relation", expressions=[args[0].copy()])
    return exp.select("*").from_(exp.Table(this=call, db=exp.to_identifier("evalstore")))


#: The per-dialect equivalents, by macro name (see the module docstring).
SPARK_HELPERS: dict[str, Callable[[list[exp.Expression]], exp.Expression]] = {
    "window_start": _window_start,
    "window_end": _window_end,
    "interval_us": _interval_us,
    "hours_between": _hours_between,
    "quantile_edges": _quantile_edges,
    "bucket_index": _bucket_index,
    "bucket_start": _bucket_start,
    "integer_value": _integer_value,
    "smallest": _smallest,
    "with_slice": _with_slice,
}


def _drop_materialized(tree: exp.Expression) -> exp.Expression:
    for cte in tree.find_all(exp.CTE):
        cte.set("materialized", None)
    return tree


def _ordered_lists(tree: exp.Expression) -> exp.Expression:
    for agg in list(tree.find_all(exp.ArrayAgg)):
        order = agg.this
        if not isinstance(order, exp.Order):
            continue
        keys = [o.this for o in order.expressions]
        if any(o.args.get("desc") for o in order.expressions):
            raise InvalidParameterError("list(... ORDER BY ... DESC) has no Spark rewrite")
        fields = [f"'k{i}', k{i}" for i in range(len(keys))]
        template = (
            f"transform(array_sort(collect_list(named_struct({', '.join(fields)}, 'v', v))), "
            "s -> s.v)"
        )
        values = {f"k{i}": key for i, key in enumerate(keys)}
        agg.replace(_spark(template, v=order.this, **values))
    return tree


def _functions(tree: exp.Expression) -> exp.Expression:
    for node in list(tree.find_all(exp.Anonymous)):
        name = node.name.lower()
        if name == "list_sum":
            node.replace(
                _spark(
                    "CASE WHEN size(filter(l, x -> x IS NOT NULL)) = 0 THEN NULL ELSE "
                    "aggregate(filter(l, x -> x IS NOT NULL), 0D, (a, x) -> a + x) END",
                    l=node.expressions[0],
                )
            )
        elif name == "nextafter":
            x, toward = node.expressions
            upward = "-" not in toward.sql().replace("'-inf'", "-")
            method = "nextUp" if upward else "nextDown"
            node.replace(
                _spark(
                    f"CAST(java_method('java.lang.Math', '{method}', CAST(x AS DOUBLE)) AS DOUBLE)",
                    x=x,
                )
            )
        elif name == "isfinite":
            node.replace(_spark("abs(v) < CAST('Infinity' AS DOUBLE)", v=node.expressions[0]))
    for node in list(tree.find_all(exp.IsInf)):
        node.replace(_spark("abs(v) = CAST('Infinity' AS DOUBLE)", v=node.this))
    for node in list(tree.find_all(exp.PercentileCont)):
        node.replace(_spark("percentile(v, q)", v=node.this, q=node.expression))
    for node in list(tree.find_all(exp.DataType)):
        if node.this == exp.DataType.Type.INT128:
            node.replace(exp.DataType.build("DECIMAL(38, 0)"))
    for node in list(tree.find_all(exp.Length)):
        node.replace(_spark("size(l)", l=node.this))
    for node in list(tree.find_all(exp.TimeToUnix)):
        node.replace(_spark(_EPOCH.format(t="t"), t=node.this))
    return tree


def _subscripts(tree: exp.Expression) -> exp.Expression:
    """``SELECT ..., unnest(l) AS a, generate_subscripts(l, 1) AS b`` -> ``inline`` of
    ``(a, b)`` structs."""
    for select in list(tree.find_all(exp.Select)):
        subscripts = [
            e
            for e in select.expressions
            if isinstance(e, exp.Alias)
            and isinstance(e.this, exp.Anonymous)
            and e.this.name.lower() == "generate_subscripts"
        ]
        for sub in subscripts:
            listed = sub.this.expressions[0]
            explode = next(
                e
                for e in select.expressions
                if isinstance(e, exp.Alias)
                and isinstance(e.this, exp.Explode)
                and e.this.this == listed
            )
            value_name, index_name = explode.alias, sub.alias
            generator = _spark(
                f"inline(transform(l, (x, j) -> named_struct('{value_name}', x, "
                f"'{index_name}', j + 1)))",
                l=listed,
            )
            explode.replace(generator)
            sub.pop()
    return tree


def _offset_windows(tree: exp.Expression) -> exp.Expression:
    """``lead``/``lag`` over a named window with a frame: the window inlined without the
    frame (Spark refuses a frame for offset functions; it does not change their value)."""
    for window in list(tree.find_all(exp.Window)):
        if not isinstance(window.this, exp.Lead | exp.Lag) or window.args.get("partition_by"):
            continue
        name = window.args.get("alias")
        select = window.find_ancestor(exp.Select)
        if name is None or select is None:
            continue
        named = next(
            (w for w in select.args.get("windows") or [] if w.this.name == name.name), None
        )
        if named is None:
            continue
        window.set("alias", None)
        window.set("partition_by", [p.copy() for p in named.args.get("partition_by") or []])
        if named.args.get("order") is not None:
            window.set("order", named.args["order"].copy())
    return tree


def _quantile_value(
    rank: str, pos: str, value: exp.Expression, level: exp.Expression
) -> exp.Expression:
    """DuckDB's ``quantile_cont`` of one group, from its rows ranked by ``value``: with
    ``pos = (n - 1) q``, ``f = floor(pos)``, ``c = ceil(pos)`` and ``d = pos - f``, the
    value ranked ``f + 1`` when ``f = c``, else ``fma(x_f, 1 - d, x_c d)``: DuckDB 2.0's
    interpolation ``x_f (1 - d) + x_c d`` as its x86-64 build computes it, the first
    product fused into the sum (Java's ``Math.fma``), which matches it to the bit where
    the unfused sum differs in the last bit for about one pair in eight."""
    x_f = f"max(CASE WHEN {rank} = floor({pos}) + 1 THEN CAST(v AS DOUBLE) END)"
    x_c = f"max(CASE WHEN {rank} = ceil({pos}) + 1 THEN CAST(v AS DOUBLE) END)"
    d = f"max({pos} - floor({pos}))"
    return _spark(
        f"CASE WHEN max(ceil({pos}) - floor({pos})) = 0 THEN {x_f} "
        f"ELSE CAST(java_method('java.lang.Math', 'fma', {x_f}, 1 - {d}, {x_c} * {d}) "
        "AS DOUBLE) END",
        v=value,
        q=level,
    )


def _check_quantile_select(
    select: exp.Select, quantiles: list[exp.Quantile], keys: list[exp.Expression]
) -> None:
    """Refuse the shapes :func:`_sorted_quantiles` would rewrite wrongly: ``GROUP BY ALL``,
    a key by position or by an output alias (the windows partition by the relation's
    columns), a quantile under ``FILTER`` or ``OVER``, and levels that are neither a
    constant nor a written-out list."""
    group = select.args.get("group")
    aliases = {  # output names that are not a column of the relation under that name
        e.alias
        for e in select.expressions
        if isinstance(e, exp.Alias)
        and not (isinstance(e.this, exp.Column) and e.this.name == e.alias)
    }
    shown = select.sql(dialect="duckdb")[:200]
    if group is not None and group.args.get("all"):
        raise InvalidParameterError(
            f"quantile_cont under GROUP BY ALL has no Spark rewrite: {shown}"
        )
    for key in keys:
        if isinstance(key, exp.Literal) or (
            isinstance(key, exp.Column) and not key.table and key.name in aliases
        ):
            raise InvalidParameterError(
                f"quantile_cont grouped by a position or an output alias ({key.sql()}) has "
                f"no Spark rewrite: {shown}"
            )
    for quantile in quantiles:
        if isinstance(quantile.parent, exp.Filter | exp.Window):
            raise InvalidParameterError(
                f"quantile_cont with FILTER or OVER has no Spark rewrite: {shown}"
            )
        levels = quantile.args["quantile"]
        while isinstance(levels, exp.Paren):
            levels = levels.this
        if not isinstance(levels, exp.Array) and (
            levels.find(exp.Column) is not None
            or (isinstance(levels, exp.Cast) and levels.to.is_type(exp.DataType.Type.ARRAY))
        ):
            raise InvalidParameterError(
                "quantile_cont's levels must be a constant or a written-out list on Spark, "
                f"not {levels.sql()}"
            )


def _sorted_quantiles(tree: exp.Expression) -> exp.Expression:
    """Exact quantiles by sorting: each ``percentile(v, q)`` (scalar or constant array
    ``q``) of a SELECT over one relation becomes DuckDB's formula on the rows ranked
    ``floor(pos) + 1`` and ``ceil(pos) + 1`` within the group (``row_number`` and ``count``
    windows over the group's keys, added to the relation in a subquery under its own
    alias). Spark's own ``percentile`` holds a group's values in one task's memory, which
    does not spill (a 10M-row group needed a 14 GB driver), and interpolates as
    ``(c - pos) x_f + (pos - f) x_c``, which differs from DuckDB in the last bit; a sort
    spills to disk and the formula is DuckDB's (:func:`_quantile_value`)."""
    for select in list(tree.find_all(exp.Select)):
        quantiles = [q for q in select.find_all(exp.Quantile) if q.parent_select is select]
        if not quantiles:
            continue
        source = select.args.get("from_")
        if select.args.get("joins") or source is None or not isinstance(source.this, exp.Table):
            raise InvalidParameterError(
                "quantile_cont has a Spark rewrite only in a SELECT over one relation, "
                f"not in: {select.sql(dialect='duckdb')[:200]}"
            )
        table = source.this
        alias = table.alias_or_name
        group = select.args.get("group")
        keys = [k.copy() for k in group.expressions] if group else []
        _check_quantile_select(select, quantiles, keys)
        ranked = exp.select(exp.Column(this=exp.Star(), table=exp.to_identifier(alias)))
        ranks: dict[str, tuple[str, str]] = {}
        for quantile in quantiles:
            value = quantile.this
            if value.sql() not in ranks:
                i = len(ranks)
                rank, count = f"__rank{i}", f"__count{i}"
                order = exp.Order(expressions=[exp.Ordered(this=value.copy(), nulls_first=False)])
                ranked = ranked.select(
                    exp.alias_(
                        exp.Window(
                            this=exp.RowNumber(), partition_by=[k.copy() for k in keys], order=order
                        ),
                        rank,
                    ),
                    exp.alias_(
                        exp.Window(
                            this=exp.Count(this=value.copy()), partition_by=[k.copy() for k in keys]
                        ),
                        count,
                    ),
                    copy=False,
                )
                ranks[value.sql()] = (rank, count)
            rank, count = ranks[value.sql()]
            levels = quantile.args["quantile"]
            while isinstance(levels, exp.Paren):
                levels = levels.this
            pos = f"({count} - 1) * CAST(q AS DOUBLE)"
            if isinstance(levels, exp.Array):
                parts = [_quantile_value(rank, pos, value, q) for q in levels.expressions]
                result = exp.Array(expressions=parts)
            else:
                result = _quantile_value(rank, pos, value, levels)
            quantile.replace(exp.Case(ifs=[exp.If(this=_spark(f"max({count}) > 0"), true=result)]))
        ranked = ranked.from_(table.copy(), copy=False)
        where = select.args.get("where")
        if where is not None:
            ranked.set("where", where.pop())
        source.set("this", ranked.subquery(alias))
    return tree


def rewrite(tree: exp.Expression) -> exp.Expression:
    """The inlined DuckDB tree made ready for sqlglot's Spark writer (module docstring)."""
    steps = (_drop_materialized, rewrite_asof_joins, _offset_windows, _ordered_lists)
    for step in (*steps, _subscripts, _functions, _sorted_quantiles):
        tree = step(tree)
    return tree


# ------------------------------------------------------- SQL the Spark engine writes itself


def from_duckdb(sql: str) -> str:
    """DuckDB SQL the store generated (a slice index, a checked predicate) as Spark SQL:
    parsed by sqlglot, :func:`rewrite`, written for Spark."""
    return rewrite(sqlglot.parse_one(sql, read="duckdb")).sql(dialect="spark")


def checked_predicate(where: str, columns: list[str] | tuple[str, ...], name: str = "where") -> str:
    """``where`` checked by the store's checker over ``columns``
    (:func:`evalstore.core.windows.check_predicate`: one boolean expression, known
    columns, allow-listed functions), then written as Spark SQL (:func:`from_duckdb`):
    a user's text never reaches Spark unparsed."""
    return from_duckdb(check_predicate(where, columns, name))


def exact_quantiles(sql: str) -> str:
    """Spark SQL whose ``percentile`` calls become the exact quantile by sort
    (:func:`_sorted_quantiles`), for the SQL the engine writes itself."""
    return _sorted_quantiles(sqlglot.parse_one(sql, read="spark")).sql(dialect="spark")


def text(value: str) -> str:
    """A quoted Spark string constant (sqlglot escapes it)."""
    return exp.Literal.string(value).sql(dialect="spark")


def quote_name(name: str) -> str:
    """A Spark identifier (backquoted)."""
    return "`" + name.replace("`", "``") + "`"


def restriction(
    names: dict[str, str],
    predicate: str | None,
    version: str | None,
    reference_dataset: tuple[str, str] | None = None,
) -> list[str]:
    """Conditions on a long-format value row ``v`` as the store's
    :func:`evalstore.core.windows.restricted_view` writes them, over the lake views
    ``names``: its example's feature row of the same env meets ``predicate`` (Spark SQL
    from :func:`checked_predicate`); with ``version``, a serving row is of an example the
    version predicted and an output row is the version's own; ``reference_dataset``
    ``(env, tag)`` keeps only the rows of env ``env`` from dataset ``tag``."""
    conditions = []
    if predicate is not None:
        conditions.append(
            f"(v.example_id, v.env) IN (SELECT example_id, env FROM {names['features']} "
            f"WHERE {predicate})"
        )
    if version is not None:
        chosen = text(version)
        conditions.append(
            f"(v.env <> 'serving' OR v.example_id IN (SELECT example_id FROM "
            f"{names['predictions']} WHERE version = {chosen})) "
            f"AND (v.version IS NULL OR v.version = {chosen})"
        )
    if reference_dataset is not None:
        env, tag = reference_dataset
        conditions.append(f"(v.env <> {text(env)} OR v.dataset = {text(tag)})")
    return conditions


def lake_system_views(base: str, names: dict[str, str]) -> dict[str, str]:
    """``{view: Spark SQL}`` of the relations ``evalstore.label_horizon`` reads that a lake
    lacks: ``evalstore.batches`` and ``evalstore.label_horizons`` empty (the store's cache
    of delays; without rows the macro computes them from every label), and the lake's
    labels, latest labels and predictions with ``example_key`` (= ``example_id``) and
    the labels' ``superseded_by`` (the example's next label batch, as the store keeps it)."""
    return {
        f"{base}_batches": "SELECT CAST(NULL AS STRING) AS model, CAST(NULL AS STRING) "
        "AS kind, CAST(NULL AS BIGINT) AS batch_id WHERE false",
        f"{base}_label_horizons": "SELECT CAST(NULL AS STRING) AS model, CAST(NULL AS "
        "DOUBLE) AS delay_quantile, CAST(NULL AS BIGINT) AS labels_batch, CAST(NULL AS "
        "BIGINT) AS predictions_batch, CAST(NULL AS DOUBLE) AS delay_hours, CAST(NULL AS "
        "BIGINT) AS labeled WHERE false",
        f"{base}_keyed_labels": "SELECT *, example_id AS example_key, lead(batch_id) OVER "
        f"(PARTITION BY example_id ORDER BY batch_id) AS superseded_by FROM {names['labels']}",
        f"{base}_keyed_labels_latest": "SELECT *, example_id AS example_key "
        f"FROM {names['labels_latest']}",
        f"{base}_keyed_predictions": "SELECT *, example_id AS example_key "
        f"FROM {names['predictions']}",
    }


def slice_index(key: _Slice) -> str:
    """Spark SQL of a ``by`` key's index for a row of ``e``, as
    :meth:`evalstore.metrics.slice_keys._Slice.index` (categories by their position in
    the sorted domain, via ``array_position``; numeric bins from the same CASE)."""
    missing = key.null_index
    if key.kind == "categorical":
        if not key.domain:
            return str(missing)
        values = ", ".join(text(v) for v in key.domain)
        value = f"CAST(e.{quote_name(key.name)} AS STRING)"
        position = f"array_position(array({values}), {value})"
        return f"CASE WHEN {position} > 0 THEN {position} - 1 ELSE {missing} END"
    return from_duckdb(key.index())


def evaluations(
    names: dict[str, str],
    prediction_columns: Sequence[str],
    features: Sequence[str],
    predicate: str | None,
    version: str | None,
    slices: Sequence[_Slice],
) -> str:
    """Spark SQL of the evaluations a performance macro reads, as the store's
    :func:`evalstore.metrics.performance._source_view`: predictions with their latest
    label and serving ``features`` (``e``), restricted to ``predicate`` (from
    :func:`checked_predicate`) and ``version``, with the integer slice code of the
    ``slices`` (their domains and strides set), one row per named predicate met."""
    probabilities = (
        "p.probabilities" if "probabilities" in prediction_columns
        else "CAST(NULL AS MAP<STRING, DOUBLE>)"
    )  # fmt: skip
    latency = "p.latency_ms" if "latency_ms" in prediction_columns else "CAST(NULL AS DOUBLE)"
    listed = "".join(f", f.{quote_name(c)}" for c in features)
    rows = (
        "SELECT p.example_id, p.version, p.ts, p.prediction, p.score, "
        f"{probabilities} AS probabilities, {latency} AS latency_ms, l.label{listed} "
        f"FROM {names['predictions']} AS p "
        f"LEFT JOIN {names['labels_latest']} AS l ON l.example_id = p.example_id "
        f"LEFT JOIN {names['features']} AS f ON f.example_id = p.example_id "
        "AND f.env = 'serving'"
    )
    conditions = [f"({predicate})"] if predicate is not None else []
    if version is not None:
        conditions.append(f"e.version = {text(version)}")
    terms = [
        f"CAST({slice_index(key)} AS BIGINT) * {key.stride}"
        for key in slices
        if key.kind != "predicates"
    ]
    named = next((k for k in slices if k.kind == "predicates"), None)
    selects = []
    for label, condition in (named.predicates if named else {None: None}).items():
        parts = [*terms]
        if named is not None:
            parts.append(f"CAST({named.index(label)} AS BIGINT) * {named.stride}")
        chosen = [*conditions, *([f"({from_duckdb(condition)})"] if condition else [])]
        selects.append(
            "SELECT e.example_id, e.version, e.ts, e.prediction, e.score, e.probabilities, "
            f"e.label, CAST({' + '.join(parts) or 'NULL'} AS BIGINT) AS slice FROM ({rows}) AS e"
            + (f" WHERE {' AND '.join(chosen)}" if chosen else "")
        )
    return " UNION ALL ".join(selects)
