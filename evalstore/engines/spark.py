"""evalstore's metrics on Apache Spark, over the lake layout (:mod:`evalstore.core.lake`).

``SparkEngine(spark, lake_path)`` computes what :class:`~evalstore.Store` computes, from
the same SQL: each family's macro call is inlined and transpiled to Spark SQL
(:mod:`evalstore.engines.sql_inline`, :mod:`evalstore.engines.spark_sql`), runs on the
cluster, and its rows (one per window, feature and method: small) come back to the
driver as Arrow. The driver then does what the store does after its macros, with the
store's own code on an in-memory DuckDB: p-values (scipy, through evalstore's UDFs),
multiple-testing corrections, thresholds and ``drifted``. So every number is the one the
store gives on the same rows; nothing is computed approximately (quantiles are exact, by
a sort: :func:`evalstore.engines.spark_sql._sorted_quantiles`).

The engine reads the lake through temporary views it creates on the session (names
``evalstore_<n>_<model>_<table>``): the lake's features, predictions and labels; the
latest label of each example (largest ``batch_id``: the lake's append-only corrections);
and the long-format values (``numeric_values``, ``category_values``) of
:mod:`evalstore.core.values`, built with ``stack``.

Needs ``pyspark`` (``pip install evalstore[spark]``) and Java; the session should use the
UTC time zone (``spark.sql.session.timeZone``: windows are UTC days as in the store).
Results: the columns of ``Store.drift``
(:data:`evalstore.metrics.drift.univariate.RESULT_COLUMNS`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
from sqlglot import exp

from evalstore.core.lake import kind_dir
from evalstore.core.windows import Reference, Selection, Window, name_split, resolve
from evalstore.engines import spark_sql
from evalstore.engines.spark_families import SparkFamilies
from evalstore.engines.sql_inline import inline, shared_ctes, split
from evalstore.errors import InvalidParameterError, UnknownModelError
from evalstore.metrics.drift import learned, two_sample, univariate

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from evalstore.store import Store

#: Spark's types analysed as numeric features (cast to DOUBLE) and as categories (text).
NUMERIC_SPARK_TYPES = ("byte", "short", "int", "bigint", "float", "double", "decimal")
CATEGORICAL_SPARK_TYPES = ("string", "boolean")
#: Columns of the lake's features that are not features.
SYSTEM_COLUMNS = frozenset({"example_id", "env", "dataset", "ts", "batch_id", "day", "kind"})
ENGINE = "spark"
#: Per-cell scalar helpers over small lists (one row per window, feature and method
#: before them): the driver evaluates them with the store's own macros.
DRIVER_HELPERS = ("categorical_methods", "numeric_methods", "binned_scores")
#: Drift methods SparkEngine computes (from the macros; compared with the store's rows):
#: every method of ``drift_numeric`` and ``drift_categorical`` but ``welch_t`` and
#: ``mann_whitney``, whose p-values need per-cell figures the macros' rows do not carry
#: (the window's sd, the tie term), and the store's numpy-only tests (``anderson``,
#: ``epps_singleton``, ``empirical_mmd``).
SPARK_METHODS = (
    "ks", "wasserstein", "zscore", "energy_distance", "cramer_von_mises", "psi", "kl", "js",
    "hellinger", "d1", "tvd", "chi2", "linf", "unseen", "g_test", "chisquare_gof", "z_test",
    "fisher_exact",
)  # fmt: skip
#: Families :meth:`SparkEngine.materialize` writes into a store's metric history.
MATERIALIZED = ("drift", "performance", "quality")
_ids = itertools.count(1)


def literal(value: Any) -> exp.Expression:
    """A Python value as a SQL constant (sqlglot quotes text; never pasted as SQL)."""
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, int):
        return exp.Literal.number(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidParameterError(f"{value!r} is not a finite number")
        return exp.Literal.number(repr(value))
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, datetime):
        text = value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        return exp.Cast(this=exp.Literal.string(text), to=exp.DataType.build("TIMESTAMP"))
    if isinstance(value, list | tuple):
        return exp.Array(expressions=[literal(v) for v in value])
    raise InvalidParameterError(f"{value!r} cannot be a SQL constant")


def macro_call(macro: str, args: Sequence[Any]) -> exp.Expression:
    """``SELECT * FROM evalstore.<macro>(<args as constants>)`` as a sqlglot tree."""
    call = exp.Anonymous(this=macro, expressions=[literal(a) for a in args])
    table = exp.Table(this=call, db=exp.to_identifier("evalstore"))
    return exp.select("*").from_(table)


class SparkEngine(SparkFamilies):
    """evalstore's metric families on a Spark session, reading a lake written by
    :meth:`evalstore.Store.export_lake` (or by any job writing the same layout).

    >>> # engine = SparkEngine(spark, "/data/lake/fraud")
    >>> # engine.drift("fraud", reference="training", window="1 day")
    """

    def __init__(self, spark: SparkSession, lake_path: str | Path) -> None:
        self.spark = spark
        self.lake_path = str(lake_path)
        self._prefix = f"evalstore_{next(_ids)}"
        self._views: dict[str, dict[str, str]] = {}
        self._kinds: dict[str, dict[str, str]] = {}
        self._driver: Store | None = None

    # ----------------------------------------------------------------- lake and views

    def _read(self, kind: str) -> DataFrame:
        directory = str(kind_dir(self.lake_path, kind))
        return self.spark.read.option("basePath", directory).parquet(directory)

    def registration(self, model: str, version: str | None = None) -> dict[str, Any]:
        """The model's registry row from the lake (the latest version's when version is
        None), as ``Store.registration``."""
        rows = [r.asDict() for r in self._read("models").collect() if r["model"] == model]
        if not rows:
            raise UnknownModelError(
                f"model {model!r} is not in the lake at {self.lake_path!r} (kind=models)"
            )
        if version is not None:
            rows = [r for r in rows if r["version"] == version]
            if not rows:
                raise UnknownModelError(f"model {model!r} has no version {version!r} in the lake")
        return max(rows, key=lambda r: (r["created_at"], r["version"]))

    def views(self, model: str) -> dict[str, str]:
        """``{table: temp view}`` of the model's relations on the session, created once:
        features, predictions, labels, labels_latest, numeric_values, category_values."""
        if model in self._views:
            return self._views[model]
        task = self.registration(model)["task"]
        names = {t: f"{self._prefix}_{model}_{t}" for t in (
            "features", "predictions", "labels", "labels_latest", "numeric_values",
            "category_values")}  # fmt: skip
        features = self._read("features")
        features.createOrReplaceTempView(names["features"])
        self._read("predictions").createOrReplaceTempView(names["predictions"])
        self._read("labels").createOrReplaceTempView(names["labels"])
        self.spark.sql(
            f"CREATE OR REPLACE TEMP VIEW {names['labels_latest']} AS "
            "SELECT example_id, label, ts, source, batch_id FROM ("
            "SELECT *, max(batch_id) OVER (PARTITION BY example_id) AS latest_batch "
            f"FROM {names['labels']}) WHERE batch_id = latest_batch"
        )
        kinds = {f.name: f.dataType.simpleString().split("(")[0] for f in features.schema.fields}
        self._kinds[model] = {}
        for kind, value_type, spark_types in (
            ("numeric", "DOUBLE", NUMERIC_SPARK_TYPES),
            ("categorical", "STRING", CATEGORICAL_SPARK_TYPES),
        ):
            columns = [c for c, t in kinds.items() if t in spark_types and c not in SYSTEM_COLUMNS]
            self._kinds[model].update(dict.fromkeys(columns, kind))
            view = names["numeric_values" if kind == "numeric" else "category_values"]
            body = _value_rows(names, columns, _outputs(task, kind), value_type)
            self.spark.sql(f"CREATE OR REPLACE TEMP VIEW {view} AS {body}")
        self._views[model] = names
        return names

    def sql(self, model: str, query: exp.Expression) -> str:
        """``query`` (DuckDB SQL calling macros) inlined and written as Spark SQL over
        ``model``'s lake views."""
        tree = inline(query, self._tables(model), spark_sql.SPARK_HELPERS)
        return spark_sql.rewrite(tree).sql(dialect="spark")

    def run(
        self,
        model: str,
        macro: str,
        args: Sequence[Any],
        driver_helpers: Sequence[str] = DRIVER_HELPERS,
        at: str | None = None,
        order: str = "",
    ) -> pa.Table:
        """The rows of ``evalstore.<macro>(args)``: the relational part on Spark, the rest
        on the driver (:func:`evalstore.engines.sql_inline.split`, cut before the first
        of ``driver_helpers`` (per-cell helpers over small lists, :data:`DRIVER_HELPERS`)
        or at the CTE named ``at``); ``order`` an ORDER BY of the driver's query; an Arrow
        table. A macro without CTEs runs wholly on Spark.

        Each CTE before the cut is a view of its own; one read by several later CTEs is
        computed once with :func:`checkpoint` (its plan becomes a leaf), so that no query
        carries the plans of the CTEs below it: Catalyst's analysis of those nested
        plans, not the data, was most of a call's time (docs/scaling.md)."""
        parts = split(macro, [literal(a) for a in args], driver_helpers, at=at)
        con = self.driver().connection
        registered: list[str] = []
        views: list[str] = []
        kept: list[DataFrame] = []
        try:
            with self._ansi_off():
                readers = shared_ctes(parts) if parts.ctes else {}
                for name, body in parts.ctes:
                    if name not in readers:
                        continue
                    frame = self.spark.sql(self.sql(model, body))
                    if readers[name] > 1:
                        frame = checkpoint(frame)
                        kept.append(frame)
                    frame.createOrReplaceTempView(name)
                    views.append(name)
                if not parts.ctes:
                    for name, query in parts.engine.items():
                        self.spark.sql(self.sql(model, query)).createOrReplaceTempView(name)
                        views.append(name)
                for name in parts.engine:
                    con.register(name, self.spark.table(name).toArrow())
                    registered.append(name)
            query = parts.driver.sql(dialect="duckdb")
            if order:
                query = f"SELECT * FROM ({query}) ORDER BY {order}"
            return con.sql(query).to_arrow_table()
        finally:
            for name in registered:
                con.unregister(name)
            for name in views:
                self.spark.catalog.dropTempView(name)
            for frame in kept:
                release(frame)

    def _ansi_off(self):  # type: ignore[no-untyped-def]
        """:func:`engine_settings` on the engine's session (the name the families use)."""
        return engine_settings(self.spark)

    def driver(self) -> Store:
        """The in-memory store the driver uses for p-values and decisions."""
        if self._driver is None:
            import evalstore

            self._driver = evalstore.open()
        return self._driver

    def close(self) -> None:
        """Drop the engine's views and close its driver store (the session stays)."""
        for names in self._views.values():
            for view in names.values():
                self.spark.catalog.dropTempView(view)
        self._views.clear()
        if self._driver is not None:
            self._driver.close()
            self._driver = None

    def __enter__(self) -> SparkEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----------------------------------------------------------------------- families

    def drift(
        self,
        model: str,
        reference: Reference = "training",
        window: Window = "1 day",
        features: Sequence[str] | None = None,
        methods: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        *,
        since: Any = None,
        until: Any = None,
        thresholds: Mapping[str, Any] | None = None,
        alpha: float = 0.05,
        correction: str = "bonferroni",
        **variants: Any,
    ) -> pa.Table:
        """Univariate drift per window and feature, as :meth:`evalstore.Store.drift`
        (same parameters, columns, values and order), computed on Spark.

        Numeric methods come from ``evalstore.drift_numeric`` and categorical ones from
        ``evalstore.drift_categorical``; the store's default variants apply
        (``binning``, ``bins``, ``edges``, ``pooled``, ``zero_bins``, ``epsilon``,
        ``log_base``, ``js``, ``wasserstein``, ``yates`` are accepted as in the store).
        ``version=`` and ``where=`` restrict the rows as the store does (restricted
        views, :meth:`SparkFamilies._with_restriction`). ``thresholds={...: 'learned'}``
        learns the range from ``learn_chunks`` (10) chunks of the reference with
        ``learn_k`` (3.0), as the store (:mod:`evalstore.metrics.drift.learned`): the
        chunks' statistics on Spark, their mean and sd on the driver.
        """
        return name_split(
            self._drift_rows(
                model, reference, window, features, methods, version, where, since=since,
                until=until, thresholds=thresholds, alpha=alpha, correction=correction,
                **variants,
            ),
            window,
        )  # fmt: skip

    def _drift_rows(
        self,
        model: str,
        reference: Reference = "training",
        window: Window = "1 day",
        features: Sequence[str] | None = None,
        methods: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        *,
        since: Any = None,
        until: Any = None,
        thresholds: Mapping[str, Any] | None = None,
        alpha: float = 0.05,
        correction: str = "bonferroni",
        **variants: Any,
    ) -> pa.Table:
        """:meth:`drift` before the NannyML chunk split is named in ``variant`` (what the
        metric history stores, as the store's ``drift`` family function returns)."""
        if version is not None or where is not None:
            # the rows restricted as the store's (SparkFamilies._with_restriction)
            return self._with_restriction(
                lambda: self._drift_rows(
                    model, reference, window, features, methods, since=since, until=until,
                    thresholds=thresholds, alpha=alpha, correction=correction, **variants,
                ),
                model, reference, version, where,
            )  # fmt: skip
        chosen = univariate._check_methods(methods)
        unsupported = [m for m in chosen if m not in SPARK_METHODS]
        if unsupported:
            raise InvalidParameterError(
                f"methods {unsupported} are not on SparkEngine yet (computed in Python by the "
                f"store, or p-values not on the engine): use Store.drift, or choose from "
                + ", ".join(SPARK_METHODS)
            )
        options = _variant_defaults(variants)
        learn_chunks, learn_k = options.pop("learn_chunks"), options.pop("learn_k")
        params = univariate._variant_args(**options)
        limits = univariate._thresholds(thresholds, alpha, params["wasserstein"])
        if correction not in univariate.CORRECTIONS:
            raise InvalidParameterError(
                f"correction={correction!r} is not one of {univariate.CORRECTIONS}"
            )
        self.views(model)  # UnknownModelError for a model not in the lake
        store = self.driver()
        selection = resolve(store.connection, reference, window, None, since, until)
        chosen_features = univariate._check_features(features, self._kinds[model])
        wanted = [m for m in chosen if limits.get(m) == "learned"]
        learned_limits = {}
        if wanted:
            chunked = learned.learning_selection(selection, learn_chunks)
            chunks = self._statistics(model, chunked, wanted, chosen_features, params)
            with self._union(chunks) as union:
                summary = self.driver().connection.sql(learned.SUMMARY_SQL.format(rows=union))
                learned_limits = learned.limits(
                    summary.to_arrow_table().to_pylist(), chunked.chunks, learn_k
                )
        parts = self._statistics(model, selection, chosen, chosen_features, params)
        table = self._decide(parts, limits, correction, learned_limits)
        return univariate._explain_empty_reference(store.connection, table, reference, selection)

    def materialize(self, store: Store, family: str, model: str, **arguments: Any) -> pa.Table:
        """Compute ``family`` (``'drift'``, ``'performance'`` or ``'quality'``, the families
        the store persists) of ``model`` on Spark and write its rows into ``store``'s metric
        history, exactly where ``store.<family>(model, ..., persist=True)`` with the same
        ``arguments`` keeps them (:mod:`evalstore.monitors.history`: keyed by
        the hash of the normalised parameters, with the store's input watermark and window
        row counts). Windows already stored for the same call and not touched since are
        read back, not recomputed; the rows written get ``engine = 'spark'`` in
        ``evalstore.metric_history``. Returns the call's rows, as ``persist=True`` does.

        The store must hold the rows the lake holds (the lake exported from it): the
        history's watermarks and window counts are the store's, so that the dashboard,
        monitors, HTTP API and BI snapshot read the rows as if the store had computed them.
        """
        from evalstore.core.db import transaction
        from evalstore.monitors import history, history_params

        if family not in MATERIALIZED:
            raise InvalidParameterError(
                f"family={family!r}: SparkEngine.materialize writes one of "
                f"{', '.join(MATERIALIZED)} (the families the store keeps in its metric "
                "history); compute other families with the engine's methods"
            )
        ctx = store._context()
        ctx.check_writable()
        params = history_params.normalise(family, model, arguments)
        key = (model, family, history_params.params_hash(family, model, params))

        def compute(_ctx: Any, name: str, **call: Any) -> pa.Table:
            if family == "drift":  # the rows before the chunk split is named, as stored
                return self._drift_rows(name, **call)
            return getattr(self, family)(name, **call)

        started = datetime.now(UTC)
        con = ctx.connection
        with ctx.lock, transaction(con):
            table = history._persisted(ctx, compute, family, model, arguments, params, key, None)
            con.execute(
                "UPDATE evalstore.metric_history SET engine = ? WHERE model = ? AND family = ? "
                "AND params_hash = ? AND computed_at >= ?",
                [ENGINE, *key, started],
            )
        if family == "drift":
            return name_split(table, arguments.get("window", "1 day"))
        return table

    def _statistics(
        self,
        model: str,
        selection: Selection,
        methods: Sequence[str],
        features: Sequence[str],
        params: Mapping[str, Any],
    ) -> list[pa.Table]:
        parts = []
        numeric = [m for m in methods if m in univariate.NUMERIC_METHODS]
        categorical = [m for m in methods if m in univariate.CATEGORICAL_METHODS]
        if numeric:
            rows = self.run(model, "drift_numeric", [
                f"{model}.numeric_values", *selection.args(), params["binning"],
                params["bins"], params["edges"], params["pooled"], params["zero_bins"],
                params["epsilon"], params["log_base"], params["js"]])  # fmt: skip
            parts.append(("numeric", numeric, rows))
        if categorical:
            rows = self.run(model, "drift_categorical", [
                f"{model}.category_values", *selection.args(), params["zero_bins"],
                params["epsilon"], params["log_base"], params["js"], params["yates"]])  # fmt: skip
            parts.append(("categorical", categorical, rows))
        con = self.driver().connection
        chosen = []
        for kind, wanted, rows in parts:
            with self._union([rows]) as union:
                chosen.append(
                    con.sql(
                        f"SELECT *, ? AS kind FROM ({union}) WHERE list_contains(?, method) "
                        "AND list_contains(?, feature) "
                        "AND (method <> 'wasserstein' OR starts_with(variant, ?))",
                        params=[kind, wanted, list(features), params["wasserstein"] + ":"],
                    ).to_arrow_table()
                )
        return chosen

    @contextmanager
    def _union(self, parts: list[pa.Table]) -> Iterator[str]:
        """The SQL of the rows of ``parts`` (registered on the driver's connection while
        the context lasts), united by name."""
        con = self.driver().connection
        names = []
        try:
            for table in parts:
                name = f"evalstore_spark_rows_{next(_ids)}"
                con.register(name, table)
                names.append(name)
            yield " UNION ALL BY NAME ".join(f"SELECT * FROM {n}" for n in names)
        finally:
            for name in names:
                con.unregister(name)

    def _decide(
        self,
        parts: list[pa.Table],
        limits: Mapping[str, Any],
        correction: str,
        learned_limits: Mapping[tuple[str, str], tuple[float, float, str]],
    ) -> pa.Table:
        if not parts:
            return pa.table({c: [] for c in univariate.RESULT_COLUMNS})
        con = self.driver().connection
        with self._union(parts) as union:
            # the columns the p-values read, when no part has them (typed, no row)
            columns = "SELECT CAST(NULL AS DOUBLE) AS p_value, CAST(NULL AS BIGINT[]) AS counts"
            statistics = (
                f"SELECT * REPLACE ({two_sample.P_VALUE_SQL} AS p_value) "
                f"FROM ({columns} WHERE false UNION ALL BY NAME {union})"
            )
            return univariate._decide(con, statistics, [], limits, learned_limits, correction)


