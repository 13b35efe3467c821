"""The state of one ``suggest`` call (:class:`_Context`) and the strategy names.

Every strategy module reads the resolved call (model, version, time range, ``where``,
reference, options) from the context and caches its rankings there, so that a ranking is
computed once per call even when :func:`evalstore.flywheel.suggest.run.suggest` redoes the
picks.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from evalstore.core.db import used_params
from evalstore.core.identifiers import quote
from evalstore.core.layout import schema_prefix
from evalstore.core.values import feature_kinds
from evalstore.core.windows import check_predicate, reference_args
from evalstore.errors import InvalidParameterError

if TYPE_CHECKING:
    from evalstore.core.context import Context
    from evalstore.flywheel.suggest.novelty import _Band


UNCERTAINTY = ("least_confidence", "margin", "entropy")
STRATEGIES = (*UNCERTAINTY, "committee", "novelty", "slices", "diversity", "mix", "random")
_names = itertools.count()


class _Context:
    """Everything one ``suggest`` call needs, resolved and checked."""

    def __init__(self, context: Context, model: str, version: str | None, **options: Any) -> None:
        self.con = context.connection
        self.model = model
        registration = context.registration(model, version)
        self.version = registration["version"]
        self.task = registration["task"]
        self.seed = options["seed"]
        self.since = options["since"]
        self.until = options["until"]
        self.kinds = feature_kinds(self.con, model)
        self.where = None
        if options["where"] is not None:
            self.where = check_predicate(
                options["where"], [*self.kinds, "example_id", "env", "dataset", "ts"]
            )
        self.reference = {
            "ref_env": None,
            "ref_dataset": None,
            "ref_start": None,
            "ref_end": None,
            **reference_args(options["reference"], registration),
        }
        if "previous" in self.reference:
            raise InvalidParameterError(
                "reference={'previous': n} has no meaning for suggestions; pass 'training', "
                "'validation', {'dataset': tag} or a (start, end) time range"
            )
        self.by = options["by"]
        self.prior = options["prior"]
        self.pool = options["pool"]
        self.pool_given = options["pool_given"]
        self.temp: list[str] = []
        self.slices: dict[str, Any] | None = None
        self.novelty_parts: list[tuple[str, str, dict[str, Any]]] | None = None
        self.novelty_bands: list[_Band] = []
        self.cache: dict[Any, Any] = {}
        self.min_uncertain = 0
        self.predictions: list[pa.Table] = []
        self.features: dict[str, dict[str, Any]] = {}
        #: candidate status of the example ids checked so far (see :func:`_plausible`)
        self.verdicts: dict[str, bool] = {}
        self.optimistic = True

    def params(self, **extra: Any) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "since": self.since,
            "until": self.until,
            "seed": self.seed,
            **extra,
        }

    def run(self, sql: str, params: Mapping[str, Any]) -> pa.Table:
        return self.con.sql(sql, params=used_params(sql, params)).to_arrow_table()

    @property
    def feature_where(self) -> str:
        """SQL: ``where`` on a scan of the serving features (alias ``f``), or ''."""
        return f" AND ({self.where})" if self.where else ""

    def where_clause(self, alias: str) -> str:
        """SQL: ``where`` on the serving features of the examples of ``alias`` (a relation
        with ``example_key``), or ''."""
        if self.where is None:
            return ""
        features = f"{schema_prefix(self.con, self.model)}features"
        return (
            f" AND {alias}.example_key IN (SELECT example_key FROM {features} "
            f"WHERE env = 'serving' AND ({self.where}))"
        )

    def register(self, table: pa.Table) -> str:
        name = f"__evalstore_suggest_{next(_names)}"
        self.con.register(name, table)
        self.temp.append(name)
        return name

    def register_ids(self, ids: Sequence[str]) -> str:
        """Register a one-column table of example ids (``example_id``); its name."""
        return self.register(pa.table({"example_id": pa.array(list(ids), pa.string())}))

    def close(self) -> None:
        for name in self.temp:
            if name.startswith("__evalstore_suggest_view_"):
                self.con.execute(f"DROP VIEW IF EXISTS {quote(name)}")
            else:
                self.con.unregister(name)


def _memo(ctx: _Context, key: Any, compute: Any) -> Any:
    """``compute()``, once per suggest call and ``key`` (a ranking is recomputed after
    :func:`_confirmed` finds a pick that is no candidate)."""
    if key not in ctx.cache:
        ctx.cache[key] = compute()
    return ctx.cache[key]


def _pairs(table: pa.Table) -> list[tuple[str, float]]:
    return list(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))
