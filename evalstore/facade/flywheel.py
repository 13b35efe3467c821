"""The labeling flywheel on the :class:`~evalstore.Store`: :class:`FlywheelMethods`.

Suggestions of examples to label and the label requests they record
(:mod:`evalstore.flywheel.suggest`, :mod:`evalstore.core.label_requests`), training-data
selections and their Parquet export (:mod:`evalstore.flywheel.training_data`) and named,
reproducible snapshots (:mod:`evalstore.flywheel.snapshots`). The flywheel modules are
imported when a method is first called, so ``import evalstore`` stays light.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from os import PathLike
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.errors import translate_duckdb_errors

if TYPE_CHECKING:
    import threading

    from evalstore.core.context import Context


@translate_duckdb_errors
class FlywheelMethods:
    """The flywheel methods of :class:`~evalstore.Store` (a mixin; see
    :mod:`evalstore.facade`). Relies on the store's ``_context()`` and on ``_lock``, the
    lock that makes calls on the store's one connection take turns."""

    if TYPE_CHECKING:
        _lock: threading.RLock

        def _context(self) -> Context: ...

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
