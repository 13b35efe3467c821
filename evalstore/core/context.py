"""What a metric family or the flywheel needs of a store: the :class:`Context`.

Families and the flywheel receive a ``Context`` (built by ``Store._context()``) instead of
the ``Store``: its connection, the lock that makes calls on that connection take turns,
the store's time limits, the registry lookup and the write check. Nothing below the facade
touches ``Store``'s private attributes, and core never needs to import a family.

>>> import evalstore
>>> store = evalstore.open()
>>> _ = store.register_model("m", "v1", "binary")
>>> ctx = store._context()
>>> ctx.registration("m")["version"]
'v1'
>>> ctx.sql("SELECT count(*) AS n FROM evalstore.models").to_pylist()
[{'n': 1}]
>>> store.close()
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.core.identifiers import check_model_name
from evalstore.errors import ReadOnlyError, UnknownModelError

if TYPE_CHECKING:
    import threading

    import duckdb

    from evalstore.core.time_limits import TimeLimits


@dataclass(frozen=True)
class Context:
    """One store handle's connection and rules, as the families and the flywheel see them.

    ``connection`` is the handle's DuckDB connection (a session's own cursor for a
    session); every use of it runs inside ``with ctx.lock:``. ``limits`` are the store's
    accepted times and windows per call; ``read_only`` whether it was opened read-only;
    ``name`` how messages name the store (``repr(store)``).
    """

    connection: duckdb.DuckDBPyConnection
    lock: threading.RLock
    limits: TimeLimits
    read_only: bool
    name: str

    def sql(self, query: str, params: Sequence[Any] | Mapping[str, Any] | None = None) -> pa.Table:
        """Run one SQL statement with bound ``params`` in turn; return Arrow (as ``Store.sql``)."""
        with self.lock:
            relation = self.connection.sql(query, params=params)
            return relation.to_arrow_table() if relation is not None else pa.table({})

    def versions(self, model: str) -> dict[str, dict[str, Any]]:
        """The registry rows of ``model`` by version, oldest first (empty if unregistered)."""
        rows = self.sql(
            "SELECT * FROM evalstore.models WHERE model = ? ORDER BY created_at, version", [model]
        ).to_pylist()
        return {row["version"]: row for row in rows}

    def registration(self, model: str, version: str | None = None) -> dict[str, Any]:
        """The registry row of ``version`` (or of the latest version) of ``model``.

        Raises :class:`~evalstore.errors.UnknownModelError` naming what to register when
        the model or the version is not in the registry.
        """
        check_model_name(model)
        versions = self.versions(model)
        if not versions:
            raise UnknownModelError(
                f"model {model!r} is not registered; call store.register_model({model!r}, "
                "version, task) first (or `evalstore register` on the command line)"
            )
        if version is None:
            return list(versions.values())[-1]
        if version not in versions:
            raise UnknownModelError(
                f"model {model!r} has no version {version!r} (registered: "
                f"{', '.join(versions)}); register it before logging its predictions"
            )
        return versions[version]

    def check_writable(self) -> None:
        """Raise :class:`~evalstore.errors.ReadOnlyError` when the store is read-only."""
        if self.read_only:
            raise ReadOnlyError(
                f"{self.name} is read-only; open it with read_only=False to write to it"
            )
