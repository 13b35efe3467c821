"""Numeric encodings of categorical features for multivariate drift (PCA, MMD, domain classifier).

The multivariate methods work on a matrix of numbers; a categorical feature enters it
through one of two encodings, both fitted on the reference alone (so every window is
encoded the same way):

``count`` (NannyML's choice for its data-reconstruction drift)
    one column per feature holding the share of the reference rows that have the row's
    category (``category_encoders.CountEncoder(normalize=True)``); a category the
    reference never saw is encoded 0.
``onehot``
    one 0/1 column per reference category, at most :data:`ONEHOT_MAX_LEVELS` per feature
    (the most frequent ones; ties in frequency by category text); a category without a
    column (unseen in the reference, or rarer than the kept ones) is all zeros.

Missing values (``None``/NULL) are first replaced by the reference's most frequent
category, ties broken by the smallest text (``sklearn.impute.SimpleImputer(
strategy="most_frequent")``, what NannyML uses before encoding), in the reference and in
the windows alike; the shares of ``count`` are those of the imputed reference. A feature
whose reference values are all missing cannot be encoded and raises
:class:`~evalstore.errors.InvalidParameterError`.

>>> enc = CategoricalEncoding.fit([["a", "a", "b", None]], "count")
>>> enc.transform([["a", "b", "z", None]]).tolist()
[[0.75], [0.25], [0.0], [0.75]]
>>> CategoricalEncoding.fit([["a", "b", "b"]], "onehot").transform([["b", "c"]]).tolist()
[[1.0, 0.0], [0.0, 0.0]]
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from evalstore.errors import InvalidParameterError

__all__ = ["ENCODINGS", "ONEHOT_MAX_LEVELS", "CategoricalEncoding", "check_encoding"]

#: The encodings of categorical features, by name (the ``categorical_encoding`` option).
ENCODINGS = ("count", "onehot")
#: Columns ``onehot`` makes per feature at most (the most frequent reference categories).
ONEHOT_MAX_LEVELS = 50


def check_encoding(encoding: object) -> str:
    """``encoding`` if it names an encoding of :data:`ENCODINGS`, else an error naming them."""
    if not isinstance(encoding, str) or encoding not in ENCODINGS:
        raise InvalidParameterError(
            f"categorical_encoding={encoding!r} is not an encoding of categorical features; "
            f"choose from {', '.join(ENCODINGS)}"
        )
    return encoding


@dataclass(frozen=True)
class CategoricalEncoding:
    """An encoding of categorical columns fitted on a reference (see the module docstring).

    ``fill[i]`` is the category replacing a missing value of column ``i``; ``levels[i]``
    its reference categories in column order (``onehot``: the columns; ``count``: all of
    them) and ``shares[i]`` their shares of the imputed reference rows.
    """

    encoding: str
    fill: tuple[str, ...]
    levels: tuple[tuple[str, ...], ...]
    shares: tuple[tuple[float, ...], ...]

    @classmethod
    def fit(
        cls,
        columns: Sequence[Sequence[str | None]],
        encoding: str,
        names: Sequence[str] | None = None,
    ) -> CategoricalEncoding:
        """Fit on the reference: ``columns`` holds one sequence of values per feature
        (``names``: the features' names, for error messages)."""
        counts = [Counter(v for v in column if v is not None) for column in columns]
        missing = [sum(1 for v in column if v is None) for column in columns]
        return cls.from_counts(counts, missing, encoding, names)

    @classmethod
    def from_counts(
        cls,
        counts: Sequence[Mapping[str, int]],
        missing: Sequence[int],
        encoding: str,
        names: Sequence[str] | None = None,
    ) -> CategoricalEncoding:
        """Fit on the reference's value counts: ``counts[i]`` maps each category of feature
        ``i`` to its number of reference rows, ``missing[i]`` counts its missing values (the
        same encoding as :meth:`fit` on the values, without holding them)."""
        check_encoding(encoding)
        fill, levels, shares = [], [], []
        for i, (observed, n_missing) in enumerate(zip(counts, missing, strict=True)):
            counts_i = Counter(observed)
            if not counts_i:
                name = repr(names[i]) if names is not None else f"column {i}"
                raise InvalidParameterError(
                    f"categorical feature {name} has no non-missing value in the reference, "
                    "so it cannot be encoded; leave it out of features="
                )
            # most frequent first; equal counts by text, so the fill is SimpleImputer's
            ranked = sorted(counts_i.items(), key=lambda item: (-item[1], item[0]))
            top = ranked[0][0]
            counts_i[top] += n_missing
            ranked = sorted(counts_i.items(), key=lambda item: (-item[1], item[0]))
            if encoding == "onehot":
                ranked = ranked[:ONEHOT_MAX_LEVELS]
            total = sum(counts_i.values())
            fill.append(top)
            levels.append(tuple(level for level, _ in ranked))
            shares.append(tuple(count / total for _, count in ranked))
        return cls(encoding, tuple(fill), tuple(levels), tuple(shares))

    @property
    def width(self) -> int:
        """Number of numeric columns :meth:`transform` returns."""
        if self.encoding == "count":
            return len(self.levels)
        return sum(len(levels) for levels in self.levels)

    def column_names(self, features: Sequence[str]) -> list[str]:
        """Names of the encoded columns for the features ``features`` (``f`` or ``f=level``)."""
        if self.encoding == "count":
            return list(features)
        return [
            f"{f}={level}"
            for f, levels in zip(features, self.levels, strict=True)
            for level in levels
        ]

    def transform(self, columns: Sequence[Sequence[str | None]]) -> npt.NDArray[np.float64]:
        """The encoded rows (rows x :attr:`width`) of ``columns`` (one sequence per feature,
        all of the same length)."""
        if len(columns) != len(self.levels):
            raise InvalidParameterError(
                f"expected {len(self.levels)} categorical columns like the reference; "
                f"got {len(columns)}"
            )
        codes = []
        for i, column in enumerate(columns):
            position = {level: j for j, level in enumerate(self.levels[i])}
            fill = position.get(self.fill[i], -1)
            codes.append(
                np.array(
                    [fill if v is None else position.get(v, -1) for v in column], dtype=np.int64
                )
            )
        return self.transform_codes(codes)

    def transform_codes(self, codes: Sequence[npt.ArrayLike]) -> npt.NDArray[np.float64]:
        """The encoded rows of categories given as codes: ``codes[i][r]`` is the position of
        row ``r``'s category (missing values already replaced by ``fill[i]``) in
        ``levels[i]``, or -1 for a category without a level (unseen in the reference, or
        beyond the one-hot columns). ``count`` gives the level's share (0 for -1),
        ``onehot`` a 1 in the level's column (none for -1)."""
        if len(codes) != len(self.levels):
            raise InvalidParameterError(
                f"expected {len(self.levels)} categorical columns like the reference; "
                f"got {len(codes)}"
            )
        arrays = [np.asarray(c, dtype=np.int64) for c in codes]
        n_rows = len(arrays[0]) if arrays else 0
        out = np.zeros((n_rows, self.width))
        offset = 0
        for i, where in enumerate(arrays):
            if self.encoding == "count":
                # position -1 reads the appended 0.0: the share of an unseen category
                out[:, offset] = np.append(np.asarray(self.shares[i], dtype=float), 0.0)[where]
                offset += 1
                continue
            rows = np.flatnonzero(where >= 0)
            out[rows, offset + where[rows]] = 1.0
            offset += len(self.levels[i])
        return out
