"""Performance before labels arrive on the :class:`~evalstore.Store`: :class:`EstimationMethods`.

One method, :meth:`EstimationMethods.estimate_performance`, handing the store's
:class:`~evalstore.core.context.Context` to
:func:`evalstore.metrics.estimation.estimate.estimate_performance`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.core.windows import name_split
from evalstore.errors import translate_duckdb_errors
from evalstore.metrics.estimation import estimate as _estimate

if TYPE_CHECKING:
    from evalstore.core.context import Context


@translate_duckdb_errors
class EstimationMethods:
    """The estimation method of :class:`~evalstore.Store` (a mixin; see
    :mod:`evalstore.facade`). Relies on the store's ``_context()``."""

    if TYPE_CHECKING:

        def _context(self) -> Context: ...

    def estimate_performance(
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
        *,
        reference: Any = "training",
        method: str | None = None,
        **options: Any,
    ) -> pa.Table:
        """Performance per window, version and slice estimated before the labels arrive.

        CBPE (``method="cbpe"``, binary and multiclass models) reads calibrated scores as
        the chance each prediction is right; DLE (``method="dle"``, regression) predicts
        each row's error with a model trained on the labeled ``reference``. The result has
        the shape of :meth:`performance` (``value`` the estimate, ``ci_low``/``ci_high``
        its sampling band) plus ``estimated``, ``realized`` (the realized value where
        labels exist, else NULL), its interval, alert thresholds learned on reference
        chunks, ``alert`` and ``diverged`` (realized outside the band: the assumption
        fails). See :func:`evalstore.metrics.estimation.estimate.estimate_performance`
        and docs/estimation.md.

        >>> import evalstore, pyarrow as pa
        >>> store = evalstore.open()
        >>> _ = store.register_model("m", "v1", "binary")
        >>> ids = [f"r{i}" for i in range(8)]
        >>> scores = [0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9]
        >>> _ = store.log_predictions("m", pa.table({"example_id": ids, "score": scores,
        ...     "ts": ["2026-01-01"] * 8}), version="v1")
        >>> _ = store.log_labels("m", pa.table({"example_id": ids[:4] + ids[6:],
        ...     "label": [0, 0, 1, 0, 1, 1]}))
        >>> table = store.estimate_performance("m", metrics=["accuracy"], window="100 years",
        ...     reference=("2026-01-01", "2026-01-02"), reference_chunks=3)
        >>> table.select(["metric", "value", "realized", "n", "labeled"]).to_pylist()[0]
        {'metric': 'accuracy', 'value': 0.828125, 'realized': 0.833..., 'n': 8, 'labeled': 6}
        >>> store.close()
        """
        return name_split(
            _estimate.estimate_performance(
                self._context(), model, metrics, window, by, version, where, since, until,
                threshold, reference=reference, method=method, **options,
            ),
            window,
        )  # fmt: skip
