"""Logging data into the :class:`~evalstore.Store`: :class:`IngestMethods`.

``log_features``, ``log_predictions`` and ``log_labels`` check their arguments against
the registry and plan the write with :mod:`evalstore.core.ingest`; the store's ``_log``
then reads the data (:mod:`evalstore.core.sources`) and writes the planned batch in one
transaction (:mod:`evalstore.core.ingest_write`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from evalstore.core import ingest, ingest_write
from evalstore.core.registry import to_timestamp
from evalstore.errors import translate_duckdb_errors

if TYPE_CHECKING:
    import duckdb

    from evalstore.core.time_limits import TimeLimits

Data = Any  # anything sources.to_reader accepts


@translate_duckdb_errors
class IngestMethods:
    """The ``log_*`` methods of :class:`~evalstore.Store` (a mixin; see
    :mod:`evalstore.facade`). Relies on the store's connection ``_con``, its time
    ``limits``, the registry lookups ``_registration()`` and ``_classes()``, and
    ``_log()``, which validates, reads and writes one batch."""

    if TYPE_CHECKING:
        _con: duckdb.DuckDBPyConnection
        limits: TimeLimits

        def _registration(self, model: str, version: str | None = None) -> dict[str, Any]: ...

        def _classes(self, model: str) -> list[str] | None: ...

        def _log(
            self,
            model: str,
            data: Data,
            origin: str | None,
            batch_key: str | None,
            plan_for: Any,
        ) -> ingest_write.Receipt: ...

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
        batch_key: str | None = None,
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

        ``batch_key`` (every ``log_*``) makes a retry safe: a client-chosen id of the
        batch (1 to 128 printable characters, e.g. a UUID) sent again unchanged when
        the call is retried. If ``evalstore.batches`` already holds the key for this
        model and kind, nothing is written and the first call's receipt is returned
        with ``duplicate=True``. Keys are kept with the batches for good, so a retry is
        recognised after a restart too.

        Returns a :class:`Receipt` (batch id, rows, columns added).
        """
        return self._log(
            model,
            data,
            origin,
            batch_key,
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
        batch_key: str | None = None,
    ) -> ingest_write.Receipt:
        """Log what registered ``version`` of ``model`` predicted.

        ``prediction`` is the predicted class (classification) or value (regression);
        ``score`` the positive-class probability of a binary model; for multiclass
        models ``probability_columns`` lists columns named after the classes, or maps
        ``{class: column}``. A binary batch without a prediction column derives it
        from the score and the registered threshold; a multiclass one from the largest
        probability. Classification predictions must be among the classes registered
        for ``version``. Null predictions are kept (they count as errors in health
        figures). Each (example, version) is logged once. ``batch_key``: see
        :meth:`log_features`.
        """
        return self._log(
            model,
            data,
            origin,
            batch_key,
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
        batch_key: str | None = None,
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
        labels loaded today would otherwise read as months late. ``batch_key``: see
        :meth:`log_features`.
        """
        when = to_timestamp(labeled_at, "labeled_at")
        return self._log(
            model,
            data,
            origin,
            batch_key,
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
