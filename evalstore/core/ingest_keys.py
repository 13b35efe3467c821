"""The group commit's set of stored example keys: the duplicate-id check without a scan.

A predictions batch may not repeat an id already stored for its version, nor a features
batch one stored for its env (``on_conflict='error'``). As SQL (the check with
:attr:`~evalstore.core.ingest.Check.stored_scope`) that is a semi-join of the batch's
keys against every stored key of the version: a scan of the whole column, 10-30 ms per
commit at a million stored rows, and ten times that at ten million, whatever the batch's
size. An ART index on ``example_key`` makes the lookup fast (under a millisecond for 32
keys at 3M rows) but doubles to triples the time of every bulk insert and the file's size
(measured in ``benchmarks/README.md``), so the stores keep no index.

:class:`StoredKeys` is held by the server's single ingest writer
(:class:`server.group_commit.GroupCommitter`) instead: per model table and scope value
(a version, an env) the 64-bit DuckDB ``hash`` of every stored ``example_key``, as a
sorted NumPy array (8 bytes a key) plus a set of the keys added since. A group whose
keys' hashes are all absent is surely free of stored ids (no false negatives); when any
hash is present (a real repeat, or a 2^-64 collision), the SQL check runs and gives the
answer and the error, exactly as without the set.

The set stays complete by catching up, inside each group's transaction and before its
insert, with one statement: the table's row count and the rows with a ``batch_id``
above the highest one seen (``batch_id`` zone maps make that a read of the newest row
group). If the count is not the one expected (rows deleted, or rows with an older batch
id committed late by another connection), the table's sets are dropped and reloaded on
next use (``SELECT DISTINCT hash(example_key) ... WHERE version = ?``: one scan, once).
Deleted rows left in a set only cost a SQL check. A key could be missed only if, between
two groups, rows committed late with older batch ids and as many rows were deleted: in
the server, whose group commit is the only writer of the model tables, neither happens
(a library ``Store.session()`` writing beside it could commit late).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
import numpy as np

from evalstore.core.identifiers import quote
from evalstore.core.layout import model_relation

#: Keys added to a scope's set before they are merged into its sorted array.
MERGE_EVERY = 65_536


@dataclass
class _Keys:
    """The hashes of one scope's stored keys: a sorted array and the keys added since."""

    stored: np.ndarray
    recent: set[int] = field(default_factory=set)

    def add(self, hashes: list[int]) -> None:
        self.recent.update(hashes)
        if len(self.recent) >= MERGE_EVERY:
            merged = np.fromiter(self.recent, dtype=np.uint64, count=len(self.recent))
            self.stored = np.union1d(self.stored, merged)
            self.recent.clear()

    def contains(self, hashes: np.ndarray) -> np.ndarray:
        """Which of ``hashes`` (uint64) are in the set: a boolean array."""
        found = np.zeros(len(hashes), dtype=bool)
        if len(self.stored):
            at = np.minimum(np.searchsorted(self.stored, hashes), len(self.stored) - 1)
            found = self.stored[at] == hashes
        if self.recent:
            found |= np.fromiter((h in self.recent for h in hashes.tolist()), bool, len(hashes))
        return found

    def any_of(self, hashes: list[int]) -> bool:
        """Whether any of ``hashes`` is in the set."""
        if any(h in self.recent for h in hashes):
            return True
        return bool(len(self.stored)) and bool(
            self.contains(np.array(hashes, dtype=np.uint64)).any()
        )

    def __len__(self) -> int:
        return len(self.stored) + len(self.recent)


@dataclass
class _Table:
    """What is known of one model table: its row count, the highest batch id seen, and
    the key sets of the scopes loaded so far (by scope column and value)."""

    rows: int
    upto: int
    scopes: dict[tuple[str, Any], _Keys] = field(default_factory=dict)


class StoredKeys:
    """Stored example-key hashes per model table and scope (see the module docstring).

    Use it from one writer at a time (the group commit's thread), inside the write
    transaction: :meth:`keys` before inserting the group's rows.
    """

    def __init__(self) -> None:
        self._tables: dict[tuple[str, str], _Table] = {}
        self._relations: dict[tuple[str, str], str] = {}
        self.reloads = 0

    def relation(self, con: duckdb.DuckDBPyConnection, model: str, table: str) -> str:
        """:func:`~evalstore.core.layout.model_relation` of ``model``'s ``table``, asked
        once (the connection's catalog name cannot change; each ask is a query)."""
        if (model, table) not in self._relations:
            self._relations[model, table] = model_relation(con, model, table)
        return self._relations[model, table]

    def keys(
        self,
        con: duckdb.DuckDBPyConnection,
        model: str,
        table: str,
        relation: str,
        column: str | None,
        value: Any = None,
        *,
        sync: bool = True,
    ) -> _Keys:
        """The key set of ``relation`` (``model``'s ``table``) for ``column = value``
        (``column=None``: the whole table), brought up to date with what is committed
        (call it before inserting). ``sync=False`` skips the catch-up query when the set
        is loaded: for a caller that knows nothing was committed since the last one (the
        journal's writer, :mod:`evalstore.core.journal_prepare`)."""
        scope = (column, value)
        loaded = self._tables.get((model, table))
        if not sync and loaded is not None and scope in loaded.scopes:
            return loaded.scopes[scope]
        known = self._sync(con, (model, table), relation)
        if scope not in known.scopes:
            self.reloads += 1
            where, params = (
                ("", {}) if column is None else (f" WHERE {quote(column)} = $v", {"v": value})
            )
            hashes = con.execute(
                f"SELECT hash(example_key) AS h FROM {relation}{where}", params
            ).fetchnumpy()["h"]  # (sorted by NumPy: 5x faster than DuckDB's ORDER BY here)
            known.scopes[scope] = _Keys(np.sort(np.asarray(hashes, dtype=np.uint64)))
        return known.scopes[scope]

    def tables(self) -> list[tuple[str, str]]:
        """The (model, table) pairs with key sets loaded."""
        return list(self._tables)

    def forget(self) -> None:
        """Drop every set (they are reloaded on next use)."""
        self._tables.clear()

    def _sync(self, con: duckdb.DuckDBPyConnection, name: tuple[str, str], relation: str) -> _Table:
        known = self._tables.get(name)
        if known is None:
            rows, upto = con.execute(
                f"SELECT count(*), coalesce(max(batch_id), -1) FROM {relation}"
            ).fetchall()[0]
            known = self._tables[name] = _Table(rows, upto)
            return known
        columns = sorted({column for column, _ in known.scopes if column is not None})
        rows = con.execute(
            "SELECT c.n, new.* FROM (SELECT count(*) AS n FROM "
            f"{relation}) AS c LEFT JOIN (SELECT batch_id, hash(example_key) AS h"
            f"{''.join(', ' + quote(c) for c in columns)} FROM {relation} "
            "WHERE batch_id > $upto) AS new ON true",
            {"upto": known.upto},
        ).fetchall()
        total = rows[0][0]
        new = [row for row in rows if row[1] is not None]
        if total != known.rows + len(new):  # deletes, or rows committed late: start again
            del self._tables[name]
            return self._sync(con, name, relation)
        known.rows = total
        if new:
            known.upto = max(known.upto, max(row[1] for row in new))
            for (column, value), keys in known.scopes.items():
                if column is None:
                    keys.add([row[2] for row in new])
                    continue
                at = 3 + columns.index(column)
                keys.add([row[2] for row in new if row[at] == value])
        return known