#: Settings the engine applies to the session for its own statements (and restores after):
#: ANSI mode off, so that a division by zero gives NULL as in DuckDB; no constraint
#: propagation (the optimizer's inference of filters from every operator's constraints:
#: costly on the inlined macros' deep plans, and on Spark 4.x it fails with
#: ``NoSuchElementException: key not found`` in ``Union.rewriteConstraints`` on the
#: ASOF-join rewrite over a checkpointed CTE).
ENGINE_SETTINGS: Mapping[str, str] = {
    "spark.sql.ansi.enabled": "false",
    "spark.sql.constraintPropagation.enabled": "false",
}

#: Session settings for a small local session (tests, a laptop, ``local[n]``), where each
#: query's fixed cost dominates the data's: few shuffle partitions instead of 200 (mostly
#: empty tasks otherwise), no adaptive re-planning (on small data it doubles the jobs: 94
#: instead of 46 per drift call), no generated code (``factoryMode=NO_CODEGEN`` and no
#: whole-stage codegen: compiling the Java generated for the inlined macros' plans costs
#: more than it saves on small data; measured 16-19 -> 9-13 JVM CPU s per drift call on the
#: tests' rows), UTC windows, no progress bars. Not for a cluster over a lake: there, keep
#: code generation and size the shuffle partitions (or AQE's coalescing) to the data
#: (docs/scaling.md).
LOCAL_SETTINGS: Mapping[str, str] = {
    "spark.sql.shuffle.partitions": "2",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.showConsoleProgress": "false",
}


