"""What to compare with what: references, analysis windows and row restrictions.

Every metric family takes the same words for the same things, and this module turns
them into the arguments of the SQL macros (``evalstore.drift_pairs`` and the macros
built on it):

``reference``
    ``"training"`` or ``"validation"``: rows of that env (with ``version``, only the
    dataset that version was trained/validated on, as registered); ``{"dataset": tag}``;
    a ``(start, end)`` time range of serving rows; ``{"previous": n}``, the n preceding
    non-empty windows (rolling).
``window``
    an interval string (``"15 minutes"``, ``"1 day"``): time buckets of serving rows;
    an int: chunks of that many rows in time order; ``{"chunks": n}``: n chunks of the
    rows in time order (``ts``, then ``example_id``), of near-equal size: the row of
    0-based rank r of N goes to chunk ``floor(r * n / N)``, so the ``N mod n`` extra rows
    are spread one each over the chunks (evalstore's default, ``"split": "even"``);
    ``{"chunks": n, "split": "nannyml"}``: NannyML's ``CountBasedChunker`` (default
    ``incomplete='keep'``): chunks of ``s = floor(N / n)`` rows, row r in chunk
    ``floor(r / s)``, so the remainder is a last partial chunk (``N = 10, n = 4``: chunks
    of 2 rows, five of them; ``N = 11, n = 4``: five of 2 rows and one of 1); when
    ``n > N``, which NannyML refuses, one row per chunk. The ``variant`` of each result
    row then ends with :data:`NANNYML_SPLIT_VARIANT`.
``version``
    analyse only the examples this version predicted (and its own score/prediction).
``where``
    a SQL predicate over the model's feature columns, e.g. ``"region = 'north'"``,
    parsed with sqlglot and checked on DuckDB's parse against the allow-list of
    :mod:`evalstore.core.sql_policy`: one boolean expression over known columns, no
    subqueries, only read-only functions without side effects.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp

from evalstore.core.identifiers import check_model_name, quote
from evalstore.core.layout import schema_prefix
from evalstore.core.registry import to_timestamp
from evalstore.core.sql_policy import UnsafeSqlError, check_expression, check_nesting
from evalstore.errors import InvalidParameterError

if TYPE_CHECKING:
    from evalstore.core.db import Cleanup

Reference = str | Mapping[str, Any] | tuple[Any, Any]
Window = str | int | Mapping[str, Any]
_view_ids = itertools.count()
#: ``split`` values of ``window={"chunks": n, "split": ...}`` (see the module docstring).
CHUNK_SPLITS = ("even", "nannyml")
#: Appended to the ``variant`` of results windowed with ``{"chunks": n, "split": "nannyml"}``.
NANNYML_SPLIT_VARIANT = "chunks split as NannyML (floor(rows / n) rows each, remainder last)"


@dataclass(frozen=True)
class Selection:
    """Arguments of ``evalstore.drift_pairs`` (in order) after :func:`resolve`."""

    ref_env: str | None = None
    ref_dataset: str | None = None
    ref_start: datetime | None = None
    ref_end: datetime | None = None
    ana_env: str | None = "serving"
    ana_dataset: str | None = None
    ana_start: datetime | None = None
    ana_end: datetime | None = None
    width: str | None = None
    chunk_rows: int | None = None
    chunks: int | None = None
    previous: int = 0

    def args(self) -> list[Any]:
        return [
            self.ref_env, self.ref_dataset, self.ref_start, self.ref_end, self.ana_env,
            self.ana_dataset, self.ana_start, self.ana_end, self.width, self.chunk_rows,
            self.chunks, self.previous,
        ]  # fmt: skip

    @property
    def placeholders(self) -> str:
        """``?, ?, ...``: one bound parameter per item of :meth:`args`."""
        return ", ".join("?" for _ in self.args())

    def describe_reference(self) -> str:
        if self.previous > 0:
            return f"previous {self.previous} windows"
        if self.previous < 0:
            return "every other window"
        parts = [f"env={self.ref_env}"] if self.ref_env else []
        if self.ref_dataset:
            parts.append(f"dataset={self.ref_dataset}")
        if self.ref_start or self.ref_end:
            parts.append(f"ts in [{self.ref_start}, {self.ref_end})")
        return ", ".join(parts) or "all rows"


def window_args(window: Window) -> dict[str, Any]:
    """``width`` / ``chunk_rows`` / ``chunks`` for a ``window`` parameter."""
    if isinstance(window, str):
        return {"width": window}
    if isinstance(window, int) and not isinstance(window, bool):
        if window < 1:
            raise InvalidParameterError(f"window={window} rows per chunk must be at least 1")
        return {"chunk_rows": window}
    if isinstance(window, Mapping) and set(window) in ({"chunks"}, {"chunks", "split"}):
        chunks = window["chunks"]
        if not isinstance(chunks, int) or isinstance(chunks, bool) or chunks < 1:
            raise InvalidParameterError(f"window={{'chunks': {chunks!r}}} needs a positive int")
        split = window.get("split", "even")
        if split not in CHUNK_SPLITS:
            raise InvalidParameterError(
                f"window={{'chunks': {chunks}, 'split': {split!r}}}: split must be one of "
                + ", ".join(map(repr, CHUNK_SPLITS))
            )
        # chunk_rows = 0 asks the SQL (evalstore.chunk_index) for NannyML's chunk size
        return {"chunks": chunks} if split == "even" else {"chunks": chunks, "chunk_rows": 0}
    raise InvalidParameterError(
        f"window={window!r} is not understood: pass an interval such as '1 day', a number "
        "of rows per chunk such as 5000, {'chunks': 10} or {'chunks': 10, 'split': 'nannyml'}"
    )


def nannyml_split(window: Window) -> bool:
    """Whether ``window`` is ``{"chunks": n, "split": "nannyml"}``."""
    return isinstance(window, Mapping) and window.get("split") == "nannyml"


def name_split(table: pa.Table, window: Window) -> pa.Table:
    """``table`` with :data:`NANNYML_SPLIT_VARIANT` appended to each ``variant`` (``"; "``
    after a non-empty one) when ``window`` asks for NannyML's chunk split; else ``table``."""
    if not nannyml_split(window) or "variant" not in table.column_names:
        return table
    variants = [
        NANNYML_SPLIT_VARIANT if not v else f"{v}; {NANNYML_SPLIT_VARIANT}"
        for v in table.column("variant").to_pylist()
    ]
    position = table.column_names.index("variant")
    return table.set_column(position, "variant", pa.array(variants, pa.string()))


