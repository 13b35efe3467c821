"""The :class:`Store`: an evaluation store in one DuckDB database, opened in-process."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from evalstore.core import ingest, ingest_write, registry, sources, udfs
from evalstore.core.context import Context
from evalstore.core.db import transaction, utc_cursor
from evalstore.core.identifiers import check_model_name
from evalstore.core.layout import check_catalog, check_readable, create_model_schema, migrate
from evalstore.core.macros import install_macros
from evalstore.core.registry import to_timestamp
from evalstore.core.time_limits import TimeLimits
from evalstore.core.values import refresh_value_views
from evalstore.errors import (
    InvalidParameterError,
    ModelConflictError,
    translate_duckdb_errors,
)
from evalstore.metrics import compare as _compare
from evalstore.metrics import health as _health
from evalstore.metrics import performance as _performance
from evalstore.metrics import quality as _quality
from evalstore.metrics import skew as _skew
from evalstore.metrics import slices as _slices
from evalstore.metrics.drift import multivariate as multivariate_drift
from evalstore.metrics.drift import univariate as drift

Data = Any  # anything sources.to_reader accepts


def open(
    path: str | PathLike[str] | None = None,
    read_only: bool = False,
    *,
    time_range: Sequence[Any] | None = None,
    max_windows: int | None = None,
) -> Store:
    """Open (or create) an evaluation store.

    ``path`` is a DuckDB database file, created if missing; ``None`` gives an
    in-memory store. A store opened for writing is migrated to the current layout
    and gets the current SQL macros installed, so they persist in the file.

    ``time_range`` ``(lo, hi)`` is the range of times ingest and the registry accept
    (default 1900-01-01 up to 2200-01-01 UTC); ``max_windows`` the most windows one
    metric call builds (default 10,000). Both hold for this handle and its sessions
    only; see :mod:`evalstore.core.time_limits`.

    >>> import evalstore
    >>> with evalstore.open() as store:
    ...     store.sql("SELECT 1 + 1 AS two").to_pylist()
    [{'two': 2}]
    """
    return Store(path, read_only=read_only, time_range=time_range, max_windows=max_windows)


@translate_duckdb_errors
class Store:
    """An evaluation store. Use :func:`evalstore.open` to get one.

    All methods are safe to call from several threads: they share one DuckDB
    connection and take turns. Results are :class:`pyarrow.Table` objects
    (``.to_pandas()``, ``.to_pylist()``).
    """

    def __init__(
        self,
        path: str | PathLike[str] | None = None,
        read_only: bool = False,
        *,
        time_range: Sequence[Any] | None = None,
        max_windows: int | None = None,
    ) -> None:
        self.path = None if path is None else Path(path)
        self.read_only = read_only
        #: accepted times and windows per call (:mod:`evalstore.core.time_limits`)
        self.limits = TimeLimits.of(time_range, max_windows)
        if read_only and (self.path is None or not self.path.exists()):
            raise InvalidParameterError(
                f"read_only=True needs an existing store file; {str(path)!r} does not exist"
            )
        database = ":memory:" if self.path is None else str(self.path)
        created = self.path is not None and not self.path.exists()
        self._lock = threading.RLock()
        self._con = duckdb.connect(database, read_only=read_only)
        try:
            self._con.execute("SET TimeZone = 'UTC'")
            # DuckDB runs an ASOF join as a nested loop when it expects at most this many
            # probe rows; for the drift macros' CTEs it expects far too few, which made the
            # SQL drift path quadratic (11 s instead of 0.25 s for 20k x 15k distinct
            # values). GLOBAL: cursors (server sessions) inherit it.
            self._con.execute("SET GLOBAL asof_loop_join_threshold = 0")
            udfs.register(self._con)
            check_catalog(self._con, path)
            if read_only:
                check_readable(self._con, read_only=True)
            else:
                migrate(self._con)
                install_macros(self._con)
        except BaseException:
            self._con.close()
            if created:  # a store that could not be set up leaves no file behind
                for leftover in (self.path, Path(f"{self.path}.wal")):
                    leftover.unlink(missing_ok=True)
            raise

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the store; a closed store refuses further calls."""
        with self._lock:
            self._con.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self.path is None else str(self.path)
        mode = ", read-only" if self.read_only else ""
        return f"<evalstore.Store {where}{mode}>"

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The underlying DuckDB connection (for advanced use; prefer :meth:`sql`)."""
        return self._con

    def _context(self) -> Context:
        """This handle as the families and the flywheel see it (:mod:`evalstore.core.context`)."""
        return Context(
            connection=self._con,
            lock=self._lock,
            limits=self.limits,
            read_only=self.read_only,
            name=repr(self),
        )

    def session(self) -> Store:
        """Another handle on the same store with a DuckDB connection of its own.

        Calls on a store take turns on its one connection; calls on a session run at the
        same time as calls on the store and on other sessions (each metric call runs in
        one transaction and sees the data committed when it starts, DuckDB's MVCC,
        whatever commits while it runs), so a long ``drift`` or
        ``performance`` in one thread no longer waits for, or delays, an ingest in
        another. Closing the session (or leaving its ``with`` block) closes only its
        connection. ``evalstore serve`` answers every metric request on a session.

        >>> import evalstore
        >>> store = evalstore.open()
        >>> _ = store.register_model("m", "v1", "binary")
        >>> with store.session() as session:
        ...     session.sql("SELECT model, version FROM evalstore.models").to_pylist()
        [{'model': 'm', 'version': 'v1'}]
        >>> store.close()
        """
        # no turn needed: a cursor is made on the database (the server makes them while
        # other threads query); the p-value UDFs are the database's, so shared
        cursor = utc_cursor(self._con)
        session = Store.__new__(Store)
        session.path, session.read_only = self.path, self.read_only
        session.limits = self.limits
        session._lock = threading.RLock()
        session._con = cursor
        return session

    # ------------------------------------------------------------------ queries

    def sql(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        """Run one SQL statement with bound ``params`` (``?`` or ``$name``); return Arrow.

        Every table of the store is reachable: ``evalstore.models``,
        ``evalstore.batches``, ``<model>.features``, ``<model>.evaluations``, and the
        macros, e.g. ``SELECT * FROM evalstore.volume('fraud', '1 day')``. Statements
        that return no rows give an empty table.
        """
        with self._lock:
            relation = self._con.sql(query, params=params)
            return relation.to_arrow_table() if relation is not None else pa.table({})

    # ------------------------------------------------------------------ registry

    def register_model(
        self,
        model: str,
        version: str,
        task: str,
        classes: Sequence[object] | None = None,
        positive_class: object = None,
        threshold: float | None = None,
        trained_at: object = None,
        deployed_at: object = None,
        stage: str | None = None,
        training_dataset: str | None = None,
        params: Mapping[str, Any] | None = None,
        dependencies: Mapping[str, str] | None = None,
        *,
        validation_dataset: str | None = None,
        retired_at: object = None,
        notes: str | None = None,
        replace: bool = False,
    ) -> dict[str, Any]:
        """Register a model version; the first version of a model creates its tables.

        ``task`` is ``binary``, ``multiclass`` or ``regression`` and is the same for
        every version of a model. For binary models ``classes`` defaults to ``[0, 1]``,
        ``positive_class`` to the second class (scikit-learn's convention) and
        ``threshold`` (score at or above it predicts the positive class) to 0.5.
        ``params`` is any JSON-able dict; ``dependencies`` maps package names to
        versions (diffs between versions are a health monitor). Times are datetimes or
        ISO-8601 text, naive ones taken as UTC.

        Registering an existing version again with the same definition is a no-op;
        with a different one it raises :class:`ModelConflictError` unless
        ``replace=True``, which overwrites the metadata (never the task).

        Returns the registry row as a dict.
        """
        self._writable()
        check_model_name(model)
        row = registry.build_row(
            model,
            version,
            task,
            classes=classes,
            positive_class=positive_class,
            threshold=threshold,
            trained_at=trained_at,
            deployed_at=deployed_at,
            retired_at=retired_at,
            stage=stage,
            training_dataset=training_dataset,
            validation_dataset=validation_dataset,
            params=params,
            dependencies=dependencies,
            notes=notes,
        )
        for name in ("trained_at", "deployed_at", "retired_at"):
            self.limits.check_time(row[name], name)
        with self._lock:
            existing = self._versions(model)
            if existing:
                tasks = {r["task"] for r in existing.values()}
                if task not in tasks:
                    raise ModelConflictError(
                        f"model {model!r} is registered with task {tasks.pop()!r}; version "
                        f"{version!r} cannot have task {task!r} (register a new model name)"
                    )
                positives = {r["positive_class"] for r in existing.values()} - {None}
                if task == "binary" and positives and row["positive_class"] not in positives:
                    raise ModelConflictError(
                        f"model {model!r} has positive class {positives.pop()!r}; version "
                        f"{version!r} must use the same one"
                    )
            stored = existing.get(version)
            if stored is not None:
                if registry.same_definition(stored, row):
                    return stored
                if not replace:
                    raise ModelConflictError(
                        f"model {model!r} version {version!r} is already registered with a "
                        "different definition; pass replace=True to overwrite its metadata"
                    )
                row["created_at"] = stored["created_at"]
            columns = ("model", "version", "task", *registry.FIELDS)
            with transaction(self._con):
                if not existing:
                    create_model_schema(self._con, model, task)
                self._con.execute(
                    f"INSERT OR REPLACE INTO evalstore.models ({', '.join(columns)}) "
                    f"VALUES ({', '.join('?' for _ in columns)})",
                    [row[c] for c in columns],
                )
                if not existing:
                    refresh_value_views(self._con, model)
            return self._versions(model)[version]

    def models(self, model: str | None = None) -> pa.Table:
        """The registry: one row per model version, optionally for one ``model``."""
        if model is None:
            return self.sql("SELECT * FROM evalstore.models ORDER BY model, created_at, version")
        return self.sql(
            "SELECT * FROM evalstore.models WHERE model = ? ORDER BY created_at, version", [model]
        )

    def _versions(self, model: str) -> dict[str, dict[str, Any]]:
        return self._context().versions(model)

    def _registration(self, model: str, version: str | None = None) -> dict[str, Any]:
        """The registry row of ``version`` (or of the latest version) of ``model``."""
        return self._context().registration(model, version)

    def _classes(self, model: str) -> list[str] | None:
        """Union of the classes registered for any version of ``model`` (None if unset)."""
        classes: list[str] = []
        for row in self._versions(model).values():
            for label in row["classes"] or []:
                if label not in classes:
                    classes.append(label)
        return classes or None

    # ------------------------------------------------------------------ monitors

    def drift(
        self,
        model: str,
        reference: Any = "training",
        window: Any = "1 day",
        features: Sequence[str] | None = None,
        methods: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Univariate drift per window and feature; see
        :func:`evalstore.metrics.drift.univariate.drift`.

        ``reference`` is ``"training"``, ``"validation"``, ``{"dataset": tag}``, a
        ``(start, end)`` time range or ``{"previous": n}``; ``window`` an interval
        (``"1 day"``), rows per chunk (``5000``) or ``{"chunks": n}``. Returns a long
        table: window_start, window_end, feature, kind, version, method, variant, value,
        p_value, threshold, threshold_low, threshold_source, drifted, n_reference,
        n_analysis, reason.

        >>> import evalstore, pyarrow as pa
        >>> store = evalstore.open()
        >>> _ = store.register_model("m", "v1", "binary")
        >>> ids = [str(i) for i in range(100)]
        >>> _ = store.log_features("m", pa.table({"example_id": ids, "x": range(100)}),
        ...                        env="training")
        >>> _ = store.log_features("m", pa.table({"example_id": ids, "x": range(50, 150)}))
        >>> row = store.drift("m", window="100 years", features=["x"], methods=["ks"])
        >>> row.select(["feature", "method", "value", "drifted"]).to_pylist()
        [{'feature': 'x', 'method': 'ks', 'value': 0.5, 'drifted': True}]
        >>> store.close()
        """
        return drift.drift(
            self._context(), model, reference, window, features, methods, version, where, **options
        )

    def multivariate_drift(
        self,
        model: str,
        reference: Any = "training",
        window: Any = "1 day",
        features: Sequence[str] | None = None,
        methods: Sequence[str] = multivariate_drift.MULTIVARIATE_METHODS,
        version: str | None = None,
        where: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Joint drift of the numeric features per window: MMD² and PCA reconstruction.

        Same selection parameters and result shape as :meth:`drift` (``feature`` is
        ``'*'``); see :mod:`evalstore.metrics.drift.multivariate` for the methods and options
        (``alpha``, ``max_rows``, ``n_permutations``, ``variance``, ``learn_chunks``,
        ``learn_k``, ``seed``).
        """
        return multivariate_drift.multivariate_drift(
            self._context(), model, reference, window, features, methods, version, where, **options
        )

    def quality(
        self,
        model: str,
        reference: Any = "training",
        window: Any = "1 day",
        features: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Data quality per window and feature; see :func:`evalstore.metrics.quality.quality`.

        Checks: rows, missing, nan, posinf, neginf, out_of_range (numeric; outside the
        reference's [min, max]) and unseen (categorical). Same selection parameters and
        long result shape as :meth:`drift`; ``drifted`` is true when a check fails.
        """
        return _quality.quality(
            self._context(), model, reference, window, features, version, where, **options
        )

    def infer_schema(
        self,
        model: str,
        reference: Any = "training",
        version: str | None = None,
        features: Sequence[str] | None = None,
        **options: Any,
    ) -> pa.Table:
        """Infer and save each feature's schema from the reference rows.

        Saved in the editable table ``evalstore.schemas`` (kind, dtype, nullable,
        min, max, domain, expected_missing); see :func:`evalstore.metrics.quality.infer_schema`.
        """
        self._writable()
        return _quality.infer_schema(
            self._context(), model, reference, version, features, **options
        )

    def schema(self, model: str) -> pa.Table:
        """The model's saved schema (its rows of ``evalstore.schemas``)."""
        return _quality.saved_schema(self._context(), model)

    def validate(
        self,
        model: str,
        window: Any = "1 day",
        features: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Violations of the saved schema per window and feature.

        Checks: missing, missing_rate, type, below_min, above_max, out_of_domain; see
        :func:`evalstore.metrics.quality.validate`.
        """
        return _quality.validate(
            self._context(), model, window, features, version, where, **options
        )

    def performance(
        self,
        model: str,
        metrics: Sequence[str] | None = None,
        window: Any = "1 day",
        by: Any = None,
        version: str | None = None,
        where: str | None = None,
        since: Any = None,
        until: Any = None,
        threshold: float | None = None,
        **options: Any,
    ) -> pa.Table:
        """Realized performance per window, version and slice from the latest labels.

        Binary, multiclass and regression metrics with confidence intervals, label
        coverage and ``labels_complete`` (so a late-labelled window is not mistaken for a
        drop); see :func:`evalstore.metrics.performance.performance`.
        """
        return _performance.performance(
            self._context(),
            model,
            metrics,
            window,
            by,
            version,
            where,
            since,
            until,
            threshold,
            **options,
        )

    def worst_slices(
        self,
        model: str,
        metric: str | None = None,
        since: Any = None,
        until: Any = None,
        version: str | None = None,
        where: str | None = None,
        features: Sequence[str] | None = None,
        **options: Any,
    ) -> pa.Table:
        """Slices (a feature's value or bin, or a pair) where the model is significantly worse.

        Each finding carries a SQL ``predicate`` to pass back as ``where=`` to every other
        call; tests, multiple-testing control and ranking are described in
        :func:`evalstore.metrics.slices.worst_slices`.
        """
        return _slices.worst_slices(
            self._context(), model, metric, since, until, version, where, features, **options
        )

    def skew(
        self,
        model: str,
        tolerance: float = 1e-8,
        rtol: float = 1e-5,
        features: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Training/serving skew per feature, for examples logged in both envs.

        Per feature: n_compared, n_mismatch (numeric within ``tolerance`` + ``rtol`` x
        |training| as numpy.isclose; categorical exact; NULL vs value mismatches),
        share_mismatch, sample_ids, and the training-vs-serving ``distance`` from the
        drift engine (``method``, ``variant``); see :func:`evalstore.metrics.skew.skew`.
        """
        return _skew.skew(
            self._context(), model, tolerance, rtol, features, version, where, **options
        )

    def skew_summary(
        self,
        model: str,
        tolerance: float = 1e-8,
        rtol: float = 1e-5,
        features: Sequence[str] | None = None,
        version: str | None = None,
        where: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """One row: examples in both envs, how many have any skew, features with skew.

        Same parameters and mismatch rule as :meth:`skew`; see
        :func:`evalstore.metrics.skew.skew_summary`.
        """
        return _skew.skew_summary(
            self._context(), model, tolerance, rtol, features, version, where, **options
        )

    def compare(
        self,
        model: str,
        a: str,
        b: str,
        window: Any = "1 day",
        by: Any = None,
        metric: str | Sequence[str] | None = None,
        where: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Version ``b`` against version ``a`` on the examples both predicted.

        Per window and slice: disagreement rate, and on labeled pairs the paired
        difference b - a of accuracy (McNemar's test), log loss and Brier score
        (regression: MAE, MSE) with confidence intervals and p-values; see
        :func:`evalstore.metrics.compare.compare`.
        """
        return _compare.compare(self._context(), model, a, b, window, by, metric, where, **options)

    def health(
        self,
        model: str,
        window: str = "1 day",
        version: str | None = None,
        sections: Sequence[str] | str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Production health in one long table: staleness, golden signals, ingest, dependencies.

        Version and training-data age; predictions, throughput, error rate (NULL
        predictions) and latency p50/p95/p99 per version and ``window``; ingest freshness
        and volume from ``evalstore.batches``; dependency changes between consecutive
        versions. See :func:`evalstore.metrics.health.health` (``as_of``, ``now``).
        """
        return _health.health(self._context(), model, window, version, sections, **options)

    # ------------------------------------------------------------------ flywheel

    def suggest(
        self,
        model: str,
        k: int = 100,
        strategy: str = "mix",
        version: str | None = None,
        since: Any = None,
        until: Any = None,
        window: str | None = None,
        where: str | None = None,
        seed: int = 0,
        **options: Any,
    ) -> pa.Table:
        """Suggest ``k`` unlabeled examples to label, best first, and record the requests.

        ``strategy`` is one of ``least_confidence``, ``margin``, ``entropy``,
        ``committee``, ``novelty``, ``slices``, ``diversity``, ``random`` or ``mix`` (a
        weighted combination; ``weights={...}``). Candidates are ``version``'s
        predictions (latest registered by default) in ``[since, until)`` (or the last
        ``window``) matching ``where``, with no label and no open request. Each row has
        example_id, strategy, picked_by, priority, a reason and every per-strategy score;
        each becomes an open request in ``evalstore.label_requests`` (``record=False`` to
        skip; ``expires_in='14 days'``). Options: ``weights``, ``reference``, ``by``,
        ``prior``, ``pool``, ``record``, ``expires_in``; see
        :func:`evalstore.flywheel.suggest.suggest`.
        """
        from evalstore.flywheel import suggest as _suggest

        return _suggest.suggest(
            self._context(),
            model,
            k,
            strategy,
            version,
            since,
            until,
            window,
            where,
            seed,
            **options,
        )

    def label_requests(
        self,
        model: str | None = None,
        status: str | Sequence[str] | None = None,
        strategy: str | None = None,
        example_ids: Sequence[str] | None = None,
    ) -> pa.Table:
        """Label requests (``evalstore.label_requests``), newest first, optionally filtered.

        ``status`` is ``open``, ``fulfilled`` (a label arrived; set by the label ingest),
        ``expired`` or ``cancelled`` (or a list of them). Overdue open requests are
        marked expired first.
        """
        from evalstore.core import label_requests as _label_requests

        return _label_requests.label_requests(self._context(), model, status, strategy, example_ids)

    def cancel_requests(
        self,
        model: str,
        example_ids: Sequence[str] | None = None,
        request_ids: Sequence[int] | None = None,
        strategy: str | None = None,
    ) -> int:
        """Cancel open label requests of ``model`` (all, or by example/request id or strategy).

        Returns how many were cancelled; cancelled examples may be suggested again.
        """
        from evalstore.core import label_requests as _label_requests

        return _label_requests.cancel_requests(
            self._context(), model, example_ids, request_ids, strategy
        )

    def expire_requests(self, model: str | None = None, now: Any = None) -> int:
        """Mark open requests past their ``expires_at`` (at ``now``) expired; return how many."""
        from evalstore.core import label_requests as _label_requests

        return _label_requests.expire_requests(self._context(), model, now)

    def selection(
        self,
        model: str,
        where: str | None = None,
        env: str | Sequence[str] | None = None,
        since: Any = None,
        until: Any = None,
        labeled_only: bool = True,
        version: str | None = None,
        columns: Sequence[str] | None = None,
        as_of: Any = None,
    ) -> Any:
        """The definition of a training-data selection (what :meth:`select` runs).

        Pass it to :meth:`export` (written by DuckDB without going through Python) or
        :meth:`snapshot`. Same parameters as :meth:`select`.
        """
        from evalstore.flywheel import training_data as _training_data

        with self._lock:
            return _training_data.resolve(
                self._context(),
                model,
                where,
                env,
                since,
                until,
                labeled_only,
                version,
                columns,
                as_of,
            )

    def select(
        self,
        model: str,
        where: str | None = None,
        env: str | Sequence[str] | None = None,
        since: Any = None,
        until: Any = None,
        labeled_only: bool = True,
        version: str | None = None,
        columns: Sequence[str] | None = None,
        as_of: Any = None,
        *,
        stream: bool = False,
    ) -> pa.Table | pa.RecordBatchReader:
        """Training data: features + latest labels as of ``as_of`` + predictions.

        One row per feature row in ``env`` (one or several of training, validation,
        serving; default all) with ``since <= ts < until`` matching ``where``; with the
        example's label as it stood ``as_of`` (default now; the latest label committed by
        then wins) and ``version``'s prediction (latest registered version by default).
        ``labeled_only`` drops unlabeled rows; ``columns`` picks feature columns. Returns
        an Arrow table ordered by env, example_id, or with ``stream=True`` a
        ``pyarrow.RecordBatchReader`` for selections too large for memory.
        """
        from evalstore.flywheel import training_data as _training_data

        chosen = self.selection(
            model, where, env, since, until, labeled_only, version, columns, as_of
        )
        return _training_data.select(self._context(), chosen, stream=stream)

    def export(
        self,
        selection: Any,
        path: str | PathLike[str],
        partition_by: str | Sequence[str] | None = None,
        *,
        overwrite: bool = False,
    ) -> dict[str, Any]:
        """Write a selection to Parquet: a :meth:`selection` definition, a dict of its
        arguments, an Arrow table or a RecordBatchReader (e.g. from :meth:`select`).

        ``partition_by`` writes a hive-partitioned directory. Returns path, rows and
        partition_by.
        """
        from evalstore.flywheel import training_data as _training_data

        if isinstance(selection, Mapping):
            selection = self.selection(**selection)
        return _training_data.export(
            self._context(), selection, path, partition_by, overwrite=overwrite
        )

    def snapshot(self, name: str, selection: Any, replace: bool = False) -> dict[str, Any]:
        """Record a named, reproducible selection in ``evalstore.snapshots``.

        ``selection`` is a :meth:`selection` definition or a dict of its arguments. The
        snapshot pins the last committed batch (or the one at ``as_of``) and records the
        definition, as-of time, row count and content hash; :meth:`load_snapshot` returns
        the same rows and labels later, whatever arrives meanwhile.
        """
        from evalstore.flywheel import snapshots as _snapshots

        return _snapshots.create(self._context(), name, selection, replace=replace)

    def load_snapshot(
        self, name: str, stream: bool = False, verify: bool = True
    ) -> pa.Table | pa.RecordBatchReader:
        """The rows of snapshot ``name``, exactly as when it was taken.

        With ``verify`` (default) the content hash is checked first and
        :class:`evalstore.errors.SnapshotError` raised if the rows can no longer be
        reproduced (feature rows replaced since).
        """
        from evalstore.flywheel import snapshots as _snapshots

        return _snapshots.load(self._context(), name, stream=stream, verify=verify)

    def snapshots(self, model: str | None = None) -> pa.Table:
        """List snapshots (name, model, as_of, created_at, row_count, content_hash, definition)."""
        from evalstore.flywheel import snapshots as _snapshots

        return _snapshots.listing(self._context(), model)

    def snapshot_info(self, name: str) -> dict[str, Any]:
        """One snapshot's record as a dict (``definition`` parsed)."""
        from evalstore.flywheel import snapshots as _snapshots

        return _snapshots.info(self._context(), name)

    def delete_snapshot(self, name: str) -> bool:
        """Delete a snapshot's record (the rows it selected stay in the store)."""
        from evalstore.flywheel import snapshots as _snapshots

        return _snapshots.delete(self._context(), name)

    # ------------------------------------------------------------------ ingest

    def log_features(
        self,
        model: str,
        data: Data,
        env: str = "serving",
        dataset: str | None = None,
        id_column: str = "example_id",
        ts_column: str = "ts",
        on_conflict: str = "error",
        *,
        origin: str | None = None,
    ) -> ingest_write.Receipt:
        """Log feature rows for ``model``: one row per example, one column per feature.

        ``env`` is ``training``, ``validation`` or ``serving``; ``dataset`` tags the
        rows (e.g. the training set's name). Ids are unique per model and env: an id
        already stored raises :class:`DuplicateIdError` unless ``on_conflict`` is
        ``'replace'`` (the new row wins) or ``'ignore'`` (the stored row stays).
        Columns new to the model are added; stored columns missing from the batch
        read NULL for its rows. Without a ``ts_column`` in the data, rows get the time
        of ingest.

        ``origin`` is recorded as the batch's ``source`` in ``evalstore.batches``
        (default: the file path, or the type of ``data``), as with every ``log_*``.

        Returns a :class:`Receipt` (batch id, rows, columns added).
        """
        return self._log(
            model,
            data,
            origin,
            lambda schema: ingest.plan_features(
                self._con,
                model,
                schema,
                env=env,
                dataset=dataset,
                id_column=id_column,
                ts_column=ts_column,
                on_conflict=on_conflict,
                time_range=self.limits.time_range,
            ),
        )

    def log_predictions(
        self,
        model: str,
        data: Data,
        version: str,
        id_column: str = "example_id",
        ts_column: str = "ts",
        prediction_column: str = "prediction",
        score_column: str | None = "score",
        probability_columns: Sequence[str] | Mapping[Any, str] | None = None,
        latency_column: str | None = None,
        *,
        origin: str | None = None,
    ) -> ingest_write.Receipt:
        """Log what registered ``version`` of ``model`` predicted.

        ``prediction`` is the predicted class (classification) or value (regression);
        ``score`` the positive-class probability of a binary model; for multiclass
        models ``probability_columns`` lists columns named after the classes, or maps
        ``{class: column}``. A binary batch without a prediction column derives it
        from the score and the registered threshold; a multiclass one from the largest
        probability. Classification predictions must be among the classes registered
        for ``version``. Null predictions are kept (they count as errors in health
        figures). Each (example, version) is logged once.
        """
        return self._log(
            model,
            data,
            origin,
            lambda schema: ingest.plan_predictions(
                self._con,
                model,
                schema,
                version=version,
                registration=self._registration(model, version),
                id_column=id_column,
                ts_column=ts_column,
                prediction_column=prediction_column,
                score_column=score_column,
                probability_columns=probability_columns,
                latency_column=latency_column,
                time_range=self.limits.time_range,
            ),
        )

    def log_labels(
        self,
        model: str,
        data: Data,
        id_column: str = "example_id",
        label_column: str = "label",
        ts_column: str = "ts",
        *,
        source: str | None = None,
        origin: str | None = None,
        labeled_at: Any = None,
    ) -> ingest_write.Receipt:
        """Log ground-truth labels, which may arrive long after the predictions.

        Labels are append-only: logging an example again records a correction, and
        the latest batch wins in ``labels_latest`` and ``evaluations``. Labels must
        fit the task (numbers for regression; registered classes for classification).
        ``source`` tags the batch's labels (e.g. ``'chargeback'``, ``'annotator'``).

        A label's time is when it became known (label delay and ``labels_complete``
        are measured with it): the ``ts_column`` of each row, or ``labeled_at`` (a
        datetime or ISO-8601 text) for the whole batch. Without either, labels get the
        time of ingest and the receipt's ``warnings`` say so: a batch of historical
        labels loaded today would otherwise read as months late.
        """
        when = to_timestamp(labeled_at, "labeled_at")
        return self._log(
            model,
            data,
            origin,
            lambda schema: ingest.plan_labels(
                self._con,
                model,
                schema,
                task=self._registration(model)["task"],
                classes=self._classes(model),
                id_column=id_column,
                label_column=label_column,
                ts_column=ts_column,
                source=source,
                time_range=self.limits.time_range,
                labeled_at=when,
            ),
        )

    def _log(
        self, model: str, data: Data, origin: str | None, plan_for: Any
    ) -> ingest_write.Receipt:
        self._writable()
        reader = sources.to_reader(data)
        with self._lock:
            self._registration(model)
            plan = plan_for(reader.schema)
            source = origin if origin is not None else sources.describe(data)
            return ingest_write.execute(self._con, plan, reader, source=source)

    def _writable(self) -> None:
        self._context().check_writable()
