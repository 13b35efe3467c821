"""Inline evalstore's SQL macros into one SELECT, and transpile it to another engine's SQL.

The metric definitions live once, as DuckDB macros in ``sql/*.sql``. To run one on
another engine (Spark first), a macro call such as

    SELECT * FROM evalstore.drift_categorical('m.category_values', 'training', ...)

is turned into a single SELECT that uses no macro: every call of a table macro becomes a
subquery of its body and every call of a scalar macro a parenthesised copy of its body,
with the call's arguments put in place of the parameters, recursively until no
``evalstore.<macro>(...)`` call is left (:func:`inline`). The macro definitions are
parsed from the same files the store installs (:func:`evalstore.core.macros.sql_sources`)
with sqlglot; a parameter is replaced wherever its name is an unqualified column of the
body (and, in scalar macros, where it is the struct before a field: ``scores.psi``),
never inside a lambda that binds the same name.

The helpers that reach tables through DuckDB's ``query_table`` (``evalstore.relation``,
``evalstore.model_table``, ``evalstore.system_table``) need names known when the query
is built: their arguments must be constants, which :func:`inline` replaces by the
table expression ``tables`` maps them to (or by the name itself). ``helpers`` replaces
any other macro by SQL given per engine: the per-dialect equivalents of the DuckDB-only
helpers (:data:`evalstore.engines.spark.SPARK_HELPERS` for Spark). Every such
replacement is listed in docs/scaling.md.

:func:`transpile` then writes the inlined tree in another dialect with
``sqlglot`` (``write="spark"``), after the rewrites of DuckDB constructs that sqlglot
does not translate (:func:`rewrite_asof_joins`).

The golden tests (tests/engines/test_sql_inline.py) run the inlined DuckDB SQL on DuckDB
and compare it, row for row, to the macro call it came from.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import duckdb
import sqlglot
from sqlglot import exp

from evalstore.core.macros import sql_sources
from evalstore.errors import InvalidParameterError

#: The schema the macros are created in.
MACRO_SCHEMA = "evalstore"
#: Helpers that name a relation by a text argument (DuckDB's ``query_table``).
RELATION_HELPERS = ("relation", "model_table", "system_table")
#: At most this many rounds of inlining (a macro calling itself would never end).
MAX_DEPTH = 40

#: A replacement of a macro call: gets the call's argument expressions, returns SQL
#: (DuckDB dialect) or an expression.
Helper = Callable[[list[exp.Expression]], "exp.Expression | str"]


@dataclass(frozen=True)
class Macro:
    """One macro of ``sql/``: its name (without the schema), parameters and body."""

    name: str
    params: tuple[str, ...]
    body: exp.Expression
    table: bool
    file: str


_HEADER = re.compile(
    r"CREATE\s+OR\s+REPLACE\s+MACRO\s+evalstore\.(\w+)\s*\(([^)]*)\)\s+AS\s+(TABLE\s+)?",
    re.IGNORECASE,
)


def _strip_comments(text: str) -> str:
    return re.sub(r"^(\s*--[^\n]*\n)*\s*", "", text)


@cache
def macros() -> dict[str, Macro]:
    """Every macro of ``sql/*.sql`` by name, parsed once per process.

    A macro whose body sqlglot cannot parse is left out (the SQL-only conveniences that
    use DuckDB syntax sqlglot lacks); calling it from an inlined query raises.
    """
    found: dict[str, Macro] = {}
    for file, text in sql_sources().items():
        for statement in duckdb.extract_statements(text):
            query = _strip_comments(statement.query).strip().rstrip(";")
            header = _HEADER.match(query)
            if header is None:
                continue
            name, params, table = header.group(1), header.group(2), bool(header.group(3))
            try:
                body = sqlglot.parse_one(query[header.end() :], read="duckdb")
            except sqlglot.errors.ParseError:
                continue
            names = tuple(p.strip() for p in params.split(",") if p.strip())
            found[name] = Macro(name, names, body, table, file)
    return found


def _macro_call(node: exp.Expression) -> tuple[str, list[exp.Expression]] | None:
    """``(name, args)`` when ``node`` is a call of an ``evalstore.<macro>``."""
    if (
        isinstance(node, exp.Table)
        and isinstance(node.this, exp.Anonymous)
        and node.db == MACRO_SCHEMA
    ):
        return node.this.name, list(node.this.expressions)
    if (
        isinstance(node, exp.Dot)
        and isinstance(node.this, exp.Identifier)
        and node.this.name == MACRO_SCHEMA
        and isinstance(node.expression, exp.Anonymous | exp.Func)
    ):
        call = node.expression
        if isinstance(call, exp.Anonymous):
            return call.name, list(call.expressions)
        return call.sql_name().lower(), [a for a in call.iter_expressions()]
    return None


def _lambda_bound(node: exp.Expression, name: str) -> bool:
    """Whether ``node`` sits inside a lambda binding ``name``."""
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.Lambda) and any(p.name == name for p in parent.expressions):
            return True
        parent = parent.parent
    return False


def _simple(value: exp.Expression) -> bool:
    return isinstance(value, exp.Literal | exp.Column | exp.Null | exp.Boolean | exp.Paren)


def _substitute(macro: Macro, args: list[exp.Expression]) -> exp.Expression:
    """A copy of ``macro``'s body with ``args`` in place of its parameters."""
    if len(args) != len(macro.params):
        raise InvalidParameterError(
            f"evalstore.{macro.name} takes {len(macro.params)} arguments "
            f"({', '.join(macro.params)}), got {len(args)}"
        )
    values = dict(zip(macro.params, args, strict=True))
    body = macro.body.copy()

    def value(name: str) -> exp.Expression:
        v = values[name].copy()
        return v if _simple(v) else exp.Paren(this=v)

    if macro.table:
        _rename_ctes(body, macro.name)
    bound = _let_bound(macro, body, values)
    for column in list(body.find_all(exp.Column)):
        if column.table == "" and column.name in bound:
            column.replace(exp.Column(this=exp.to_identifier(bound[column.name])))
        elif (
            column.table == "" and column.name in values and not _lambda_bound(column, column.name)
        ):
            column.replace(value(column.name))
        elif (
            not macro.table
            and not column.args.get("db")
            and column.table in values
            and not _lambda_bound(column, column.table)
        ):
            # scalar macro: `scores.psi` is the field psi of the struct argument scores
            target = (
                exp.Column(this=exp.to_identifier(bound[column.table]))
                if column.table in bound
                else value(column.table)
            )
            column.replace(exp.Dot(this=target, expression=column.this.copy()))
    for name, variable in reversed(list(bound.items())):
        # let variable = value in body: [value] mapped by a lambda, first element
        lam = exp.Lambda(this=body, expressions=[exp.to_identifier(variable)])
        body = exp.Bracket(
            this=exp.Transform(this=exp.Array(expressions=[values[name].copy()]), expression=lam),
            expressions=[exp.Literal.number(0)],
        )
    return body


_AGGREGATES = (exp.AggFunc, exp.Window, exp.Subquery, exp.Select)


def _let_bound(
    macro: Macro, body: exp.Expression, values: Mapping[str, exp.Expression]
) -> dict[str, str]:
    """``{parameter: lambda variable}`` for the parameters of a scalar macro to bind once
    (a ``let``): those used more than once whose argument is not a constant or a column.
    Without it, nested helpers copy a large argument into each of its uses, and the
    inlined query grows with the product of the uses (categorical_rows uses its tests
    struct five times, each holding category_tests' list expressions). Not done for a
    body or an argument holding an aggregate, a window function or a subquery (they cannot sit in a
    lambda), nor one still calling macros (their bodies may hold them)."""
    if macro.table or any(
        isinstance(n, _AGGREGATES) or _macro_call(n)
        for tree in (body, *values.values())
        for n in tree.walk()
    ):
        return {}
    uses: dict[str, int] = {}
    for column in body.find_all(exp.Column):
        for name in (column.name if column.table == "" else None, column.table or None):
            if name in values and not _lambda_bound(column, name):
                uses[name] = uses.get(name, 0) + 1
    return {
        name: f"__{macro.name}_{name}_{next(_counter)}"
        for name, count in uses.items()
        if count > 1 and not _simple(values[name].unnest())
    }


_counter = iter(range(1, 1 << 62))


def _rename_ctes(body: exp.Expression, prefix: str) -> None:
    """Give the CTEs of an inlined table macro names of their own (``<macro>_<n>_<cte>``),
    so that two inlined bodies (or one inlined twice) never define the same name once an
    engine's SQL writer hoists every CTE to the top of the query (sqlglot's Spark does)."""
    with_ = body.args.get("with_")
    if with_ is None:
        return
    names = {cte.alias: f"{prefix}_{next(_counter)}_{cte.alias}" for cte in with_.expressions}
    for cte in with_.expressions:
        cte.set("alias", exp.TableAlias(this=exp.to_identifier(names[cte.alias])))
    for table in body.find_all(exp.Table):
        if not table.args.get("db") and table.name in names:
            alias = table.alias
            table.set("this", exp.to_identifier(names[table.name]))
            # keep the name the body's columns use for it
            table.set(
                "alias", exp.TableAlias(this=exp.to_identifier(alias or _old(names, table.name)))
            )


def _old(names: Mapping[str, str], new: str) -> str:
    return next(old for old, renamed in names.items() if renamed == new)


def _text_argument(macro: str, args: list[exp.Expression], index: int) -> str:
    arg = args[index]
    if not (isinstance(arg, exp.Literal) and arg.is_string):
        raise InvalidParameterError(
            f"evalstore.{macro}: argument {index + 1} must be a constant text naming a "
            f"relation when the query is inlined, got {arg.sql(dialect='duckdb')}"
        )
    return arg.this


def _relation(name: str, args: list[exp.Expression], tables: Mapping[str, str]) -> exp.Expression:
    """The table expression a relation helper's call names."""
    if name == "relation":
        key = _text_argument(name, args, 0)
    elif name == "model_table":
        key = f"{_text_argument(name, args, 0)}.{_text_argument(name, args, 1)}"
    else:  # system_table(model, name): evalstore.<name>
        key = f"evalstore.{_text_argument(name, args, 1)}"
    target = tables.get(key, key)
    parsed = sqlglot.parse_one(f"SELECT * FROM {target}", read="duckdb")
    return parsed.args["from_"].this


def inline(
    sql: str | exp.Expression,
    tables: Mapping[str, str] | None = None,
    helpers: Mapping[str, Helper] | None = None,
) -> exp.Expression:
    """``sql`` (DuckDB dialect) with every ``evalstore.<macro>`` call replaced by its
    body, recursively; see the module docstring. ``tables`` maps the text arguments of
    the relation helpers (``'m.numeric_values'``, ``'m.labels'``, ``'evalstore.models'``)
    to the relations to read instead; ``helpers`` replaces macros by per-dialect SQL."""
    tree = sqlglot.parse_one(sql, read="duckdb") if isinstance(sql, str) else sql.copy()
    known = macros()
    tables = tables or {}
    helpers = helpers or {}
    for _ in range(MAX_DEPTH * 4):
        calls = [(node, call) for node in tree.walk() if (call := _macro_call(node))]
        if not calls:
            return tree
        for node, (name, args) in calls:
            if any(_macro_call(n) for a in args for n in a.walk()):
                continue  # innermost calls first: an argument is inlined before its use
            replacement = _expand(node, name, args, known, tables, helpers)
            if node is tree:
                tree = replacement
            else:
                node.replace(replacement)
    raise InvalidParameterError(f"macro calls nest deeper than {MAX_DEPTH} levels")


def _expand(
    node: exp.Expression,
    name: str,
    args: list[exp.Expression],
    known: Mapping[str, Macro],
    tables: Mapping[str, str],
    helpers: Mapping[str, Helper],
) -> exp.Expression:
    alias = node.args.get("alias") if isinstance(node, exp.Table) else None
    if name in helpers:
        produced = helpers[name](args)
        body = sqlglot.parse_one(produced, read="duckdb") if isinstance(produced, str) else produced
    elif name in RELATION_HELPERS:
        table = _relation(name, args, tables)
        if alias is not None:
            table.set("alias", alias.copy())
        return table
    elif name in known:
        body = _substitute(known[name], args)
    else:
        raise InvalidParameterError(f"evalstore.{name} is not a macro of sql/ that can be inlined")
    if isinstance(node, exp.Table):
        alias_node = (
            alias.copy() if alias is not None else exp.TableAlias(this=exp.to_identifier(name))
        )
        return exp.Subquery(this=body, alias=alias_node)
    return body if _simple(body) else exp.Paren(this=body)


def rewrite_asof_joins(tree: exp.Expression, dialect: str = "spark") -> exp.Expression:
    """Replace each ``ASOF LEFT JOIN r ON <equalities> AND <probe> >= r.<v>`` (or
    ``<probe> <= r.<v>``) by one sort per key, for engines without ASOF joins.

    The left rows (the FROM and the joins before the ASOF join, each relation's columns
    the query reads kept as one struct named by its alias) and the right rows (the
    columns of ``r`` the query reads, as a struct) are put in one sequence, sorted by
    value (the probe, or ``r.<v>``) within the equality keys; each left row's match is
    the last right row at or before it (``>=``: right rows first among equal values), or
    the first at or after it (``<=``: the same over descending values), carried by
    ``last_value ... IGNORE NULLS`` over a running frame. The FROM and the joins up to
    the ASOF join become that one subquery, whose struct columns carry the aliases'
    names, so the rest of the SELECT (``a.x``, ``a.*``, ``r.cum``, later joins) reads
    them unchanged: no range join (every probe against every right row), no DISTINCT
    over the probes and no join back (the former rewrite's two equi-joins). A left row
    whose probe or a key is NULL matches nothing, as in the ASOF join; a right row whose
    value is NULL is never matched.

    Exact when ``r.<v>`` is distinct within the keys, as in every ASOF join of sql/
    (cumulative counts keyed by value; with ties the match is one of the tied rows, as
    DuckDB's, not necessarily the same one). A SELECT that reads a column without its
    relation's alias, or ``*``, falls back to the former rewrite
    (:func:`_rewrite_by_probes`: distinct probes, then two equi-joins), which needs no
    alias. ``dialect`` writes the struct of a relation's whole row (``a.*`` read):
    ``STRUCT(a.*)`` on Spark, the alias itself on DuckDB (the golden tests)."""
    for number in range(1 << 30):
        # one at a time, outermost first: a rewrite moves the relations before the join
        # (and any ASOF join inside them) into a new subquery, rewritten in a later round
        join = next(
            (j for j in tree.find_all(exp.Join) if (j.args.get("method") or "").upper() == "ASOF"),
            None,
        )
        if join is None:
            break
        select = join.parent
        if not isinstance(select, exp.Select):
            raise InvalidParameterError("an ASOF join outside a SELECT cannot be rewritten")
        parts = _asof_parts(join)
        joins = select.args.get("joins") or []
        position = joins.index(join)
        skip = {id(n) for part in (select.args["from_"], *joins[: position + 1])
                for n in part.walk()}  # fmt: skip
        left = [select.args["from_"].this, *(j.this for j in joins[:position])]
        aliases = [rel.alias_or_name for rel in left]
        read = _read_columns(select, skip, {*aliases, parts.alias})
        if read is None or any(not rel.alias_or_name for rel in left):
            _rewrite_by_probes(select, join, parts, number)
        else:
            _rewrite_by_sort(select, join, parts, number, left, read, dialect)
    return tree


@dataclass(frozen=True)
class _AsofParts:
    """An ASOF join's right relation, alias, ``(right, left)`` key pairs, probe, right
    value column and direction (``at_or_before``: the greatest ``r.v <= probe``)."""

    right: exp.Expression
    alias: str
    pairs: list[tuple[exp.Expression, exp.Expression]]
    probe: exp.Expression
    value: exp.Column
    at_or_before: bool


def _asof_parts(join: exp.Join) -> _AsofParts:
    right = join.this
    alias = right.alias_or_name
    on = join.args["on"]
    conditions = list(on.flatten()) if isinstance(on, exp.And) else [on]
    equal = [c for c in conditions if isinstance(c, exp.EQ)]
    ranges = [c for c in conditions if isinstance(c, exp.GTE | exp.LTE)]
    if len(ranges) != 1 or len(equal) + 1 != len(conditions):
        raise InvalidParameterError(f"cannot rewrite the ASOF join on {on.sql()}")
    cond = ranges[0]
    probe, value, at_or_before = cond.this, cond.expression, isinstance(cond, exp.GTE)
    if isinstance(probe, exp.Column) and probe.table == alias:
        probe, value, at_or_before = value, probe, not at_or_before
    pairs = [
        (c.this, c.expression)
        if isinstance(c.this, exp.Column) and c.this.table == alias
        else (c.expression, c.this)
        for c in equal
    ]
    return _AsofParts(right, alias, pairs, probe, value, at_or_before)


def _read_columns(
    select: exp.Select, skip: set[int], aliases: set[str]
) -> dict[str, set[str] | None] | None:
    """``{alias: columns read}`` (None: the whole row, ``alias.*``) by ``select`` outside
    the nodes in ``skip`` (the FROM and joins the rewrite replaces); None when it reads a
    column without an alias or ``*`` (its relation is then unknown)."""
    read: dict[str, set[str] | None] = {a: set() for a in aliases}
    for node in select.walk(prune=lambda n: id(n) in skip):
        if id(node) in skip or node.find_ancestor(exp.Select) is not select:
            continue
        if isinstance(node, exp.Star) and node.parent is select:
            return None  # SELECT *
        if not isinstance(node, exp.Column) or node.args.get("db"):
            continue
        if node.table == "":
            if not (
                isinstance(node.this, exp.Star)
                or node.name in _output_names(select)
                or _lambda_bound(node, node.name)
            ):
                return None
            continue
        if node.table in read:
            fields = read[node.table]
            if isinstance(node.this, exp.Star):
                read[node.table] = None
            elif fields is not None:
                fields.add(node.name)
    return read


def _output_names(select: exp.Select) -> set[str]:
    return {e.alias for e in select.expressions if isinstance(e, exp.Alias)}


def _row_struct(alias: str, fields: set[str] | None, dialect: str) -> exp.Expression:
    """The struct of ``alias``'s row: the named ``fields``, or every column (None)."""
    if fields is None:
        if dialect == "duckdb":
            return exp.column(alias)  # DuckDB: a relation's alias is its row as a struct
        return exp.Struct(expressions=[exp.Column(this=exp.Star(), table=exp.to_identifier(alias))])
    return exp.Struct(
        expressions=[
            exp.PropertyEQ(this=exp.to_identifier(f), expression=exp.column(f, table=alias))
            for f in sorted(fields)
        ]
    )


def _rewrite_by_sort(
    select: exp.Select,
    join: exp.Join,
    parts: _AsofParts,
    number: int,
    left: list[exp.Expression],
    read: dict[str, set[str] | None],
    dialect: str,
) -> None:
    """:func:`rewrite_asof_joins`' rewrite of one ASOF join: left rows and right rows in
    one sequence, no join."""
    joins = select.args.get("joins") or []
    position = joins.index(join)
    keys = [f"__k{i}" for i in range(len(parts.pairs))]
    carried = [rel.alias_or_name for rel in left if read[rel.alias_or_name] != set()]
    alias = parts.alias
    # the left rows: a struct per relation read, the keys and the probe
    lefts = exp.select(
        *[exp.alias_(_row_struct(a, read[a], dialect), a) for a in carried],
        *[exp.alias_(lk.copy(), k) for k, (_, lk) in zip(keys, parts.pairs, strict=True)],
        exp.alias_(parts.probe.copy(), "__v"),
        exp.alias_(exp.Literal.number(0), "__side"),
        exp.alias_(exp.Null(), "__row"),
    )
    lefts.set("from_", select.args["from_"].copy())
    lefts.set("joins", [j.copy() for j in joins[:position]])
    source = parts.right.copy()
    value = exp.column(parts.value.name, table=alias)
    fields = read[alias]
    struct = _row_struct(
        alias, fields or ({parts.value.name} if fields is not None else None), dialect
    )
    row = exp.Case(ifs=[exp.If(this=exp.Not(this=exp.Is(this=value.copy(), expression=exp.Null())),
                                true=struct)])  # fmt: skip
    rights = exp.select(
        *[exp.alias_(exp.Null(), a) for a in carried],
        *[exp.alias_(exp.column(r.name, table=alias) if isinstance(r, exp.Column) else r.copy(), k)
          for k, (r, _) in zip(keys, parts.pairs, strict=True)],
        exp.alias_(value, "__v"),
        exp.alias_(exp.Literal.number(1), "__side"),
        exp.alias_(row, "__row"),
    ).from_(source)  # fmt: skip
    both = exp.union(lefts, rights, distinct=False)
    order = "__v, __side DESC" if parts.at_or_before else "__v DESC, __side DESC"
    unmatched = " OR ".join(f"{name} IS NULL" for name in ["__v", *keys])
    partition = f"PARTITION BY {', '.join(keys)} " if keys else ""
    match = sqlglot.parse_one(
        f"SELECT CASE WHEN {unmatched} THEN NULL ELSE last_value(__row) IGNORE NULLS OVER ("
        f"{partition}ORDER BY {order} "
        "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) END AS x FROM x",
        read="duckdb",
    ).expressions[0].this  # fmt: skip
    windowed = exp.select(
        *[exp.column(a) for a in carried], exp.column("__side"), exp.alias_(match, alias)
    ).from_(both.subquery("__u"))
    sequence = (
        exp.select(*[exp.column(a) for a in [*carried, alias]])
        .from_(windowed.subquery("__w"))
        .where("__side = 0")
    )
    select.set("from_", exp.From(this=sequence.subquery(f"__sorted{number}")))
    select.set("joins", list(joins[position + 1 :]))


def _rewrite_by_probes(select: exp.Select, join: exp.Join, parts: _AsofParts, number: int) -> None:
    """The former rewrite of one ASOF join (for a SELECT that reads columns without their
    relation's alias): the distinct probes (the equality keys and the probe value, from
    the FROM and the joins before the ASOF join) and the right rows' values in one
    sequence sorted by value within the keys, the match carried by ``last_value ...
    IGNORE NULLS``; then a LEFT JOIN of the probes' matches on the keys and the probe,
    and a LEFT JOIN of ``r`` on the keys and the matched value."""
    right, alias, pairs = parts.right, parts.alias, parts.pairs
    probe, value, at_or_before = parts.probe, parts.value, parts.at_or_before
    keys = [f"__k{i}" for i in range(len(pairs))]
    joins = select.args.get("joins") or []
    position = joins.index(join)
    # the distinct probes, from the relations joined before the ASOF join
    probes = exp.select(
        *[exp.alias_(left.copy(), k) for k, (_, left) in zip(keys, pairs, strict=True)],
        exp.alias_(probe.copy(), "__v"),
    ).distinct()
    probes.set("from_", select.args["from_"].copy())
    probes.set("joins", [j.copy() for j in joins[:position]])
    source = right.copy()
    source.set("alias", None)
    rights = exp.select(
        *[exp.alias_(r.this.copy() if isinstance(r, exp.Column) else r.copy(), k)
          for k, (r, _) in zip(keys, pairs, strict=True)],
        exp.alias_(exp.column(value.name), "__v"),
        exp.alias_(exp.Literal.number(1), "__side"),
    ).from_(source)  # fmt: skip
    both = exp.union(
        exp.select("*", exp.alias_(exp.Literal.number(0), "__side")).from_(probes.subquery("__p")),
        rights,
        distinct=False,
    )
    partition = ", ".join(keys)
    if at_or_before:  # greatest r.v <= probe: right rows first among equal values
        carried = (
            "last_value(CASE WHEN __side = 1 THEN __v END) IGNORE NULLS OVER ("
            f"PARTITION BY {partition} ORDER BY __v, __side DESC "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
        )
    else:  # least r.v >= probe: the same running frame over descending values (a
        # frame to UNBOUNDED FOLLOWING is recomputed per row by Spark: quadratic)
        carried = (
            "last_value(CASE WHEN __side = 1 THEN __v END) IGNORE NULLS OVER ("
            f"PARTITION BY {partition} ORDER BY __v DESC, __side DESC "
            "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
        )
    matched = sqlglot.parse_one(
        f"SELECT {partition}, __v, __match FROM (SELECT *, {carried} AS __match "
        "FROM x) AS __s WHERE __side = 0",
        read="duckdb",
    )
    matched.find(exp.Subquery).this.args["from_"].set("this", both.subquery("__u"))
    m = f"__match{number}"
    first = exp.Join(
        this=matched.subquery(m),
        side="LEFT",
        on=exp.and_(
            *[exp.NullSafeEQ(this=exp.column(k, table=m), expression=left.copy())
              for k, (_, left) in zip(keys, pairs, strict=True)],
            exp.EQ(this=exp.column("__v", table=m), expression=probe.copy()),
        ),
    )  # fmt: skip
    second = exp.Join(
        this=right.copy(),
        side="LEFT",
        on=exp.and_(
            *[exp.EQ(this=exp.column(r.name, table=alias), expression=exp.column(k, table=m))
              for k, (r, _) in zip(keys, pairs, strict=True)],
            exp.EQ(this=exp.column(value.name, table=alias),
                   expression=exp.column("__match", table=m)),
        ),
    )  # fmt: skip
    select.set("joins", [*joins[:position], first, second, *joins[position + 1 :]])


def transpile(
    tree: exp.Expression,
    dialect: str,
    rewrites: Sequence[Callable[[exp.Expression], exp.Expression]] = (),
) -> str:
    """``tree`` (inlined DuckDB SQL) written in ``dialect``, after ``rewrites``."""
    tree = tree.copy()
    for rewrite in rewrites:
        tree = rewrite(tree)
    return tree.sql(dialect=dialect)


@dataclass(frozen=True)
class Split:
    """A table macro's call cut in two (:func:`split`): ``engine`` maps the name of each
    CTE the driver reads to the query computing it (to inline and run on the engine),
    and ``driver`` is the rest of the body, reading those names as tables."""

    engine: dict[str, exp.Expression]
    driver: exp.Expression
    #: the CTEs before the cut, in order (name, body): an engine may compute them one by
    #: one as views and keep those read more than once (:func:`shared_ctes`)
    ctes: tuple[tuple[str, exp.Expression], ...] = ()


def _calls(tree: exp.Expression) -> set[str]:
    return {call[0] for node in tree.walk() if (call := _macro_call(node))}


def split(
    macro: str,
    args: Sequence[exp.Expression],
    driver_helpers: Sequence[str],
    at: str | None = None,
) -> Split:
    """Cut the body of table macro ``macro`` called with ``args`` at its first CTE that
    calls one of ``driver_helpers`` (per-cell scalar helpers over small lists, such as
    ``categorical_methods``), or at the CTE named ``at`` (its name in the macro) when that
    comes first: that CTE, the ones after it and the final SELECT run on the driver
    (DuckDB, with the installed macros: the very definitions the store uses); the CTEs
    they read from before the cut are computed by the engine. A body without such a CTE
    runs wholly on the engine (``driver`` selects from its one result, ``result``).
    ``at`` lets the per-cell tail of a macro (formatting, intervals over one row per
    cell) run on the driver even when it calls no driver helper; a name the macro does
    not define raises :class:`InvalidParameterError`."""
    found = macros().get(macro)
    if found is None or not found.table:
        raise InvalidParameterError(f"evalstore.{macro} is not a table macro of sql/")
    body = _substitute(found, list(args))
    with_ = body.args.get("with_")
    ctes = list(with_.expressions) if with_ is not None else []
    wanted = set(driver_helpers)
    cut = next((i for i, cte in enumerate(ctes) if _calls(cte.this) & wanted), None)
    if at is not None:
        named = re.compile(rf"{re.escape(macro)}_\d+_{re.escape(at)}")
        position = next((i for i, cte in enumerate(ctes) if named.fullmatch(cte.alias)), None)
        if position is None:
            raise InvalidParameterError(f"evalstore.{macro} has no CTE named {at!r} to cut at")
        cut = position if cut is None else min(cut, position)
    if cut is None:
        return Split({"result": body}, sqlglot.parse_one("SELECT * FROM result"))
    before, after = ctes[:cut], ctes[cut:]
    driver = body.copy()
    driver.set("with_", exp.With(expressions=[c.copy() for c in after]))
    read = {t.name for t in driver.find_all(exp.Table) if not t.args.get("db")}
    engine = {}
    for cte in before:
        if cte.alias in read:
            query = exp.select("*").from_(exp.to_table(cte.alias))
            query.set("with_", exp.With(expressions=[c.copy() for c in before]))
            engine[cte.alias] = query
    return Split(engine, driver, tuple((c.alias, c.this.copy()) for c in before))


def shared_ctes(parts: Split) -> dict[str, int]:
    """``{cte: readers}`` for the CTEs an engine needs to compute ``parts.engine``: how
    many later CTEs or results read each (transitively needed ones only)."""
    bodies = dict(parts.ctes)
    readers: dict[str, int] = {}
    needed = list(parts.engine)
    seen: set[str] = set()
    while needed:
        name = needed.pop()
        if name in seen:
            continue
        seen.add(name)
        for table in bodies[name].find_all(exp.Table):
            if not table.args.get("db") and table.name in bodies:
                readers[table.name] = readers.get(table.name, 0) + 1
                needed.append(table.name)
    for name in parts.engine:
        readers[name] = readers.get(name, 0) + 1
    return {name: readers.get(name, 0) for name in bodies if name in seen}
