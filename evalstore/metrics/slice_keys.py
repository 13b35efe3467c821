"""Slice keys of ``by=``: bin edges and labels, value domains, and each row's slice code.

A :class:`_Slice` is one key (a numeric feature cut into bins, a categorical feature by
value, or named predicates); this module fills its domain (quantile edges of a reference,
bin labels, distinct serving values) and writes the SQL of a row's index in it. Shared by
:mod:`evalstore.metrics.performance` and :mod:`evalstore.metrics.slices`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb

from evalstore.core.identifiers import quote, quote_literal
from evalstore.core.layout import schema_prefix
from evalstore.errors import InvalidParameterError

#: Most distinct values a categorical ``by`` feature may have.
MAX_CATEGORIES = 100_000


class _Slice:
    """One ``by`` key: a feature (numeric, binned; or categorical) or named predicates.

    Rows carry one BIGINT slice code for all keys together (cheap to group and join
    by): key j contributes ``index_j * stride_j``, index_j the position of the row's
    value in the key's ``domain`` (bin labels, predicate names, or the categorical
    feature's distinct serving values, sorted), and ``len(domain)`` for NULL (NULL and
    NaN values, or a value outside the domain). Codes therefore sort like the slices:
    by the first key, then the next, NULL last.
    """

    def __init__(
        self,
        name: str,
        kind: str,
        edges: list[float] | None = None,
        predicates: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.kind = kind  # 'numeric' | 'categorical' | 'predicates'
        self.edges = edges
        self.predicates = predicates or {}
        self.domain: list[str] = []
        self.stride = 1

    @property
    def null_index(self) -> int:
        """The index of a NULL (or out-of-domain) value: one past the domain."""
        return len(self.domain)

    @property
    def base(self) -> int:
        return self.null_index + 1

    def declared(self) -> bool:
        """Whether every value of the domain is a slice even when no row has it."""
        return self.kind != "categorical"

    def index(self, predicate: str | None = None) -> str:
        """SQL of this key's index for a row of ``evaluations AS e``."""
        if self.kind == "predicates":
            return str(list(self.predicates).index(predicate))
        missing = self.null_index
        if self.kind == "categorical":
            if not self.domain:
                return str(missing)
            values = ", ".join(quote_literal(v) for v in self.domain)
            text = f"CAST(e.{quote(self.name)} AS VARCHAR)"
            return f"coalesce(enum_code(TRY_CAST({text} AS ENUM({values}))), {missing})"
        x = f"CAST(e.{quote(self.name)} AS DOUBLE)"
        cases = [f"WHEN {x} IS NULL OR isnan({x}) THEN {missing}"]
        for i, edge in enumerate(self.edges or []):
            cases.append(f"WHEN {x} < CAST('{edge!r}' AS DOUBLE) THEN {i}")
        return f"CASE {' '.join(cases)} ELSE {missing - 1} END"


def _quantile_edges(
    con: duckdb.DuckDBPyConnection, model: str, feature: str, ref: Mapping[str, Any], bins: int
) -> list[float]:
    """Distinct inner edges: quantiles i / bins (i = 1 .. bins - 1) of the reference."""
    x = f"CAST({quote(feature)} AS DOUBLE)"
    probabilities = [i / bins for i in range(1, bins)]
    features = f"{schema_prefix(con, model)}features"
    rows = con.execute(
        f"SELECT count({x}), quantile_cont({x}, ?::DOUBLE[]) FROM {features} "
        f"WHERE isfinite({x}) AND (? IS NULL OR env = ?) AND (? IS NULL OR dataset = ?) "
        "AND (? IS NULL OR ts >= ?) AND (? IS NULL OR ts < ?)",
        [
            probabilities or [0.5], ref.get("ref_env"), ref.get("ref_env"),
            ref.get("ref_dataset"), ref.get("ref_dataset"), ref.get("ref_start"),
            ref.get("ref_start"), ref.get("ref_end"), ref.get("ref_end"),
        ],
    ).fetchall()  # fmt: skip
    count, quantiles = rows[0]
    if not count:
        raise InvalidParameterError(
            f"by: the reference rows ({ref}) hold no finite value of {feature!r} to bin it by; "
            f"log them, choose another reference=, or pass edges={{{feature!r}: [...]}}"
        )
    return sorted(set(quantiles)) if probabilities else []


def _format_edges(edges: Sequence[float]) -> list[str]:
    for digits in range(6, 18):
        texts = [format(e, f".{digits}g") for e in edges]
        if len(set(texts)) == len(texts):
            return texts
    return [repr(e) for e in edges]


def _bin_labels(edges: Sequence[float]) -> list[str]:
    if not edges:
        return ["(-inf, inf)"]
    texts = _format_edges(edges)
    labels = [f"(-inf, {texts[0]})"]
    labels += [f"[{a}, {b})" for a, b in itertools.pairwise(texts)]
    labels.append(f"[{texts[-1]}, inf)")
    return labels


def _prepare_slices(
    con: duckdb.DuckDBPyConnection,
    model: str,
    slices: Sequence[_Slice],
    ref: Mapping[str, Any],
    bins: int,
) -> None:
    """Fill each key's domain (bin labels, predicate names, distinct values) and stride."""
    for key in slices:
        if key.kind == "numeric":
            if key.edges is None:
                key.edges = _quantile_edges(con, model, key.name, ref, bins)
            key.domain = _bin_labels(key.edges)
        elif key.kind == "predicates":
            key.domain = list(key.predicates)
        else:
            key.domain = category_domain(
                con, model, key.name,
                f"by: feature {key.name!r} has more than {MAX_CATEGORIES} distinct values; "
                "slice by a coarser column or by named predicates instead",
            )  # fmt: skip
    assign_strides(slices)


def assign_strides(slices: Sequence[_Slice]) -> None:
    """Give each key its ``stride`` in the packed slice code (the last key varies fastest:
    code = sum of value index x stride); too many combinations for a 62-bit code raise."""
    stride = 1
    for key in reversed(slices):
        key.stride = stride
        stride *= key.base
    if stride >= 2**62:
        raise InvalidParameterError(
            "by: too many slice combinations for one query; slice by fewer or coarser columns"
        )


def category_domain(
    con: duckdb.DuckDBPyConnection, model: str, name: str, too_many: str
) -> list[str]:
    """The distinct non-NULL serving values of feature ``name`` as text, sorted; raises
    :class:`InvalidParameterError` with the message ``too_many`` past MAX_CATEGORIES."""
    column = f"CAST({quote(name)} AS VARCHAR)"
    values = con.execute(
        f"SELECT DISTINCT {column} FROM {schema_prefix(con, model)}features "
        f"WHERE env = 'serving' AND {column} IS NOT NULL ORDER BY 1 LIMIT ?",
        [MAX_CATEGORIES + 1],
    ).fetchall()
    if len(values) > MAX_CATEGORIES:
        raise InvalidParameterError(too_many)
    return [v for (v,) in values]
