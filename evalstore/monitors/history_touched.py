"""The predictions and labels of the examples touched since a watermark, found with at
most one scan of each table's example keys and shared by everything a performance
refresh asks of them.

A refresh of a persisted performance call needs, for the examples that got a label or a
prediction after the stored watermark (the *touched* examples), every prediction of
theirs twice: the label horizon (:mod:`.history_horizon`) removes and re-adds their
delays, and the touched windows (:func:`.fingerprints.touched_windows`) are those of the
predictions of examples that got a new label. Each is a join of the touched keys with
every prediction's ``example_key``: on 60 million predictions the scan of that column is
most of what finding them costs. :class:`TouchedPredictions` builds the join once per
watermark, as two temporary tables, and hands them to both:

* :data:`KEYS`: ``example_key`` of every touched example (distinct), ``new_label``
  and ``new_prediction``, whether it got a label, a prediction after the watermark;
* :data:`PREDICTIONS`: ``example_key``, ``ts``, ``batch_id`` and ``new_label`` of every
  prediction of a touched example. When the model's prediction batches
  (``evalstore.batches``) name one version, an example predicted after the watermark
  has no older prediction: a predictions batch may not repeat an id stored for its
  version (:class:`~evalstore.errors.DuplicateIdError`; predictions take no
  ``on_conflict``). Then only the examples that got a label and no prediction after
  the watermark (late labels) are looked up among the older predictions, and not at
  all when there are none (a pipeline logging a day's predictions and labels
  together): the new predictions are read from the newest row groups alone. With
  several versions every prediction's key is looked up;
* :data:`LABELS` (built on first use, :meth:`TouchedPredictions.labels`): every label row
  of a touched example (``example_key``, ``label``, ``ts``, ``source``, ``batch_id``,
  ``superseded_by``; an example's label may be older than its prediction, so every
  label's key is looked up): the label horizon reads the touched examples' first label times
  from it, and a recomputed window whose predictions all belong to touched examples
  (:meth:`TouchedPredictions.covers`; the new day of a refresh) joins its predictions
  with these labels instead of every label of the model
  (:func:`evalstore.metrics.performance.labels_from`).

The tables are built inside the caller's transaction and dropped by :meth:`drop`.
"""

from __future__ import annotations

from datetime import datetime

import duckdb

from evalstore.core.layout import model_relation

#: The temporary table of the touched examples' keys.
KEYS = "evalstore_touched_keys"
#: The temporary table of the touched examples' predictions.
PREDICTIONS = "evalstore_touched_predictions"
#: The temporary table of the touched examples' labels.
LABELS = "evalstore_touched_labels"


