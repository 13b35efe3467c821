"""The predictions and labels of the examples touched since a watermark, found with one
scan of each table's example keys and shared by everything a performance refresh asks of
them.

A refresh of a persisted performance call needs, for the examples that got a label or a
prediction after the stored watermark (the *touched* examples), every prediction of
theirs twice: the label horizon (:mod:`.history_horizon`) removes and re-adds their
delays, and the touched windows (:func:`.fingerprints.touched_windows`) are those of the
predictions of examples that got a new label. Each is a join of the touched keys with
every prediction's ``example_key``: on 60 million predictions the scan of that column is
most of what finding them costs. :class:`TouchedPredictions` builds the join once per
watermark, as two temporary tables, and hands them to both:

* :data:`KEYS`: ``example_key`` of every touched example (distinct) and ``new_label``,
  whether it got a label after the watermark;
* :data:`PREDICTIONS`: ``example_key``, ``ts``, ``batch_id`` and ``new_label`` of every
  prediction of a touched example;
* :data:`LABELS` (built on first use, :meth:`TouchedPredictions.labels`): every label row
  of a touched example (``example_key``, ``label``, ``ts``, ``source``, ``batch_id``,
  ``superseded_by``): the label horizon reads the touched examples' first label times
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
            SELECT example_key, bool_or(new_label) AS new_label FROM (
                SELECT example_key, true AS new_label FROM {labels} WHERE batch_id > $wl
                UNION ALL
                SELECT example_key, false FROM {predictions} WHERE batch_id > $wp
            ) GROUP BY example_key
            """,
            params,
        )
        self._con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {PREDICTIONS} AS
            SELECT p.example_key, p.ts, p.batch_id, k.new_label
            FROM {predictions} AS p JOIN {KEYS} AS k ON k.example_key = p.example_key
            """
        )

    def drop(self) -> None:
        """Drop the temporary tables (if built)."""
        if self._mark is not None:
            self._con.execute(f"DROP TABLE IF EXISTS {LABELS}")
            self._con.execute(f"DROP TABLE IF EXISTS {PREDICTIONS}")
            self._con.execute(f"DROP TABLE IF EXISTS {KEYS}")
            self._mark = None
            self._labels = False
