"""The lake export on the :class:`~evalstore.Store`: :class:`LakeMethods`
(``store.export_lake``), writing a model's rows in the layout of :mod:`evalstore.core.lake`
for engines that run past one machine (:mod:`evalstore.engines.spark`)."""

from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING

import pyarrow as pa

from evalstore.core import lake
from evalstore.core.db import transaction
from evalstore.errors import translate_duckdb_errors

if TYPE_CHECKING:
    from evalstore.core.context import Context


@translate_duckdb_errors
class LakeMethods:
    """``export_lake`` of :class:`~evalstore.Store` (a mixin; see :mod:`evalstore.facade`)."""

    if TYPE_CHECKING:

        def _context(self) -> Context: ...

    def export_lake(
        self, model: str, path: str | PathLike[str], *, overwrite: bool = False
    ) -> pa.Table:
        """Write ``model``'s features, predictions, labels and registry rows to ``path`` as
        hive-partitioned Parquet (the lake layout of :mod:`evalstore.core.lake`, stated in
        docs/scaling.md): ``kind=features/env=<env>/day=<day>/``,
        ``kind=predictions/day=<day>/``, ``kind=labels/day=<day>/`` (append-only: a
        correction is a later row with a larger ``batch_id``) and ``kind=models/``.

        ``path`` must be a new or empty directory; ``overwrite=True`` replaces a lake
        already there. The rows are read in one snapshot. Returns one row per kind:
        kind, directory, rows, files.

        >>> import evalstore, pyarrow as pa, tempfile
        >>> store = evalstore.open()
        >>> _ = store.register_model("m", "v1", "binary")
        >>> _ = store.log_features("m", pa.table({"example_id": ["a"], "x": [1.0]}))
        >>> with tempfile.TemporaryDirectory() as lake_dir:
        ...     written = store.export_lake("m", lake_dir)
        >>> written.select(["kind", "rows"]).to_pylist()[0]
        {'kind': 'features', 'rows': 1}
        >>> store.close()
        """
        ctx = self._context()
        ctx.registration(model)
        with ctx.lock, transaction(ctx.connection):
            written = lake.export_lake(ctx.connection, model, path, overwrite=overwrite)
        return pa.table(
            {
                "kind": [w.kind for w in written],
                "directory": [w.directory for w in written],
                "rows": pa.array([w.rows for w in written], pa.int64()),
                "files": pa.array([w.files for w in written], pa.int64()),
            }
        )