class TouchedPredictions:
    """The touched examples of ``model`` and their predictions since a watermark (the
    highest labels and predictions batch ids seen, -1 for none), built on first use
    and rebuilt only when asked for another watermark."""

    def __init__(self, con: duckdb.DuckDBPyConnection, model: str) -> None:
        self._con = con
        self._model = model
        self._mark: tuple[int, int] | None = None
        self._labels = False  # whether LABELS holds the labels of this watermark

    def tables(self, labels_after: int, predictions_after: int) -> tuple[str, str]:
        """Names of the temporary tables :data:`KEYS` and :data:`PREDICTIONS` for the
        examples that got a label after batch ``labels_after`` or a prediction after
        batch ``predictions_after`` (built now unless they hold that watermark)."""
        mark = (int(labels_after), int(predictions_after))
        if self._mark != mark:
            self._build(*mark)
            self._mark = mark
            self._labels = False
        return KEYS, PREDICTIONS

    def labels(self) -> str:
        """Name of the temporary table :data:`LABELS`: every label row of the examples
        of the tables last built by :meth:`tables` (built now on first use)."""
        if self._mark is None:
            raise RuntimeError("TouchedPredictions.labels() needs tables() first")
        if not self._labels:
            labels = model_relation(self._con, self._model, "labels")
            self._con.execute(
                f"""
                CREATE OR REPLACE TEMP TABLE {LABELS} AS
                SELECT l.example_key, l.label, l.ts, l.source, l.batch_id, l.superseded_by
                FROM {labels} AS l JOIN {KEYS} AS k ON k.example_key = l.example_key
                """
            )
            self._labels = True
        return LABELS

    def covers(self, since: datetime, until: datetime) -> bool:
        """Whether the tables are built and every prediction of the model with ``ts`` in
        ``[since, until)`` is one of a touched example (then :data:`LABELS` holds every
        label those predictions can be joined with)."""
        if self._mark is None:
            return False
        predictions = model_relation(self._con, self._model, "predictions")
        within = "ts >= $since AND ts < $until"
        rows = self._con.execute(
            f"SELECT (SELECT count(*) FROM {predictions} WHERE {within}) "
            f"= (SELECT count(*) FROM {PREDICTIONS} WHERE {within})",
            {"since": since, "until": until},
        ).fetchall()
        return bool(rows[0][0])

    def _build(self, labels_after: int, predictions_after: int) -> None:
        labels = model_relation(self._con, self._model, "labels")
        predictions = model_relation(self._con, self._model, "predictions")
        params = {"wl": labels_after, "wp": predictions_after}
        # batch_id > watermark is answered from the row groups' min/max statistics;
        # a join with the keys' table, not IN (subquery), which DuckDB plans as a
        # slower mark join
        self._con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {KEYS} AS
            SELECT example_key, bool_or(new_label) AS new_label,
                   bool_or(NOT new_label) AS new_prediction FROM (
                SELECT example_key, true AS new_label FROM {labels} WHERE batch_id > $wl
                UNION ALL
                SELECT example_key, false FROM {predictions} WHERE batch_id > $wp
            ) GROUP BY example_key
            """,
            params,
        )
        columns = "p.example_key, p.ts, p.batch_id, k.new_label"
        if self._versions() > 1:
            # an example may hold older predictions of other versions: every
            # prediction's key is looked up
            self._con.execute(
                f"CREATE OR REPLACE TEMP TABLE {PREDICTIONS} AS SELECT {columns} "
                f"FROM {predictions} AS p JOIN {KEYS} AS k ON k.example_key = p.example_key"
            )
            return
        # one version: the new predictions, then the older predictions of the examples
        # that got a label but no prediction after the watermark (late labels), looked
        # up among the older rows only when there are such examples
        self._con.execute(
            f"CREATE OR REPLACE TEMP TABLE {PREDICTIONS} AS SELECT {columns} "
            f"FROM {predictions} AS p JOIN {KEYS} AS k ON k.example_key = p.example_key "
            "WHERE p.batch_id > $wp",
            {"wp": predictions_after},
        )
        late = self._con.execute(
            f"SELECT count(*) FROM {KEYS} WHERE NOT new_prediction"
        ).fetchall()[0][0]
        if late:
            self._con.execute(
                f"INSERT INTO {PREDICTIONS} SELECT {columns} FROM {predictions} AS p "
                f"JOIN (SELECT example_key, new_label FROM {KEYS} WHERE NOT new_prediction) "
                "AS k ON k.example_key = p.example_key WHERE p.batch_id <= $wp",
                {"wp": predictions_after},
            )

    def _versions(self) -> int:
        """How many versions (NULL counting as one) the model's prediction batches
        name in ``evalstore.batches`` (a small table)."""
        rows = self._con.execute(
            "SELECT count(*) FROM (SELECT DISTINCT version FROM evalstore.batches "
            "WHERE model = ? AND kind = 'predictions')",
            [self._model],
        ).fetchall()
        return int(rows[0][0])

    def drop(self) -> None:
        """Drop the temporary tables (if built)."""
        if self._mark is not None:
            self._con.execute(f"DROP TABLE IF EXISTS {LABELS}")
            self._con.execute(f"DROP TABLE IF EXISTS {PREDICTIONS}")
            self._con.execute(f"DROP TABLE IF EXISTS {KEYS}")
            self._mark = None
            self._labels = False