def check_width(con: duckdb.DuckDBPyConnection, width: str) -> None:
    try:
        seconds = con.execute("SELECT epoch(CAST(? AS INTERVAL))", [width]).fetchall()[0][0]
    except duckdb.Error as error:
        raise InvalidParameterError(
            f"window={width!r} is not an interval: use e.g. '15 minutes', '1 hour', '1 day'"
        ) from error
    if not seconds or seconds <= 0:
        raise InvalidParameterError(f"window={width!r} must be a positive interval")


def reference_args(reference: Reference, registration: Mapping[str, Any] | None) -> dict[str, Any]:
    """``ref_*`` / ``previous`` arguments for a ``reference`` parameter."""
    if reference in ("training", "validation"):
        args: dict[str, Any] = {"ref_env": reference}
        if registration is not None:
            args["ref_dataset"] = registration.get(f"{reference}_dataset")
        return args
    if isinstance(reference, str) and reference.startswith("dataset:"):
        reference = {"dataset": reference.removeprefix("dataset:")}
    if isinstance(reference, Mapping) and set(reference) == {"dataset"}:
        if not isinstance(reference["dataset"], str) or not reference["dataset"]:
            raise InvalidParameterError("reference={'dataset': tag} needs a string tag, not empty")
        return {"ref_dataset": reference["dataset"]}
    if isinstance(reference, Mapping) and set(reference) == {"previous"}:
        n = reference["previous"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise InvalidParameterError("reference={'previous': n} needs a positive int n")
        return {"previous": n}
    if isinstance(reference, tuple | list) and len(reference) == 2:
        start = to_timestamp(reference[0], "reference start")
        end = to_timestamp(reference[1], "reference end")
        if start is not None and end is not None and start >= end:
            raise InvalidParameterError(f"reference time range {start} .. {end} is empty")
        return {"ref_env": "serving", "ref_start": start, "ref_end": end}
    raise InvalidParameterError(
        f"reference={reference!r} is not understood: pass 'training', 'validation', "
        "{'dataset': tag} (or 'dataset:tag'), a (start, end) time range, or {'previous': n}"
    )


def check_reference(
    con: duckdb.DuckDBPyConnection, model: str, reference: Reference, selection: Selection
) -> None:
    """Refuse a ``reference`` dataset tag (``{'dataset': tag}``, ``'dataset:tag'``) that no
    feature row of ``model`` carries, listing the tags it has (an unknown tag would
    otherwise give every cell an empty reference)."""
    ref_dataset = selection.ref_dataset
    if ref_dataset is None or reference in ("training", "validation"):
        return
    features = f"{schema_prefix(con, model)}features"
    known = [
        tag
        for (tag,) in con.execute(
            f"SELECT DISTINCT dataset FROM {features} WHERE dataset IS NOT NULL ORDER BY 1"
        ).fetchall()
    ]
    if ref_dataset not in known:
        raise InvalidParameterError(
            f"reference dataset {ref_dataset!r} holds no rows of model {model!r}; known datasets: "
            + (", ".join(map(repr, known)) or "none (log features with dataset='tag')")
        )


def checked_window_args(con: duckdb.DuckDBPyConnection, window: Window) -> dict[str, Any]:
    """:func:`window_args` of ``window``, an interval width checked by :func:`check_width`."""
    windows = window_args(window)
    if "width" in windows:
        check_width(con, windows["width"])
    return windows


def resolve(
    con: duckdb.DuckDBPyConnection,
    reference: Reference,
    window: Window,
    registration: Mapping[str, Any] | None = None,
    since: Any = None,
    until: Any = None,
) -> Selection:
    """Turn ``reference``/``window`` (and an optional analysis time range) into macro args."""
    windows = checked_window_args(con, window)
    return Selection(
        **reference_args(reference, registration),
        **windows,
        ana_start=to_timestamp(since, "since"),
        ana_end=to_timestamp(until, "until"),
    )


def check_predicate(where: str, columns: Sequence[str], name: str = "where") -> str:
    """Parse ``where`` with sqlglot and return it re-rendered for DuckDB, once it is safe.

    It must be one boolean expression over ``columns`` (the model's feature columns and
    ``example_id``, ``env``, ``dataset``, ``ts``): no statements or subqueries, and only
    functions on the allow-list of :mod:`evalstore.core.sql_allowlist` (checked on DuckDB's own
    parse of the returned text, so nothing with side effects, no file, setting or
    sequence access, no ``sleep_ms``). ``name`` is the parameter named in errors
    (``where``, or a ``by=`` predicate's label). Brackets nested deeper than
    :data:`~evalstore.core.sql_policy.MAX_NESTING` are refused.
    """
    if not isinstance(where, str) or not where.strip():
        raise InvalidParameterError(f"{name} must be a non-empty SQL predicate string")
    label = f"{name}={where!r}"
    try:
        check_nesting((token.text for token in sqlglot.tokenize(where, read="duckdb")), label)
        parsed = sqlglot.parse(where, read="duckdb")
    except UnsafeSqlError:
        raise
    except RecursionError:
        raise UnsafeSqlError("too_complex", f"{label} is nested too deeply") from None
    except Exception as error:  # sqlglot raises more than ParseError on odd input
        raise InvalidParameterError(f"{label} is not valid SQL: {error}") from None
    if len(parsed) != 1 or not isinstance(parsed[0], exp.Condition):
        # statements (DROP, SET, PRAGMA, ATTACH, DELETE, SELECT, ...) are not conditions
        raise InvalidParameterError(f"{label} must be a single predicate expression")
    tree = parsed[0]
    if isinstance(tree, exp.DDL | exp.DML) or tree.find(exp.Query, exp.Subquery):
        raise InvalidParameterError(f"{label} may not contain statements or subqueries")
    known = {c.lower() for c in columns}
    for column in tree.find_all(exp.Column):
        if column.table or column.name.lower() not in known:
            raise InvalidParameterError(
                f"{label} refers to unknown column {column.sql()!r}; known columns: "
                + ", ".join(sorted(columns))
            )
    try:
        rendered = tree.sql(dialect="duckdb")
    except RecursionError:
        raise UnsafeSqlError("too_complex", f"{label} is nested too deeply") from None
    except Exception as error:
        raise InvalidParameterError(f"{label} cannot be rendered as DuckDB SQL: {error}") from None
    try:
        check_expression(rendered)
    except UnsafeSqlError as error:
        if error.function:
            raise UnsafeSqlError(
                error.code,
                f"{label} may not call {error.function}(): {error.reason}; a predicate may "
                "use read-only functions (evalstore.core.sql_allowlist.ALLOWED_FUNCTIONS)",
                function=error.function,
                reason=error.reason,
            ) from None
        raise UnsafeSqlError(error.code, f"{label} is refused: {error}") from None
    return rendered


def check_named_predicates(item: Mapping[Any, Any], columns: Sequence[str]) -> dict[str, str]:
    """The ``{name: predicate}`` slices of a ``by`` parameter, each predicate checked by
    :func:`check_predicate` over ``columns``; at least one, named by non-empty strings."""
    if not item or not all(isinstance(k, str) and k for k in item):
        raise InvalidParameterError(
            "by={name: predicate}: give at least one slice, named by non-empty strings"
        )
    return {
        name: check_predicate(text, columns, name=f"by[{name!r}]") for name, text in item.items()
    }


def restricted_view(
    con: duckdb.DuckDBPyConnection,
    model: str,
    relation: str,
    where: str | None,
    version: str | None,
    feature_columns: Sequence[str],
    select: str | None = None,
) -> str:
    """Name of a temporary view of ``<model>.<relation>`` restricted to a slice/version.

    ``relation`` is a long-format view (``numeric_values``, ``category_values``); or
    ``select`` gives the SQL of such rows (then ``relation`` is unused and a temporary
    view is always made). With neither ``where`` nor ``version`` it is the model's own
    view. The caller drops the temporary view when done (:func:`drop_view`).
    """
    check_model_name(model)
    s = schema_prefix(con, model).removesuffix(".")
    if where is None and version is None and select is None:
        return f"{model}.{relation}"
    name = f"evalstore_slice_{next(_view_ids)}"
    rows = f"({select})" if select is not None else f"{s}.{quote(relation)}"
    conditions = []
    if where is not None:
        predicate = check_predicate(where, [*feature_columns, "example_id", "env", "dataset", "ts"])
        conditions.append(
            f"(v.example_id, v.env) IN (SELECT example_id, env FROM {s}.features WHERE {predicate})"
        )
    if version is not None:
        # A view cannot hold a bound parameter: the version goes into a one-row table.
        chosen = quote(f"{name}_version")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {chosen} AS SELECT CAST(? AS VARCHAR) AS chosen_version",
            [version],
        )
        # Only serving rows are restricted to the examples the version predicted: the
        # training/validation reference (its registered dataset) was never predicted.
        conditions.append(
            f"(v.env <> 'serving' OR v.example_id IN (SELECT example_id FROM {s}.predictions "
            f"WHERE version = (SELECT chosen_version FROM {chosen}))) "
            f"AND (v.version IS NULL OR v.version = (SELECT chosen_version FROM {chosen}))"
        )
    body = f"SELECT v.* FROM {rows} AS v WHERE " + " AND ".join(conditions or ["true"])
    return temp_view(con, name, body)


