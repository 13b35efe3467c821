"""The loss model of DLE: small histogram gradient-boosted regression trees in numpy.

DLE (direct loss estimation) predicts each production row's loss, ``|y - prediction|``
(for MAE) or ``(y - prediction)^2`` (for MSE and RMSE), from the row's features and the
model's prediction, with a regressor trained on the labeled reference. NannyML trains a
LightGBM model; evalstore has no such dependency, so this module grows the same kind of
model at a small scale:

* **Inputs** (:class:`Encoder`): each numeric feature and the prediction are cut into at
  most ``max_bins`` (32) bins at the reference's quantiles (bin 0 holds NaN/NULL, so a
  missing value can be split off on its own); a categorical feature's values are ranked by
  their mean loss on the reference (so an ordered split can separate any high-loss group
  of categories from the rest, as LightGBM's categorical split does), ranks grouped into
  at most ``max_bins`` ordered bins; unseen values and NULL go to bin 0.
* **Boosting** (:class:`LossModel`): least-squares gradient boosting (Friedman 2001),
  starting from the mean loss, ``rounds`` (100) trees of depth ``depth`` (3) with
  shrinkage ``learning_rate`` (0.1); a node is split at the bin boundary with the largest
  variance reduction ``G_L^2/n_L + G_R^2/n_R - G^2/n`` among splits leaving at least
  ``min_leaf`` (20) rows on each side, found from per-bin sums (one ``numpy.bincount``
  per node for all features at once). No randomness: the fit is deterministic.
* Predicted losses are floored at 0.

Why boosted trees rather than a k-NN or binned average: losses depend on interactions
(a region of the feature space where the model is wrong) and on the prediction itself, at
different scales per feature and with categorical features; trees need no scaling, handle
missing values and categories natively, and stay cheap (the reference is capped at
``MAX_ROWS`` rows, taken evenly in time order).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pyarrow as pa

#: Reference rows a loss model trains on at most (evenly spaced rows beyond it).
MAX_ROWS = 100_000


class Encoder:
    """Bins each input column on the reference (see the module docstring)."""

    def __init__(self, max_bins: int = 32) -> None:
        self.max_bins = max_bins
        self.edges: dict[str, np.ndarray] = {}
        self.categories: dict[str, dict[str, int]] = {}

    def fit(self, columns: Mapping[str, np.ndarray], target: np.ndarray) -> Encoder:
        for name, values in columns.items():
            if values.dtype.kind in "fiub":
                x = values.astype(float)
                finite = x[np.isfinite(x)]
                if len(finite) == 0:
                    self.edges[name] = np.empty(0)
                    continue
                qs = np.quantile(finite, np.linspace(0, 1, self.max_bins + 1)[1:-1])
                self.edges[name] = np.unique(qs)
            else:
                indices, dictionary = _categories(values)
                known = indices >= 0
                sums = np.bincount(indices[known], target[known], len(dictionary))
                counts = np.bincount(indices[known], minlength=len(dictionary))
                order = np.argsort(sums / np.maximum(counts, 1), kind="stable")
                # ranks by mean loss, grouped into at most max_bins ordered bins
                groups = 1 + np.arange(len(order)) * min(len(order), self.max_bins) // max(
                    len(order), 1
                )
                self.categories[name] = {
                    dictionary[i]: int(g) for i, g in zip(order, groups, strict=True)
                }
        return self

    def transform(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        """An ``(n, features)`` int matrix of bins (0 = missing/unseen)."""
        out = []
        for name in [*self.edges, *self.categories]:
            values = columns[name]
            if name in self.edges:
                x = values.astype(float)
                bins = 1 + np.searchsorted(self.edges[name], np.nan_to_num(x, nan=0.0), "right")
                out.append(np.where(np.isnan(x), 0, bins))
            else:
                indices, dictionary = _categories(values)
                codes = self.categories[name]
                lookup = np.array([codes.get(v, 0) for v in dictionary] + [0], dtype=np.int64)
                out.append(lookup[indices])  # index -1 (NULL) reads the trailing 0
        return np.column_stack(out).astype(np.int64) if out else np.zeros((0, 0), np.int64)

    @property
    def n_bins(self) -> int:
        widths = [len(e) + 2 for e in self.edges.values()]
        widths += [max(c.values(), default=0) + 1 for c in self.categories.values()]
        return max(widths, default=1)


def _categories(values: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Each value's index in the column's distinct texts (-1: NULL), and those texts
    (Arrow's dictionary encoding: no Python loop over the rows)."""
    array = pa.array(values, from_pandas=True)
    if not pa.types.is_string(array.type):
        array = array.cast(pa.string())
    encoded = array.dictionary_encode()
    indices = encoded.indices.fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    return indices, encoded.dictionary.to_pylist()


