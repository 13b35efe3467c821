"""The :class:`Store`: an evaluation store in one DuckDB database, opened in-process.

This module holds the handle itself: opening, closing, sessions, ``sql``, the model
registry and the ingest write path (``_log``). The methods that hand a call to a metric
family, the flywheel or the ingest planner are inherited from the mixins of
:mod:`evalstore.facade` (one module per concern).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from evalstore.core import ingest_write, journal, registry, sources, udfs
from evalstore.core.context import Context
from evalstore.core.db import transaction, utc_cursor
from evalstore.core.identifiers import check_model_name
from evalstore.core.ingest_call import check_batch_key
from evalstore.core.layout import check_catalog, check_readable, create_model_schema, migrate
from evalstore.core.macros import install_macros
from evalstore.core.time_limits import TimeLimits
from evalstore.core.values import refresh_value_views
from evalstore.errors import (
    InvalidParameterError,
    ModelConflictError,
    translate_duckdb_errors,
)
from evalstore.facade.analysis import AnalysisMethods
from evalstore.facade.estimation import EstimationMethods
from evalstore.facade.flywheel import FlywheelMethods
from evalstore.facade.ingest import Data, IngestMethods
from evalstore.facade.lake import LakeMethods
from evalstore.facade.monitoring import MonitoringMethods
from evalstore.facade.reporting import ReportingMethods


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
class Store(
    AnalysisMethods,
    EstimationMethods,
    FlywheelMethods,
    IngestMethods,
    LakeMethods,
    MonitoringMethods,
    ReportingMethods,
):
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
        #: registrations made through this handle (the server's journal caches plans until
        #: it changes: in the server, the one writer, no registration escapes it)
        self.registry_changes = 0
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
                if self.path is not None:
                    journal.check_applied(self._con, self.path)
            else:
                migrate(self._con)
                install_macros(self._con)
                if self.path is not None:  # the server's acknowledged, unapplied requests
                    journal.replay(self._con, self.path)
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
            self.registry_changes += 1  # after the commit: plan caches watch it
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

    # ------------------------------------------------------------------ ingest (write path)

    def _log(
        self,
        model: str,
        data: Data,
        origin: str | None,
        batch_key: str | None,
        plan_for: Any,
    ) -> ingest_write.Receipt:
        self._writable()
        check_batch_key(batch_key)
        reader = sources.to_reader(data)
        with self._lock:
            self._registration(model)
            plan = plan_for(reader.schema)
            source = origin if origin is not None else sources.describe(data)
            return ingest_write.execute(self._con, plan, reader, source=source, batch_key=batch_key)

    def _writable(self) -> None:
        self._context().check_writable()