def temp_view(con: duckdb.DuckDBPyConnection, name: str, body: str) -> str:
    """Create (or replace) the temporary view ``name`` as the query ``body``; returns its
    qualified name ``temp.main.<name>`` (what :func:`drop_temp_view` drops)."""
    con.execute(f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS {body}")
    return f"temp.main.{name}"


def drop_temp_view(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop a view made by :func:`temp_view` (any other relation, such as a model's own
    view, is left alone)."""
    if name.startswith("temp.main."):
        con.execute(f"DROP VIEW IF EXISTS {quote(name.removeprefix('temp.main.'))}")


def drop_view(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop a view made by :func:`restricted_view` (a model's own view is left alone)."""
    if name.startswith("temp.main."):
        drop_temp_view(con, name)
        con.execute(f"DROP TABLE IF EXISTS {quote(name.removeprefix('temp.main.') + '_version')}")


def value_views(
    con: duckdb.DuckDBPyConnection,
    model: str,
    where: str | None,
    version: str | None,
    feature_columns: Sequence[str],
    later: Cleanup,
) -> tuple[str, str]:
    """The model's numeric and categorical long-format relations (``numeric_values``,
    ``category_values``), each a :func:`restricted_view` dropped by ``later``."""
    views = []
    for relation in ("numeric_values", "category_values"):
        views.append(restricted_view(con, model, relation, where, version, feature_columns))
        later.add(drop_view, con, views[-1])
    return views[0], views[1]