@contextmanager
def engine_settings(
    spark: SparkSession, settings: Mapping[str, str] = ENGINE_SETTINGS
) -> Iterator[None]:
    """Inside the block, ``spark``'s SQL settings are ``settings``
    (:data:`ENGINE_SETTINGS` by default); each is restored, or unset, after it."""
    conf = spark.conf
    before = {key: conf.get(key, None) for key in settings}
    for key, value in settings.items():
        conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                conf.unset(key)
            else:
                conf.set(key, value)


def checkpoint(frame: DataFrame) -> DataFrame:
    """``frame`` computed now and kept on the executors (memory, then disk: Spark's
    ``localCheckpoint``), as a frame whose plan is one leaf. Queries over it are then
    planned without ``frame``'s plan: with the inlined macros' CTEs each read by several
    others, the nested plans otherwise grow with every CTE and their analysis
    (``DeduplicateRelations``, ``ResolveReferences``) costs seconds per query. Free it
    with :func:`release`."""
    return frame.localCheckpoint(eager=True)


def release(frame: DataFrame) -> None:
    """Drop the blocks of a frame :func:`checkpoint` made, now rather than when the
    JVM's garbage collector finds it unreferenced (a no-op on Spark Connect, which frees
    them with the frame)."""
    jdf = getattr(frame, "_jdf", None)
    if jdf is None:
        return
    plan = jdf.queryExecution().logical()
    if plan.getClass().getSimpleName() == "LogicalRDD":
        plan.rdd().unpersist(False)


