"""Performance, quality and skew on Spark, and the ``version=`` / ``where=`` restriction
of every family: :class:`SparkFamilies`, a mixin of :class:`evalstore.engines.spark.SparkEngine`.

Each family runs the store's own macro (``performance_binary`` / ``_multiclass`` /
``_regression``, ``quality_numeric_checks`` and ``_categorical_checks``, ``skew``)
inlined and transpiled to Spark SQL (:mod:`evalstore.engines.sql_inline`,
:mod:`evalstore.engines.spark_sql`), cut in two by
:func:`~evalstore.engines.sql_inline.split`: the CTEs that read rows (the big part:
joins, counts, ranks, sums per cell) run on Spark; the per-cell tail (one row per
window, version, slice and metric or check: intervals, reasons, variant texts) runs on
the driver's in-memory DuckDB with the installed macros, so its numbers and texts are
the store's. The driver then does what the store's Python front-end does after its
macro, with the store's own functions: the bootstrap intervals
(:func:`evalstore.metrics.bootstrap.bootstrap_intervals`), the empty slices and the
order (:func:`evalstore.metrics.performance._assemble`), quality's shares over the
chosen denominator, and skew's distances (the engine's drift).

The lake has no ``evalstore.batches`` nor ``evalstore.label_horizons`` (the store's
cache of label delays): the engine gives ``evalstore.label_horizon`` empty relations for
them, so it computes the delay quantile from every label (its uncached branch, the
same number), and the labels, latest labels and predictions with ``example_key`` (=
``example_id``) and ``superseded_by`` (the next ``batch_id`` of the example's labels).

``where=`` is parsed and checked by the store's predicate checker
(:func:`evalstore.core.windows.check_predicate`, sqlglot and the SQL allow-list) and
then written as Spark SQL by sqlglot, never pasted as given; ``version=`` goes in as a
quoted constant. Restrictions are temporary views over the lake views, as the store's
:func:`evalstore.core.windows.restricted_view` and
:func:`evalstore.metrics.performance._source_view` build them (the SQL of both is
:func:`evalstore.engines.spark_sql.restriction` and
:func:`~evalstore.engines.spark_sql.evaluations`). Drift takes them through
:meth:`SparkFamilies._with_restriction` (``SparkEngine._drift_rows`` calls it).

Performance ``by=`` over a categorical feature whose Spark text differs from DuckDB's (a
timestamp, a date, a list) slices it by raw value: the distinct serving values come to
the driver as Arrow, the driver's DuckDB writes each as the store does, and Spark maps
rows to those slices by a join on the value (:meth:`SparkFamilies._raw_domain`), so the
slice labels are the store's.

Not on Spark: ``by=`` over a map or struct feature (or a list of maps) raises
:class:`InvalidParameterError` naming it and what to do (a ``where=`` predicate or named
slices). The store's bound on the number of windows (``max_windows``, a guard of the
HTTP service) is not applied to a Spark job.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from evalstore.core.bounds import (
    MAX_SAMPLE_IDS,
    bounded_int,
)
from evalstore.core.db import utc_cursor
from evalstore.core.identifiers import quote
from evalstore.core.windows import (
    Reference,
    Selection,
    Window,
    checked_window_args,
    reference_args,
    resolve,
)
from evalstore.engines import spark_sql
from evalstore.errors import InvalidParameterError
from evalstore.metrics import performance as perf
from evalstore.metrics import quality as qual
from evalstore.metrics import skew as skw
from evalstore.metrics.bootstrap import bootstrap_intervals
from evalstore.metrics.performance_options import checked_options
from evalstore.metrics.slice_keys import MAX_CATEGORIES, _bin_labels, _Slice, assign_strides

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

_ids = itertools.count(1)
#: Columns of the lake's features that a ``where`` predicate may use besides the features.
VALUE_PREDICATE_COLUMNS = ("example_id", "env", "dataset", "ts")
#: Lake feature types (Spark's simple names) and the store type ``by=`` sees them as.
_BY_TYPES = {
    "byte": "TINYINT", "short": "SMALLINT", "int": "INTEGER", "bigint": "BIGINT",
    "float": "FLOAT", "double": "DOUBLE", "decimal": "DOUBLE", "string": "VARCHAR",
    "boolean": "BOOLEAN",
}  # fmt: skip
#: Spark types whose text (``CAST(x AS STRING)``) is DuckDB's: a ``by`` key of these is
#: sliced by its text; other categorical keys by their raw values
#: (:meth:`SparkFamilies._raw_domain`).
_TEXT_TYPES = ("string", "boolean")
#: Where each performance macro's per-cell tail starts (run on the driver): the CTE after
#: ``horizon``, so that the label horizon (every label's delay) is computed on Spark.
_PERFORMANCE_CUT = {"binary": "worth", "multiclass": "scored", "regression": "scored"}


def _sliceable(kind: str) -> bool:
    """Whether a lake feature of Spark type ``kind`` (a simple string) can be a
    categorical ``by`` key on Spark: text and boolean (by their text), date and
    timestamp, and lists of such (by their raw values; not maps, whose values Spark
    cannot compare)."""
    if kind in (*_TEXT_TYPES, "date", "timestamp", "timestamp_ntz"):
        return True
    return kind.startswith("array<") and "map<" not in kind


def _too_many(name: str) -> str:
    return (
        f"by: feature {name!r} has more than {MAX_CATEGORIES} distinct values; "
        "slice by a coarser column or by named predicates instead"
    )


class _Coded(_Slice):
    """A categorical ``by`` key sliced by raw value (:meth:`SparkFamilies._raw_domain`)
    as :func:`evalstore.engines.spark_sql.evaluations` sees it: its index is the column
    ``column`` of the serving features (the key's mapping view joined by value), or the
    NULL index when the row has no value, none in the domain, or no serving row."""

    def __init__(self, key: _Slice, column: str) -> None:
        super().__init__(column, "coded")
        self.domain = key.domain
        self.stride = key.stride

    def index(self, predicate: str | None = None) -> str:
        return f"coalesce(e.{quote(self.name)}, {self.null_index})"


class SparkFamilies:
    """Performance, quality and skew of :class:`~evalstore.engines.spark.SparkEngine`
    (same parameters, columns, values and order as the store's), and the restricted
    views behind ``version=`` / ``where=``. A mixin: it uses the engine's ``spark``,
    ``views``, ``registration``, ``driver``, ``sql``, ``_read`` and ``_ansi_off``."""

    spark: Any
    _prefix: str
    _kinds: dict[str, dict[str, str]]
    views: Callable[[str], dict[str, str]]
    registration: Callable[..., dict[str, Any]]
    driver: Callable[[], Any]
    sql: Callable[[str, exp.Expression], str]
    _read: Callable[[str], DataFrame]
    _ansi_off: Callable[[], Any]

    # ------------------------------------------------------------- relations and views

    def _tables(self, model: str) -> dict[str, str]:
        """The relation names the macros take mapped to the engine's views: the lake
        views (``'m.numeric_values'``), the registry and the relations
        ``evalstore.label_horizon`` reads (module docstring), and the restricted views
        of the current :meth:`_restricted` block."""
        tables = {f"{model}.{t}": v for t, v in self.views(model).items()}
        tables.update(self._system_views(model))
        tables.update(self.__dict__.get("_restriction", {}).get(model, {}))
        return tables

    def _system_views(self, model: str) -> dict[str, str]:
        made: dict[str, dict[str, str]] = self.__dict__.setdefault("_system", {})
        if model in made:
            return made[model]
        names = self.views(model)
        base = f"{self._prefix}_{model}"
        self._read("models").createOrReplaceTempView(f"{base}_models")
        statements = spark_sql.lake_system_views(base, names)
        for view, body in statements.items():
            self.spark.sql(f"CREATE OR REPLACE TEMP VIEW {view} AS {body}")
        made[model] = {
            "evalstore.models": f"{base}_models",
            "evalstore.batches": f"{base}_batches",
            "evalstore.label_horizons": f"{base}_label_horizons",
            f"{model}.labels": f"{base}_keyed_labels",
            f"{model}.labels_latest": f"{base}_keyed_labels_latest",
            f"{model}.predictions": f"{base}_keyed_predictions",
        }
        return made[model]

    def _feature_types(self, model: str) -> dict[str, str]:
        """``{feature column: Spark simple type}`` of the lake's features."""
        from evalstore.engines.spark import SYSTEM_COLUMNS

        frame = self.spark.table(self.views(model)["features"])
        return {
            f.name: f.dataType.simpleString().split("(")[0]
            for f in frame.schema.fields
            if f.name not in SYSTEM_COLUMNS
        }

    def _temp_view(self, body: str, later: list[str]) -> str:
        name = f"{self._prefix}_restricted_{next(_ids)}"
        self.spark.sql(f"CREATE OR REPLACE TEMP VIEW {name} AS {body}")
        later.append(name)
        return name

    @contextmanager
    def _restricted(
        self,
        model: str,
        where: str | None,
        version: str | None,
        reference_dataset: tuple[str, str] | None = None,
    ) -> Iterator[None]:
        """Inside the block, the macros read ``model``'s long-format values restricted as
        the store's :func:`evalstore.core.windows.restricted_view` restricts them: rows of
        examples whose feature row (same env) meets ``where``; with ``version``, serving
        rows of the examples it predicted and only its own outputs. ``reference_dataset``
        ``(env, tag)`` keeps only the rows of env ``env`` from dataset ``tag`` (a version's
        registered training/validation dataset, for callers that cannot pass it as
        ``ref_dataset``)."""
        names = self.views(model)
        predicate = None
        if where is not None:
            columns = [*self._feature_types(model), *VALUE_PREDICATE_COLUMNS]
            predicate = spark_sql.checked_predicate(where, columns)
        conditions = spark_sql.restriction(names, predicate, version, reference_dataset)
        if not conditions:
            yield
            return
        later: list[str] = []
        restriction: dict[str, dict[str, str]] = self.__dict__.setdefault("_restriction", {})
        try:
            restriction[model] = {
                f"{model}.{relation}": self._temp_view(
                    f"SELECT v.* FROM {names[relation]} AS v WHERE {' AND '.join(conditions)}",
                    later,
                )
                for relation in ("numeric_values", "category_values")
            }
            yield
        finally:
            restriction.pop(model, None)
            for view in later:
                self.spark.catalog.dropTempView(view)

    def _with_restriction(
        self,
        compute: Callable[[], pa.Table],
        model: str,
        reference: Reference,
        version: str | None,
        where: str | None,
    ) -> pa.Table:
        """``compute()`` (a family's rows without version/where) inside
        :meth:`_restricted`; with ``version`` and a ``'training'``/``'validation'``
        reference, its rows are those of the dataset the version was registered with
        (as the store's ``reference_args``). For ``SparkEngine._drift_rows``."""
        registration = self.registration(model, version)
        dataset = None
        if version is not None and reference in ("training", "validation"):
            tag = registration.get(f"{reference}_dataset")
            dataset = (str(reference), tag) if tag is not None else None
        with self._restricted(model, where, version, dataset):
            return compute()

    # ------------------------------------------------------------------- the runner

    # ------------------------------------------------------------------ performance

    def performance(
        self,
        model: str,
        metrics: Sequence[str] | str | None = None,
        window: Window = "1 day",
        by: Any = None,
        version: str | None = None,
        where: str | None = None,
        since: Any = None,
        until: Any = None,
        threshold: float | None = None,
        *,
        reference: Any = "training",
        bins: int = 4,
        edges: Mapping[str, Sequence[float]] | None = None,
        ece_bins: int = 10,
        confidence: float = 0.95,
        n_boot: int = 200,
        seed: int = 0,
        as_of: Any = None,
        delay_quantile: float = 0.9,
        normalize_confusion_matrix: str | None = None,
        business_value_matrix: Sequence[Sequence[float]] | None = None,
        normalize_business_value: str | None = None,
    ) -> pa.Table:
        """Realized performance per window, version and slice, as
        :meth:`evalstore.Store.performance` (same parameters, columns, values and order;
        see :func:`evalstore.metrics.performance.performance`), computed on Spark.

        The evaluations (predictions, latest labels, serving features) are a Spark view
        restricted by ``version`` and ``where`` and carrying the slice code of ``by``
        (bins from the reference's exact quantiles, the store's ``quantile_cont``
        computed by a sort; categories from the serving rows); the macro
        ``performance_<task>`` computes the cells, ranks (ROC AUC, DeLong sums), ECE bins
        and the label horizon on Spark and the per-cell tail on the driver; bootstrap
        intervals and empty slices are added on the driver by the store's code.
        """
        registration = self.registration(model, version)
        task = registration["task"]
        o = checked_options(
            task, metrics, threshold, confidence, delay_quantile, ece_bins, bins, n_boot, seed,
            since, until, as_of, normalize_confusion_matrix, business_value_matrix,
            normalize_business_value,
        )  # fmt: skip
        chosen, threshold, confusion, z = o.metrics, o.threshold, o.confusion, o.z
        delay_quantile, ece_bins, bins, n_boot = o.delay_quantile, o.ece_bins, o.bins, o.n_boot
        start, end, clock = o.start, o.end, o.clock
        con = self.driver().connection
        windows = checked_window_args(con, window)
        types = self._feature_types(model)
        columns = {name: _BY_TYPES.get(kind, kind.upper()) for name, kind in types.items()}
        slices = perf._parse_by(by, columns, edges)
        for key in slices:
            if key.kind == "categorical" and not _sliceable(types[key.name]):
                raise InvalidParameterError(
                    f"by: feature {key.name!r} (Spark type {types[key.name]}) cannot be a slice "
                    "key on Spark (only text, boolean, date, timestamp and list features can); "
                    "slice it with named predicates, by={'name': 'predicate', ...}, or use "
                    "Store.performance"
                )
        ref = reference_args(reference, registration if version else None)
        if "previous" in ref:
            raise InvalidParameterError(
                "reference={'previous': n} cannot bin features; use 'training', "
                "'validation', {'dataset': tag} or a (start, end) range"
            )
        later: list[str] = []
        try:
            coded = self._prepare_slices(model, slices, ref, bins, types, later)
            source = self._evaluations(model, slices, where, version, types, later, coded)
            width, chunk_rows, chunks = (windows.get(k) for k in ("width", "chunk_rows", "chunks"))
            selection = [width, chunk_rows, chunks, start, end]
            tail = [z, clock, delay_quantile, list(chosen)]
            if task == "binary":
                args = [source, model, threshold, *selection, ece_bins, *tail, *confusion]
            else:
                args = [source, model, *selection, *tail]
            raw = self.run(
                model, f"performance_{task}", args, (), at=_PERFORMANCE_CUT[task],
                order='window_index, version, slice, metric, "class"',
            )  # fmt: skip
        finally:
            for view in later:
                self.spark.catalog.dropTempView(view)
        low, high = bootstrap_intervals(raw, n_boot, seed, confidence)
        raw = raw.set_column(raw.schema.get_field_index("ci_low"), "ci_low", low)
        raw = raw.set_column(raw.schema.get_field_index("ci_high"), "ci_high", high)
        text = (
            f"CI percentile bootstrap (B = {n_boot}, seed = {seed})"
            if n_boot
            else "CI not computed (n_boot = 0)"
        )
        return perf._assemble(con, raw, slices, perf.TASK_METRICS[task], text)

    def _prepare_slices(
        self,
        model: str,
        slices: Sequence[_Slice],
        ref: Mapping[str, Any],
        bins: int,
        types: Mapping[str, str],
        later: list[str],
    ) -> dict[str, str]:
        """Each ``by`` key's domain and stride, as the store's
        :func:`evalstore.metrics.slice_keys._prepare_slices`, from the lake on Spark.

        A text or boolean feature's domain is its distinct serving values as Spark's text
        (the same as DuckDB's). Any other categorical feature (a timestamp, a date, a
        list) is sliced by its raw values (:meth:`_raw_domain`); returns ``{feature: the
        temporary view mapping each raw value to its index}`` for those (the view names
        are added to ``later``)."""
        features = self.views(model)["features"]
        coded: dict[str, str] = {}
        for key in slices:
            if key.kind == "numeric":
                if key.edges is None:
                    key.edges = self._quantile_edges(features, key.name, ref, bins)
                key.domain = _bin_labels(key.edges)
            elif key.kind == "predicates":
                key.domain = list(key.predicates)
            elif types[key.name] not in _TEXT_TYPES:
                key.domain, coded[key.name] = self._raw_domain(features, key.name, later)
            else:
                column = f"CAST({spark_sql.quote_name(key.name)} AS STRING)"
                rows = self.spark.sql(
                    f"SELECT DISTINCT {column} AS v FROM {features} WHERE env = 'serving' "
                    f"AND {column} IS NOT NULL ORDER BY 1 LIMIT {MAX_CATEGORIES + 1}"
                ).collect()
                if len(rows) > MAX_CATEGORIES:
                    raise InvalidParameterError(_too_many(key.name))
                key.domain = [r["v"] for r in rows]
        assign_strides(slices)
        return coded

    def _raw_domain(self, features: str, name: str, later: list[str]) -> tuple[list[str], str]:
        """The domain of categorical feature ``name`` whose Spark text differs from
        DuckDB's (a timestamp, a date, a list), and a temporary view ``(v, i)`` mapping
        each of its distinct non-NULL serving values ``v`` (the raw value, Spark's type)
        to its index ``i`` in the domain.

        The distinct raw values come to the driver as Arrow (exact: a timestamp as UTC
        microseconds, a list as a list); the driver's DuckDB casts each to text as the
        store does (``CAST(x AS VARCHAR)``, the store's session settings) and sorts the
        distinct texts: the domain is the store's
        (:func:`evalstore.metrics.slice_keys.category_domain`). The mapping goes back to
        Spark as a DataFrame of those raw values (never as SQL text); rows are joined to
        it by value, so Spark's own text of the value is never used."""
        column = spark_sql.quote_name(name)
        raw = self.spark.sql(
            f"SELECT DISTINCT {column} AS v FROM {features} WHERE env = 'serving' "
            f"AND {column} IS NOT NULL LIMIT {MAX_CATEGORIES + 1}"
        ).toArrow()
        if raw.num_rows > MAX_CATEGORIES:
            raise InvalidParameterError(_too_many(name))
        con = utc_cursor(self.driver().connection)
        try:
            numbered = raw.append_column("n", pa.array(range(raw.num_rows), pa.int64()))
            con.register("evalstore_raw_domain", numbered)
            # each raw value's text, by the value's row number (not by the scan's order)
            texts = [
                t
                for (t,) in con.execute(
                    "SELECT CAST(v AS VARCHAR) FROM evalstore_raw_domain ORDER BY n"
                ).fetchall()
            ]
            domain = [
                t
                for (t,) in con.execute(
                    "SELECT DISTINCT CAST(v AS VARCHAR) AS t FROM evalstore_raw_domain "
                    "WHERE t IS NOT NULL ORDER BY 1"
                ).fetchall()
            ]
        finally:
            con.close()
        position = {t: i for i, t in enumerate(domain)}
        mapping = pa.table({
            "v": raw.column("v"),
            "i": pa.array([position.get(t) for t in texts], pa.int64()),
        })  # fmt: skip
        view = f"{self._prefix}_slice_values_{next(_ids)}"
        self.spark.createDataFrame(mapping).createOrReplaceTempView(view)
        later.append(view)
        return domain, view

    def _quantile_edges(
        self, features: str, name: str, ref: Mapping[str, Any], bins: int
    ) -> list[float]:
        """Inner bin edges: the reference's finite values' quantiles i / bins, exact (a
        sort, DuckDB's ``quantile_cont`` interpolation: :func:`spark_sql.exact_quantiles`)."""
        from evalstore.engines.spark import literal

        x = f"CAST({spark_sql.quote_name(name)} AS DOUBLE)"
        probabilities = [i / bins for i in range(1, bins)] or [0.5]
        levels = ", ".join(repr(p) for p in probabilities)
        conditions = [f"abs({x}) < CAST('Infinity' AS DOUBLE)"]
        for column, key, op in (("env", "ref_env", "="), ("dataset", "ref_dataset", "="),
                                ("ts", "ref_start", ">="), ("ts", "ref_end", "<")):  # fmt: skip
            if ref.get(key) is not None:
                value = literal(ref[key]).sql(dialect="spark")
                conditions.append(f"{column} {op} {value}")
        row = self.spark.sql(
            spark_sql.exact_quantiles(
                f"SELECT count({x}) AS n, percentile({x}, array({levels})) AS q "
                f"FROM {features} WHERE {' AND '.join(conditions)}"
            )
        ).collect()[0]
        if not row["n"]:
            raise InvalidParameterError(
                f"by: the reference rows ({dict(ref)}) hold no finite value of {name!r} to bin "
                f"it by; log them, choose another reference=, or pass edges={{{name!r}: [...]}}"
            )
        return sorted(set(row["q"])) if bins > 1 else []

    def _evaluations(
        self,
        model: str,
        slices: Sequence[_Slice],
        where: str | None,
        version: str | None,
        types: Mapping[str, str],
        later: list[str],
        coded: Mapping[str, str] | None = None,
    ) -> str:
        """A Spark view of the evaluations the macro reads, as the store's
        :func:`evalstore.metrics.performance._source_view`: predictions, their latest
        label and serving features (``e``), restricted to ``where`` and ``version``,
        with the integer slice code of ``by`` (one row per named predicate met).

        ``coded`` (from :meth:`_prepare_slices`): the keys sliced by raw value and their
        mapping views; the features are then read through a view that joins each mapping
        by value (a broadcast join: at most MAX_CATEGORIES rows), adding the value's
        index as a column the slice code reads."""
        names = dict(self.views(model))
        predicate = None
        if where is not None:
            columns = [*types, *perf.PREDICATE_COLUMNS]
            predicate = spark_sql.checked_predicate(where, columns)
        outputs = self.spark.table(names["predictions"]).columns
        features = list(types)
        keys = list(slices)
        if coded:
            added, joins = [], []
            for j, (name, view) in enumerate(coded.items()):
                column = f"__evalstore_by_{j}"
                added.append(f"m{j}.i AS {spark_sql.quote_name(column)}")
                joins.append(f"LEFT JOIN {view} AS m{j} ON m{j}.v = f.{spark_sql.quote_name(name)}")
                features.append(column)
                keys = [_Coded(k, column) if k.name == name else k for k in keys]
            hints = ", ".join(f"BROADCAST(m{j})" for j in range(len(coded)))
            names["features"] = self._temp_view(
                f"SELECT /*+ {hints} */ f.*, {', '.join(added)} "
                f"FROM {names['features']} AS f {' '.join(joins)}",
                later,
            )
        body = spark_sql.evaluations(names, outputs, features, predicate, version, keys)
        return self._temp_view(body, later)

    # ---------------------------------------------------------------------- quality

    def quality(
        self,
        model: str,
        reference: Reference = "training",
        window: Window = "1 day",
        features: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        since: Any = None,
        until: Any = None,
        *,
        min_rows: int = 1,
        missing_tolerance: float = 0.05,
        max_nonfinite: int = 0,
        max_out_of_range: float = 0.01,
        max_unseen: float = 0.01,
        denominator: str = "present",
        preset: str | None = None,
    ) -> pa.Table:
        """Data quality per window, feature (and score, prediction, label) and check, as
        :meth:`evalstore.Store.quality` (same parameters, columns, values and order; see
        :func:`evalstore.metrics.quality.quality`), computed on Spark: the macros
        ``quality_numeric_checks`` and ``quality_categorical_checks`` count on Spark up to
        their per-cell tail (``scored``: values, thresholds and texts, so a number in a
        text is written as the store writes it), which runs on the driver, and the empty
        windows are filled there too (``evalstore.quality_fill``)."""
        checks, prefix, denominator, thresholds = qual.checked_options(
            preset, denominator, min_rows, missing_tolerance, max_nonfinite,
            max_out_of_range, max_unseen, since, until,
        )  # fmt: skip
        registration = self.registration(model, version)
        self.views(model)
        kinds = self._kinds[model]
        outputs = qual._task_outputs(registration, features)
        chosen = qual._check_features(features, [*kinds, *outputs])
        con = self.driver().connection
        selection = resolve(con, reference, window, registration if version else None, since, until)
        self._check_reference(model, reference, selection)
        min_rows_, tolerance, nonfinite, out_of_range, unseen = thresholds
        with self._restricted(model, where, version):
            numeric = self.run(
                model, "quality_numeric_checks", [f"{model}.numeric_values",
                *selection.args(), min_rows_, tolerance, nonfinite, out_of_range], [],
                at="scored",
            )  # fmt: skip
            categorical = self.run(
                model, "quality_categorical_checks", [f"{model}.category_values",
                *selection.args(), min_rows_, tolerance, unseen], [], at="scored",
            )  # fmt: skip
        name = f"evalstore_spark_quality_{next(_ids)}"
        rows = pa.concat_tables([numeric, categorical.cast(numeric.schema)])
        con.register(name, rows)
        try:
            query = (
                f"SELECT {', '.join(qual.RESULT_COLUMNS)} FROM ({qual._OVER_SQL}) "
                "WHERE list_contains(?, feature) AND (? IS NULL OR list_contains(?, method)) "
                "ORDER BY window_start, feature, version NULLS FIRST, method"
            ).format(call="evalstore.quality_fill(?, ?, ?, ?)")
            args = [prefix, denominator, denominator, name]
            args += [selection.ana_start, selection.ana_end, selection.width]
            args += [chosen, checks, checks]
            return con.sql(query, params=args).to_arrow_table()
        finally:
            con.unregister(name)

    def _check_reference(self, model: str, reference: Reference, selection: Selection) -> None:
        """As :func:`evalstore.core.windows.check_reference`, over the lake's features."""
        tag = selection.ref_dataset
        if tag is None or reference in ("training", "validation"):
            return
        rows = self.spark.sql(
            f"SELECT DISTINCT dataset FROM {self.views(model)['features']} "
            "WHERE dataset IS NOT NULL ORDER BY 1"
        ).collect()
        known = [r["dataset"] for r in rows]
        if tag not in known:
            raise InvalidParameterError(
                f"reference dataset {tag!r} holds no rows of model {model!r}; known datasets: "
                + (", ".join(map(repr, known)) or "none (log features with dataset='tag')")
            )

    # ------------------------------------------------------------------------- skew

    def skew(
        self,
        model: str,
        tolerance: float = 1e-8,
        rtol: float = 1e-5,
        features: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        *,
        equal_nan: bool = True,
        method: str | Mapping[str, str] | None = "js",
        sample: int = 5,
        max_share: float = 0.0,
        **drift_options: Any,
    ) -> pa.Table:
        """Training/serving skew per feature, as :meth:`evalstore.Store.skew` (same
        parameters, columns, values and order; see :func:`evalstore.metrics.skew.skew`),
        computed on Spark: the mismatch counts by the macro ``evalstore.skew`` wholly on
        Spark, the distances by the engine's drift (training vs every serving row, one
        window)."""
        registration = self.registration(model, version)
        atol, rtol, max_share = skw._mismatch_rule(tolerance, rtol, max_share, equal_nan)
        sample = bounded_int(sample, "sample", least=0, most=MAX_SAMPLE_IDS)
        methods = skw._methods(method)
        self.views(model)
        kinds = self._kinds[model]
        chosen = skw._check_features(features, kinds)
        train_dataset = registration.get("training_dataset") if version else None
        counts: dict[str, dict[str, Any]] = {}
        if chosen:
            with self._restricted(model, where, version):
                rows = self.run(model, "skew", [
                    f"{model}.numeric_values", f"{model}.category_values", train_dataset,
                    chosen, atol, rtol, equal_nan, max(sample, 1)], ())  # fmt: skip
            counts = {row["feature"]: row for row in rows.to_pylist()}
        distances = (
            skw.skew_distances(
                functools.partial(self.drift, model),  # type: ignore[attr-defined]
                chosen, kinds, methods, version, where, drift_options,
            )
            if methods
            else {}
        )  # fmt: skip
        return skw.assemble(chosen, kinds, counts, distances, methods, sample, max_share)
