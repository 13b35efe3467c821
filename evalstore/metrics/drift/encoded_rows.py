"""The rows of multivariate drift, encoded only where and when a method needs them.

Multivariate drift works on one numeric matrix per side: the numeric features, then the
categorical ones encoded by :mod:`evalstore.metrics.drift.encoding` (one column per
feature with ``count``, one per reference category with ``onehot``). Encoding every row
of a large reference at once costs rows x columns floats (2M rows with 10 one-hot
features of 50 levels: 8 GB) although ``mmd`` and ``domain_classifier`` then keep at most
``max_rows`` / ``classifier_rows`` of them. :class:`EncodedRows` keeps the rows in their
compact form instead (the numeric cells, and one integer code per categorical cell) and
encodes

* the chosen rows alone (:meth:`EncodedRows.take`), after the seeded subsample
  (:func:`subsample_index`, the same draw as before, so the same rows and values), and
* all rows of a side in blocks of at most :data:`BLOCK_CELLS` cells
  (:meth:`EncodedRows.blocks`), for ``pca``, whose fit and errors use every row, and for
  the reference means and standard deviations ``mmd`` standardises with.

So memory is bounded by the compact rows plus one block, whatever the encoding's width.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from evalstore.metrics.drift.encoding import CategoricalEncoding

__all__ = ["BLOCK_CELLS", "EncodedRows", "mean_and_std", "subsample_index"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Encoded cells (float64) per block of :meth:`EncodedRows.blocks`: 32 MB.
BLOCK_CELLS = 1 << 22


def subsample_index(index: IntArray, cap: int, rng: np.random.Generator) -> IntArray:
    """At most ``cap`` entries of ``index``, drawn without replacement by ``rng`` and kept in
    their order: ``index[sort(rng.choice(len(index), cap, replace=False))]``, which draws
    nothing from ``rng`` when ``index`` has at most ``cap`` entries (the draw the MMD test
    and the domain classifier make on the encoded rows, made here on row numbers)."""
    if len(index) <= cap:
        return index
    return index[np.sort(rng.choice(len(index), size=cap, replace=False))]


@dataclass(frozen=True)
class EncodedRows:
    """Rows of the multivariate methods before encoding (see the module docstring).

    ``numeric``: rows x numeric features (NaN for a missing value); ``codes``: one array
    per categorical feature, each row's position in ``encoding.levels`` (after missing
    values were replaced by ``encoding.fill``; -1 for a category without a level).
    """

    numeric: FloatArray
    codes: tuple[IntArray, ...]
    encoding: CategoricalEncoding | None

    @classmethod
    def from_arrow(
        cls,
        rows: pa.Table,
        n_numeric: int,
        names: Sequence[str],
        is_reference: npt.NDArray[np.bool_],
        encoding: str,
    ) -> EncodedRows:
        """Read the numeric columns ``f0, f1, ...`` and categorical columns ``c0, c1, ...``
        of ``rows`` (multivariate drift's wide rows), fitting the categorical encoding on
        the rows where ``is_reference`` holds (from their value counts). With categorical
        features and no reference row nothing can be encoded: the rows have no column."""
        n = rows.num_rows
        if names and not is_reference.any():
            return cls(np.empty((n, 0)), (), None)
        numeric = np.empty((n, n_numeric))
        for i in range(n_numeric):
            column = rows.column(f"f{i}").to_numpy(zero_copy_only=False)
            numeric[:, i] = np.asarray(column, dtype=float)
        if not names:
            return cls(numeric, (), None)
        mask = pa.array(is_reference)
        counts, missing = [], []
        for i in range(len(names)):
            reference = rows.column(f"c{i}").filter(mask)
            tallies = pc.value_counts(reference.drop_null())
            counts.append(
                dict(
                    zip(
                        tallies.field("values").to_pylist(),
                        tallies.field("counts").to_pylist(),
                        strict=True,
                    )
                )
            )
            missing.append(reference.null_count)
        fitted = CategoricalEncoding.from_counts(counts, missing, encoding, names)
        codes = []
        for i, levels in enumerate(fitted.levels):
            filled = pc.fill_null(rows.column(f"c{i}"), fitted.fill[i])
            position = pc.index_in(filled, value_set=pa.array(levels, pa.string()))
            codes.append(pc.fill_null(position, -1).to_numpy().astype(np.int64))
        return cls(numeric, tuple(codes), fitted)

    @property
    def width(self) -> int:
        """Columns of an encoded row (numeric features, then the encoded categorical ones)."""
        extra = self.encoding.width if self.encoding is not None else 0
        return self.numeric.shape[1] + extra

    @property
    def block_rows(self) -> int:
        """Rows per block of :meth:`blocks`."""
        return max(1, BLOCK_CELLS // max(self.width, 1))

    def finite(self) -> npt.NDArray[np.bool_]:
        """Whether each row's cells are all finite (encoded categorical cells always are)."""
        return np.isfinite(self.numeric).all(axis=1)

    def take(self, index: npt.ArrayLike) -> FloatArray:
        """The encoded rows ``index`` (rows x :attr:`width`), in that order."""
        idx = np.asarray(index, dtype=np.int64)
        numeric = self.numeric[idx]
        if self.encoding is None:
            return numeric
        encoded = self.encoding.transform_codes([c[idx] for c in self.codes])
        return np.hstack([numeric, encoded])

    def blocks(self, index: npt.ArrayLike) -> Iterator[FloatArray]:
        """The encoded rows ``index`` in order, :attr:`block_rows` at a time."""
        idx = np.asarray(index, dtype=np.int64)
        step = self.block_rows
        for start in range(0, len(idx), step):
            yield self.take(idx[start : start + step])


def mean_and_std(rows: EncodedRows, index: IntArray) -> tuple[FloatArray, FloatArray]:
    """Column means and standard deviations (ddof=0) of the encoded rows ``index``: numpy's
    ``mean(axis=0)`` and ``std(axis=0)`` when they fit in one block, else the same two-pass
    formulas summed block by block (equal up to rounding)."""
    if len(index) <= rows.block_rows:
        x = rows.take(index)
        return x.mean(axis=0), x.std(axis=0)
    total = np.zeros(rows.width)
    for block in rows.blocks(index):
        total += block.sum(axis=0)
    mean = total / len(index)
    squares = np.zeros(rows.width)
    for block in rows.blocks(index):
        squares += ((block - mean) ** 2).sum(axis=0)
    return mean, np.sqrt(squares / len(index))