def _variant_defaults(variants: Mapping[str, Any]) -> dict[str, Any]:
    known = {
        "binning": "quantile", "bins": 10, "edges": None, "pooled": False,
        "zero_bins": "epsilon", "epsilon": 1e-4, "log_base": "e", "js": "distance",
        "wasserstein": "normed", "yates": True, "learn_chunks": 10, "learn_k": 3.0,
    }  # fmt: skip
    unknown = sorted(set(variants) - set(known))
    if unknown:
        raise InvalidParameterError(
            f"SparkEngine.drift got unknown options {unknown}; it takes " + ", ".join(sorted(known))
        )
    return {**known, **variants}


def _outputs(task: str, kind: str) -> list[str]:
    """As :func:`evalstore.core.values.output_names`."""
    outputs = ["score"] if kind == "numeric" and task == "binary" else []
    if (task == "regression") == (kind == "numeric"):
        outputs += ["prediction", "label"]
    return outputs


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _value_rows(
    names: Mapping[str, str], columns: list[str], outputs: list[str], value_type: str
) -> str:
    """Spark SQL of a long-format value view (:mod:`evalstore.core.values`): features
    unpivoted with ``stack`` (NULLs kept), then the outputs."""
    keys = "example_id, env, dataset, ts"
    parts = []
    if columns:
        pairs = ", ".join(
            f"{exp.Literal.string(c).sql(dialect='spark')}, CAST({_quote(c)} AS {value_type})"
            for c in columns
        )
        parts.append(
            f"SELECT {keys}, CAST(NULL AS STRING) AS version, feature, value FROM ("
            f"SELECT {keys}, stack({len(columns)}, {pairs}) AS (feature, value) "
            f"FROM {names['features']})"
        )
    for name in outputs:
        if name == "label":
            parts.append(
                "SELECT f.example_id, f.env, f.dataset, f.ts, CAST(NULL AS STRING) AS version, "
                f"'label' AS feature, CAST(l.label AS {value_type}) AS value "
                f"FROM {names['labels_latest']} AS l JOIN {names['features']} AS f "
                "ON f.example_id = l.example_id"
            )
        else:
            parts.append(
                "SELECT example_id, 'serving' AS env, CAST(NULL AS STRING) AS dataset, ts, "
                f"version, '{name}' AS feature, CAST({name} AS {value_type}) AS value "
                f"FROM {names['predictions']}"
            )
    if not parts:
        return (
            f"SELECT {keys}, CAST(NULL AS STRING) AS version, CAST(NULL AS STRING) AS feature, "
            f"CAST(NULL AS {value_type}) AS value FROM {names['features']} WHERE false"
        )
    return " UNION ALL ".join(parts)