class LossModel:
    """Least-squares gradient-boosted trees on binned inputs (see the module docstring)."""

    def __init__(
        self, rounds: int = 100, depth: int = 3, learning_rate: float = 0.1, min_leaf: int = 20
    ) -> None:
        self.rounds, self.depth = rounds, depth
        self.learning_rate, self.min_leaf = learning_rate, min_leaf
        self.encoder = Encoder()
        self.base = 0.0
        self.trees: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def fit(self, columns: Mapping[str, np.ndarray], target: np.ndarray) -> LossModel:
        target = np.asarray(target, dtype=float)
        self.encoder.fit(columns, target)
        x = self.encoder.transform(columns)
        self.base = float(np.mean(target))
        fitted = np.full(len(target), self.base)
        if x.shape[1] == 0:
            return self
        n_bins = self.encoder.n_bins
        for _ in range(self.rounds):
            tree = self._tree(x, target - fitted, n_bins)
            step = self._apply(tree, x)
            if not np.any(step):
                break
            self.trees.append(tree)
            fitted += self.learning_rate * step
        return self

    def predict(self, columns: Mapping[str, np.ndarray]) -> np.ndarray:
        x = self.encoder.transform(columns)
        out = np.full(x.shape[0], self.base)
        for tree in self.trees:
            out += self.learning_rate * self._apply(tree, x)
        return np.maximum(out, 0.0)

    def _tree(
        self, x: np.ndarray, g: np.ndarray, n_bins: int
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A complete binary tree of ``depth`` levels in heap order: (feature, bin, value)
        per node; feature -1 marks a leaf (its value is the mean residual)."""
        size = 2 ** (self.depth + 1) - 1
        feature = np.full(size, -1)
        cut = np.zeros(size, dtype=np.int64)
        value = np.zeros(size)
        n_features = x.shape[1]
        offsets = np.arange(n_features) * n_bins
        members = {0: np.arange(len(g))}
        for node in range(size):
            rows = members.pop(node, None)
            if rows is None or len(rows) == 0:
                continue
            value[node] = g[rows].mean()
            if 2 * node + 2 >= size or len(rows) < 2 * self.min_leaf:
                continue
            flat = (x[rows] + offsets).ravel()
            sums = np.bincount(flat, np.repeat(g[rows], n_features), n_features * n_bins)
            counts = np.bincount(flat, minlength=n_features * n_bins).astype(float)
            left_g = np.cumsum(sums.reshape(n_features, n_bins), axis=1)
            left_n = np.cumsum(counts.reshape(n_features, n_bins), axis=1)
            total_g, total_n = left_g[0, -1], left_n[0, -1]
            right_g, right_n = total_g - left_g, total_n - left_n
            ok = (left_n >= self.min_leaf) & (right_n >= self.min_leaf)
            with np.errstate(divide="ignore", invalid="ignore"):
                gain = left_g**2 / left_n + right_g**2 / right_n - total_g**2 / total_n
            gain = np.where(ok, gain, -np.inf)
            best = int(np.argmax(gain))
            if not np.isfinite(gain.flat[best]) or gain.flat[best] <= 1e-12 * abs(total_g**2):
                continue
            f, b = divmod(best, n_bins)
            feature[node], cut[node] = f, b
            goes_left = x[rows, f] <= b
            members[2 * node + 1] = rows[goes_left]
            members[2 * node + 2] = rows[~goes_left]
        return feature, cut, value

    def _apply(self, tree: tuple[np.ndarray, np.ndarray, np.ndarray], x: np.ndarray) -> np.ndarray:
        feature, cut, value = tree
        node = np.zeros(x.shape[0], dtype=np.int64)
        for _ in range(self.depth):
            f = feature[node]
            inner = f >= 0
            if not inner.any():
                break
            rows = np.nonzero(inner)[0]
            left = x[rows, f[inner]] <= cut[node[inner]]
            node[rows] = np.where(left, 2 * node[rows] + 1, 2 * node[rows] + 2)
        return value[node]
