"""Which examples to label next (``store.suggest``) and the label requests that follow.

The scores are SQL macros (``sql/suggest.sql``; their comments define each one exactly);
this module chooses the candidates, ranks them per strategy, merges strategies for
``mix``, runs the greedy k-center of ``diversity`` in numpy, writes reasons, and records
the chosen examples in ``evalstore.label_requests``.

Strategies (every score in [0, 1], higher = more worth a label):

``least_confidence``, ``margin``, ``entropy``
    uncertainty of the suggested ``version``'s prediction (``evalstore.least_confidence``,
    ``evalstore.margin``, ``evalstore.entropy``). Binary and multiclass models only.
``committee``
    disagreement between the versions that predicted the same example
    (``evalstore.suggest_committee``: vote entropy and score spread). Needs two versions.
``novelty``
    mean per-feature rarity against the reference rows (training by default): reference
    quantile tails of numeric features, out-of-range values and unseen categories score 1
    (``evalstore.numeric_rarity``, ``evalstore.novelty_categories``).
``slices``
    spreads the budget over slices of categorical feature(s) ``by`` in proportion to their
    need (low label coverage, error rate above the overall one:
    ``evalstore.suggest_slice_needs``) by D'Hondt apportionment; inside a slice the picks
    are a seeded random sample, so each slice's performance estimate stays unbiased.
    ``by=None`` tries each categorical feature with 2 to 50 serving values and keeps the one
    whose slices' needs differ most.
``diversity``
    greedy k-center (Sener & Savarese 2018) on standardized numeric features over a pool of
    the ``pool`` most uncertain candidates (most novel for regression): each pick is the
    candidate farthest from those already picked; its score is that distance relative to the
    first step's.
``random``
    a seeded uniform sample of the candidates (the baseline).
``mix``
    a weighted combination: the budget is shared between strategies in proportion to
    ``weights`` (default :data:`DEFAULT_WEIGHTS`; strategies a model cannot use are dropped
    and the rest renormalised) by D'Hondt apportionment, the r-th pick of strategy s having
    priority ``weight_s / r``; an example picked by several keeps its first pick. Every row
    carries all per-strategy scores, so the combination can be inspected.

Candidates are predictions of ``version`` (the latest registered one by default) with no
label and no open request, in ``[since, until)`` of prediction time (or the last
``window`` before the latest prediction), restricted by ``where`` (a predicate over the
serving features). Ties are broken by a seeded hash of the example id.

Requests: every suggested example gets a row in ``evalstore.label_requests``
(``record=True``), ``open`` until a label arrives (the label ingest marks it ``fulfilled``
in the same transaction), it ``expires`` (``expires_in``) or is ``cancelled``.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from evalstore.core.bounds import MAX_SUGGEST_K, MAX_SUGGEST_POOL, bounded_int
from evalstore.core.db import Cleanup, transaction
from evalstore.core.identifiers import check_model_name, quote
from evalstore.core.label_requests import expire_requests
from evalstore.core.layout import example_key_sql, schema_prefix
from evalstore.core.registry import to_timestamp
from evalstore.core.values import feature_kinds
from evalstore.core.windows import check_predicate, reference_args
from evalstore.errors import InvalidParameterError, ReadOnlyError

if TYPE_CHECKING:
    from evalstore.core.context import Context

UNCERTAINTY = ("least_confidence", "margin", "entropy")
STRATEGIES = (*UNCERTAINTY, "committee", "novelty", "slices", "diversity", "mix", "random")
#: Default weights of ``mix``.
DEFAULT_WEIGHTS: dict[str, float] = {
    "entropy": 0.4,
    "committee": 0.2,
    "novelty": 0.15,
    "slices": 0.15,
    "diversity": 0.1,
}
#: Per-strategy score columns of a suggestion.
SCORE_COLUMNS = (*UNCERTAINTY, "committee", "novelty", "slice_need", "diversity")
RESULT_COLUMNS = (
    "rank", "example_id", "version", "strategy", "picked_by", "priority", "reason",
    *SCORE_COLUMNS, "prediction", "score", "slice", "request_id", "expires_at",
)  # fmt: skip
MAX_SLICE_VALUES = 50
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
        mentioned = set(re.findall(r"\$(\w+)", sql))
        used = {k: v for k, v in params.items() if k in mentioned}
        return self.con.sql(sql, params=used).to_arrow_table()

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

    def close(self) -> None:
        for name in self.temp:
            if name.startswith("__evalstore_suggest_view_"):
                self.con.execute(f"DROP VIEW IF EXISTS {quote(name)}")
            else:
                self.con.unregister(name)


def suggest(
    context: Context,
    model: str,
    k: int = 100,
    strategy: str = "mix",
    version: str | None = None,
    since: Any = None,
    until: Any = None,
    window: str | None = None,
    where: str | None = None,
    seed: int = 0,
    *,
    weights: Mapping[str, float] | None = None,
    reference: Any = "training",
    by: str | Sequence[str] | None = None,
    prior: float = 10.0,
    pool: int | None = None,
    record: bool = True,
    expires_in: str | None = "14 days",
) -> pa.Table:
    """Suggest ``k`` unlabeled examples of ``model`` to label, best first.

    See the module docstring for the strategies. ``weights`` (``mix`` only) maps
    strategy names to weights; ``reference`` (``novelty``) is as in :meth:`Store.drift`;
    ``by`` (``slices``) names the categorical feature(s) that define slices (several:
    their combinations); ``prior`` is the pseudo-count shrinking a slice's error rate
    towards the overall one; ``pool`` bounds the candidates of ``diversity`` (default
    ``max(10 k, 5000)``, at most 50000; in ``mix`` 10 x diversity's share, at least
    2000). With ``record=True`` (the default) each
    suggestion becomes an open request in ``evalstore.label_requests`` that expires after
    ``expires_in`` (an interval; ``None``: never), and is not suggested again while open.

    Returns an Arrow table with columns :data:`RESULT_COLUMNS`: ``rank``, ``example_id``,
    ``version``, ``strategy``, ``picked_by`` (the strategy that chose the row; differs
    from ``strategy`` for ``mix``), ``priority`` (the ranking key), ``reason``, the scores
    ``least_confidence``, ``margin``, ``entropy``, ``committee``, ``novelty``,
    ``slice_need``, ``diversity`` (NULL where not applicable), the prediction and score,
    the ``slice`` and the ``request_id``. Fewer than ``k`` rows when fewer candidates exist;
    no rows (not an error) when there are none.
    """
    check_model_name(model)
    if strategy not in STRATEGIES:
        raise InvalidParameterError(f"strategy={strategy!r} is not one of {', '.join(STRATEGIES)}")
    k = bounded_int(
        k, "k", most=MAX_SUGGEST_K, hint="label these first, then ask for more suggestions"
    )
    if record and context.read_only:
        raise ReadOnlyError(
            f"{context.name} is read-only; pass record=False to suggest without recording requests"
        )
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise InvalidParameterError(f"seed={seed!r} must be an integer")
    if prior < 0 or not math.isfinite(prior):
        raise InvalidParameterError(f"prior={prior!r} must be a non-negative number")
    pool_given = pool is not None
    if pool is None:
        pool = min(max(10 * k, 5000), 50_000)
    pool = bounded_int(
        pool, "pool", most=MAX_SUGGEST_POOL, hint="narrow the candidates with where= or since="
    )
    since_ts = to_timestamp(since, "since")
    until_ts = to_timestamp(until, "until")
    if window is not None and since is not None:
        raise InvalidParameterError("pass either window= or since=, not both")
    with context.lock:
        if record:  # its own short write, before the long read below
            expire_requests(context, model)
        # one transaction: every statement of the ranking sees one snapshot
        with transaction(context.connection), Cleanup() as later:
            if window is not None:
                since_ts = _window_start(context, model, window, until_ts)
            ctx = _Context(
                context,
                model,
                version,
                seed=seed,
                since=since_ts,
                until=until_ts,
                where=where,
                reference=reference,
                by=by,
                prior=float(prior),
                pool=int(pool),
                pool_given=pool_given,
            )
            later.add(ctx.close)
            if strategy == "mix":
                chosen = _weights(ctx, weights)
            else:
                _check_available(ctx, strategy)
            while True:
                if strategy == "mix":
                    picks = _mix(ctx, k, chosen)
                else:
                    picks = [(eid, pr, strategy) for eid, pr in _ranked(ctx, strategy, k, set())]
                if _confirmed(ctx, [eid for eid, _, _ in picks]):
                    break
            table = _describe(ctx, strategy, picks)
            if record and table.num_rows:
                table = _record(ctx, table, expires_in)
            return table


def _window_start(context: Context, model: str, window: str, until: datetime | None) -> datetime:
    try:
        rows = context.connection.execute(
            # a time beyond Python's datetime (a store written before the time range was
            # enforced) reads NULL here and is refused below, not an OverflowError
            "SELECT CASE WHEN s BETWEEN TIMESTAMPTZ '0002-01-01' AND TIMESTAMPTZ "
            "'9998-12-31' THEN s END, s IS NOT NULL FROM (SELECT max(ts) - CAST(? AS "
            f"INTERVAL) AS s FROM {schema_prefix(context.connection, model)}predictions "
            "WHERE ? IS NULL OR ts < ?)",
            [window, until, until],
        ).fetchall()
    except duckdb.Error as error:
        raise InvalidParameterError(
            f"window={window!r} is not an interval: use e.g. '1 day' or '7 days'"
        ) from error
    start, any_rows = rows[0]
    if start is None and any_rows:
        raise InvalidParameterError(
            f"window={window!r} starts outside the times Python can represent (the latest "
            f"prediction time of {model!r} is far off); pass since=/until= instead"
        )
    return start if start is not None else datetime(1970, 1, 1, tzinfo=UTC)


def _check_available(ctx: _Context, strategy: str) -> None:
    if strategy in UNCERTAINTY and ctx.task == "regression":
        raise InvalidParameterError(
            f"strategy={strategy!r} needs class probabilities; {ctx.model!r} is a regression "
            "model: use 'committee', 'novelty', 'slices', 'diversity', 'random' or 'mix'"
        )
    if strategy == "novelty" and not ctx.kinds:
        raise InvalidParameterError(
            f"strategy='novelty' needs feature columns; {ctx.model!r} has none logged"
        )
    if strategy == "committee" and (versions := _version_count(ctx)) < 2:
        raise InvalidParameterError(
            f"strategy='committee' needs predictions of at least two versions of "
            f"{ctx.model!r} (it has {versions}); log a challenger's predictions or use "
            "another strategy"
        )


def _version_count(ctx: _Context) -> int:
    """Versions that logged predictions for the model (from the batch audit trail)."""
    rows = ctx.con.execute(
        "SELECT count(DISTINCT version) FROM evalstore.batches "
        "WHERE model = ? AND kind = 'predictions' AND rows > 0",
        [ctx.model],
    ).fetchall()
    return int(rows[0][0])


def _weights(ctx: _Context, weights: Mapping[str, float] | None) -> dict[str, float]:
    given = weights is not None
    chosen = dict(DEFAULT_WEIGHTS if weights is None else weights)
    for name, weight in chosen.items():
        if name not in STRATEGIES or name == "mix":
            raise InvalidParameterError(
                f"weights has unknown strategy {name!r}; use names among "
                f"{', '.join(s for s in STRATEGIES if s != 'mix')}"
            )
        if not isinstance(weight, int | float) or weight < 0 or not math.isfinite(weight):
            raise InvalidParameterError(f"weights[{name!r}]={weight!r} must be >= 0")
    usable = {}
    for name, weight in chosen.items():
        if weight == 0:
            continue
        if name in UNCERTAINTY and ctx.task == "regression":
            continue
        if name == "committee" and _version_count(ctx) < 2:
            continue
        if name == "novelty" and not _novelty_parts(ctx):  # no features or no reference
            continue
        if name == "diversity" and not _numeric_features(ctx):
            continue
        if name == "slices" and not _slice_candidates(ctx):
            continue
        usable[name] = float(weight)
    if not usable:
        if given:
            raise InvalidParameterError(
                f"none of the strategies in weights={dict(chosen)} can be used for "
                f"{ctx.model!r} (regression models have no uncertainty, committee needs two "
                "versions, novelty/diversity/slices need features)"
            )
        usable = {"random": 1.0}
    total = sum(usable.values())
    return {name: weight / total for name, weight in usable.items()}


# ---------------------------------------------------------------- rankings per strategy


def _ranked(ctx: _Context, strategy: str, n: int, exclude: set[str]) -> list[tuple[str, float]]:
    """Up to ``n`` candidates not in ``exclude``, best first, as (example_id, priority)."""
    fetch = n + len(exclude)
    if strategy in UNCERTAINTY:
        rows = _top_uncertain(ctx, strategy, fetch)
    elif strategy == "random":
        rows = _top_random(ctx, fetch)
    elif strategy == "committee":
        rows = _top_committee(ctx, fetch)
    elif strategy == "novelty":
        rows = _top_novelty(ctx, fetch)
    elif strategy == "slices":
        rows = _top_slices(ctx, fetch)
    elif strategy == "diversity":
        rows = _k_center(ctx, n, exclude)
    else:  # pragma: no cover - checked by the caller
        raise InvalidParameterError(f"unknown strategy {strategy!r}")
    out = [(eid, pr) for eid, pr in rows if eid not in exclude]
    return out[:n]


def _pairs(table: pa.Table) -> list[tuple[str, float]]:
    return list(zip(table.column(0).to_pylist(), table.column(1).to_pylist(), strict=True))


def _top_uncertain(ctx: _Context, column: str, n: int) -> list[tuple[str, float]]:
    """The n most uncertain candidates by ``column`` (ties: example id), cached per call.

    For a binary model the three scores are increasing functions of one another
    (entropy = h((1 + sqrt(1 - lc)) / 2)... all decrease with |2s - 1|), so the ranking
    sorts by the cheapest, least confidence, and the result reports the requested score.

    The version's m most uncertain predictions are ranked first and the labeled and
    requested examples dropped from those m only (the same conditions as
    ``evalstore.suggest_candidates``, without joining every prediction with the labels):
    exact when n remain or the m were all there is, else m grows fourfold.
    """
    key = "least_confidence" if ctx.task == "binary" else column
    n = max(n, ctx.min_uncertain)  # mix: one query serves the share and the diversity pool
    cached = ctx.cache.get(("uncertain", key))
    if cached is None or (len(cached) < n and cached.complete is False):
        score = f"evalstore.{key}(p.score, p.probabilities)"
        sql = (
            f"WITH top AS (SELECT p.example_id, p.example_key, p.version, p.prediction, p.score, "
            f"p.probabilities, {score} AS {key} "
            "FROM evalstore.model_table($model, 'predictions') AS p "
            "WHERE p.version = $version AND ($since IS NULL OR p.ts >= $since) "
            f"AND ($until IS NULL OR p.ts < $until) AND {score} IS NOT NULL"
            f"{ctx.where_clause('p')} ORDER BY {key} DESC, p.example_id LIMIT $m) "
            f"SELECT s.example_id, s.{key}, {PREDICTION_PAYLOAD.format(a='s')}, "
            f"{_excluded('s')} AS excluded FROM top AS s ORDER BY s.{key} DESC, s.example_id"
        )
        m = max(2 * n, 1000)
        while True:
            top = ctx.run(sql, ctx.params(m=m))
            table = top.filter(pc.invert(top.column("excluded"))).slice(0, n)
            if table.num_rows >= n or top.num_rows < m:
                break
            m *= 4
        _keep_predictions(ctx, table)
        ctx.verdicts.update(dict.fromkeys(table.column(0).to_pylist(), True))
        cached = _Ranked(_pairs(table), n)
        ctx.cache[("uncertain", key)] = cached
    return list(cached[:n])


#: Prediction columns kept for the result (``{a}``: the alias of a candidates relation).
PREDICTION_PAYLOAD = (
    "{a}.version AS p_version, CAST({a}.prediction AS VARCHAR) AS p_prediction, "
    "{a}.score AS p_score, {a}.probabilities AS p_probabilities"
)


def _keep_predictions(ctx: _Context, table: pa.Table) -> None:
    names = ["example_id", "p_version", "p_prediction", "p_score", "p_probabilities"]
    part = table.select(names)
    ctx.predictions.append(part)


class _Ranked(list):
    """A ranked list that knows whether it holds every candidate there is."""

    def __init__(self, rows: list[tuple[str, float]], fetched: int) -> None:
        super().__init__(rows)
        self.complete = len(rows) < fetched


def _top_committee(ctx: _Context, n: int) -> list[tuple[str, float]]:
    sql = (
        "SELECT s.example_id, s.committee FROM evalstore.suggest_committee($model, $since, "
        "$until) AS s WHERE s.committee IS NOT NULL"
        f"{ctx.where_clause('s')} ORDER BY s.committee DESC, s.example_id LIMIT $n"
    )
    return _verified(
        ctx,
        lambda m: _memo(ctx, ("committee", m), lambda: _pairs(ctx.run(sql, ctx.params(n=m)))),
        n,
    )


def _top_random(ctx: _Context, n: int) -> list[tuple[str, float]]:
    sql = (
        "SELECT s.example_id FROM evalstore.suggest_candidates($model, $version, $since, "
        f"$until) AS s WHERE true{ctx.where_clause('s')} "
        "ORDER BY evalstore.pick_order(s.example_id, $seed), s.example_id LIMIT $n"
    )
    ids = ctx.run(sql, ctx.params(n=n)).column(0).to_pylist()
    ctx.verdicts.update(dict.fromkeys(ids, True))
    return [(eid, 1.0 - i / max(len(ids), 1)) for i, eid in enumerate(ids)]


def _memo(ctx: _Context, key: Any, compute: Any) -> Any:
    """``compute()``, once per suggest call and ``key`` (a ranking is recomputed after
    :func:`_confirmed` finds a pick that is no candidate)."""
    if key not in ctx.cache:
        ctx.cache[key] = compute()
    return ctx.cache[key]


def _verified(ctx: _Context, fetch: Any, n: int) -> list[tuple[str, float]]:
    """Rank from a cheap source (``fetch(m)``: the top m rows, candidates or not), keeping
    the plausible candidates (:func:`_plausible`); fetch more, four times as many each
    round, until n are found or the source is spent.
    """
    m = max(2 * n, 1000)
    while True:
        rows = fetch(m)
        if not rows:
            return []
        ok = _plausible(ctx, [r[0] for r in rows])
        kept = [r for r in rows if r[0] in ok]
        if len(kept) >= n or len(rows) < m:
            return kept
        m *= 4


def _excluded(alias: str) -> str:
    """SQL: the example (``alias`` has ``example_key``) has a label or an open request
    (see evalstore.suggest_candidates)."""
    return (
        f"(EXISTS (SELECT 1 FROM evalstore.model_table($model, 'labels') AS l "
        f"WHERE l.example_key = {alias}.example_key) OR EXISTS (SELECT 1 FROM "
        "evalstore.label_requests AS r WHERE r.model = $model AND r.status = 'open' "
        f"AND {example_key_sql('r.example_id')} = {alias}.example_key))"
    )


def _anti_joins(alias: str) -> str:
    """SQL after a FROM item ``alias`` (with ``example_key``): drop examples with a label
    or an open request (as :func:`_excluded`; anti-joins plan better than NOT EXISTS
    inside subqueries), comparing keys."""
    return (
        f" ANTI JOIN evalstore.model_table($model, 'labels') AS l "
        f"ON l.example_key = {alias}.example_key ANTI JOIN (SELECT "
        f"{example_key_sql('r.example_id')} AS example_key FROM evalstore.label_requests AS r "
        f"WHERE r.model = $model AND r.status = 'open') AS r ON r.example_key = {alias}.example_key"
    )


# ---------------------------------------------------------------- novelty


def _novelty_parts(ctx: _Context) -> list[tuple[str, str, dict[str, Any]]]:
    """Per feature: (feature, SQL rarity expression over alias f, bound parameters)."""
    if ctx.novelty_parts is not None:
        return ctx.novelty_parts
    ref = ctx.reference
    args = [ctx.model, ref["ref_env"], ref["ref_dataset"], ref["ref_start"], ref["ref_end"]]
    numeric = ctx.con.execute(
        "SELECT feature, n, q FROM evalstore.novelty_reference(?, ?, ?, ?, ?)", args
    ).fetchall()
    stats = {feature: (n, q) for feature, n, q in numeric}
    categories: dict[str, tuple[list[str], list[float], int]] = {}
    for feature, category, n, rarity in ctx.con.execute(
        "SELECT feature, category, n, rarity FROM evalstore.novelty_categories(?, ?, ?, ?, ?) "
        "ORDER BY feature, category",
        args,
    ).fetchall():
        keys, values, _ = categories.setdefault(feature, ([], [], n))
        keys.append(category)
        values.append(rarity)
    parts = []
    bands: list[_Band] = []
    for i, (feature, kind) in enumerate(ctx.kinds.items()):
        column = f"f.{quote(feature)}"
        if kind == "numeric" and feature in stats:
            n, q = stats[feature]
            bands.append(_Band(i, feature, n, dict.fromkeys(_tied_outer_quantiles(q), 1.0)))
            names = [f"q{i}_{j}" for j in range(len(q))]
            parts.append(
                (
                    feature,
                    _numeric_rarity_sql(i, f"CAST({column} AS DOUBLE)"),
                    {**dict(zip(names, map(float, q), strict=True)), f"n{i}": n},
                )
            )
        elif kind == "categorical" and feature in categories:
            keys, values, n = categories[feature]
            bands.append(_Band(i, feature, None, {}))
            parts.append(
                (
                    feature,
                    f"CASE WHEN {column} IS NOT NULL THEN coalesce("
                    f"map_extract_value(MAP($k{i}, $r{i}), CAST({column} AS VARCHAR)), 1.0) END",
                    {f"k{i}": keys, f"r{i}": values},
                )
            )
    _rate_tied_quantiles(ctx, bands, parts)
    ctx.novelty_bands = bands
    ctx.novelty_parts = parts
    return parts


class _Band(NamedTuple):
    """What the novelty prune knows of feature ``index`` (its parameters' suffix)."""

    index: int
    feature: str
    #: reference size of a numeric feature; None for a categorical one
    n: int | None
    #: exact rarity of each tied outer quantile, by grid position
    ties: dict[int, float]


def _rate_tied_quantiles(
    ctx: _Context, bands: list[_Band], parts: list[tuple[str, str, dict[str, Any]]]
) -> None:
    """Fill in the exact rarity of each tied outer quantile (one query, the SQL macro)."""
    wanted = [(band, k) for band in bands for k in band.ties]
    if not wanted:
        return
    known = {name: value for _, _, part_params in parts for name, value in part_params.items()}
    params = {}
    for band in {band.index: band for band, _ in wanted}.values():
        for name in [f"q{band.index}_{j}" for j in range(len(NOVELTY_GRID))] + [f"n{band.index}"]:
            params[name] = known[name]
    columns = ", ".join(
        _numeric_rarity_sql(band.index, f"$q{band.index}_{k}") for band, k in wanted
    )
    (row,) = ctx.con.execute(f"SELECT {columns}", params).fetchall()
    for (band, k), rarity in zip(wanted, row, strict=True):
        band.ties[k] = rarity


def _numeric_rarity_sql(i: int, x: str) -> str:
    """``evalstore.numeric_rarity`` of SQL value ``x`` against numeric feature i's
    reference parameters ($qi_0..$qi_10, $ni)."""
    quantiles = ", ".join(f"$q{i}_{j}" for j in range(len(NOVELTY_GRID)))
    return f"evalstore.numeric_rarity({x}, {quantiles}, $n{i})"


def _tied_outer_quantiles(q: Sequence[float]) -> list[int]:
    """Grid positions of the distinct tied values among the outer quantiles q_0, q_1,
    q_9, q_10 (values at two or more grid positions: held by many reference rows).

    A value equal to one of them lies outside every band of :func:`_novelty_prune`, yet
    is not rare (a count's 0 held by 30% of the reference): the prune tests equality with
    these and uses their exact rarity instead of the worst case, 1.

    >>> _tied_outer_quantiles([0, 0, 0, 1, 4, 9, 14, 19, 19, 19, 19])
    [0, 9]
    >>> _tied_outer_quantiles([-3.1, -2.3, -1.6, -0.7, 0, 0.1, 0.7, 1.6, 2.3, 3.1, 4.0])
    []
    """
    positions: dict[float, int] = {}
    for k in (0, 1, 9, 10):
        if q.count(q[k]) > 1:
            positions.setdefault(q[k], k)
    return list(positions.values())


#: Grid probabilities of the reference quantiles (``evalstore.novelty_reference``'s q).
NOVELTY_GRID = (0.0, 0.001, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 0.999, 1.0)
#: Percentage of the serving rows (whole vectors) read to guess the novelty threshold.
NOVELTY_SAMPLE_PERCENT = 1


def band_bounds(n: int) -> list[float]:
    """Upper bounds b_1..b_4 of the rarity of a numeric value strictly between the
    reference quantiles at grid probabilities p_k and 1 - p_k (an n-value reference).

    There F lies strictly between p_k and 1 - p_k (a run of tied quantiles equal to the
    value lies inside the band too), so the two-sided tail t > 2 p_k and the rarity
    ln(1 / max(t, 1/(n+1))) / ln(n+1) < b_k = min(1, ln(1 / (2 p_k)) / ln(n + 1)).

    >>> [round(b, 4) for b in band_bounds(199_999)]
    [0.5091, 0.3205, 0.1886, 0.0568]
    """
    return [
        min(1.0, math.log(1.0 / (2.0 * NOVELTY_GRID[k])) / math.log(n + 1.0)) for k in (1, 2, 3, 4)
    ]


def _novelty_prune(ctx: _Context, threshold: float) -> tuple[str, dict[str, Any]]:
    """SQL condition (alias f) that every serving row with novelty > ``threshold`` meets.

    Each feature j gets an upper bound u_j of its rarity: a numeric value's band bound
    (:func:`band_bounds`; 1 outside the 0.1%..99.9% quantiles, NaN and +-inf included,
    except the exact rarity for a value equal to a tied outer quantile,
    :func:`_tied_outer_quantiles`), a category's exact rarity. Novelty is the mean of the
    non-NULL rarities, so it can exceed T only if sum_j (u_j - T) > 0 over the non-NULL
    features. (A cheaper first test, some u_j > T, costs more than it saves: measured
    again with the tied quantiles rated, 0.82-0.99 s against 0.70 s at 10M rows.)
    """
    expressions = {feature: expr for feature, expr, _ in _novelty_parts(ctx)}
    params: dict[str, Any] = {"novelty_t": threshold}
    terms: list[str] = []
    for i, feature, n, ties in ctx.novelty_bands:
        column = f"f.{quote(feature)}"
        if n is None:  # categorical: the exact rarity
            terms.append(f"coalesce(({expressions[feature]}) - $novelty_t, 0.0)")
            continue
        bounds = band_bounds(n)
        branches = " ".join(
            f"WHEN {column} > $q{i}_{k} AND {column} < $q{i}_{10 - k} THEN $u{i}_{k}"
            for k in (4, 3, 2, 1)
        )
        exact = "".join(f" WHEN {column} = $q{i}_{k} THEN $e{i}_{k}" for k in ties)
        terms.append(f"CASE WHEN {column} IS NULL THEN 0.0 {branches}{exact} ELSE $u{i}_0 END")
        params.update({f"e{i}_{k}": rarity - threshold for k, rarity in ties.items()})
        params[f"u{i}_0"] = 1.0 - threshold
        params.update({f"u{i}_{k}": bounds[k - 1] - threshold for k in (1, 2, 3, 4)})
    for _, _, part_params in _novelty_parts(ctx):
        params.update(part_params)
    return f"({' + '.join(terms) or '0.0'}) > 0", params


def _novelty_expression(ctx: _Context) -> tuple[str, dict[str, Any]]:
    parts = _novelty_parts(ctx)
    if not parts:
        raise InvalidParameterError(
            f"strategy='novelty' needs reference rows: {ctx.model!r} has no numeric or "
            f"categorical feature values in the reference ({ctx.reference}); log training "
            "features or pass reference="
        )
    params: dict[str, Any] = {}
    for _, _, p in parts:
        params.update(p)
    # mean of the non-NULL rarities, in plain arithmetic (a list per row costs more)
    total = " + ".join(f"coalesce({expr}, 0.0)" for _, expr, _ in parts)
    # a rarity is NULL exactly when the value is: count the values, not the rarities again
    count = " + ".join(
        f"CAST(f.{quote(feature)} IS NOT NULL AS INTEGER)" for feature, _, _ in parts
    )
    expression = f"(({total}) / nullif({count}, 0))"
    return expression, params


def _top_novelty(ctx: _Context, n: int) -> list[tuple[str, float]]:
    """Most novel serving feature rows (a scan of the features alone), then verified.

    Pruning, exact: the novelty of the m-th row is first guessed from a sample of the
    serving rows (:data:`NOVELTY_SAMPLE_PERCENT`, the depth where about 2m of all rows
    would lie above it): T. The scan then computes novelty only for rows that can exceed
    T (:func:`_novelty_prune`). When the m-th row found scores above T, no pruned row can
    beat it and the answer is exact; else T is lowered (a deeper sample rank), and in the
    end the scan runs over every row.

    The rows kept by the pruning are sorted by ``rowid`` before they are scored: that
    packs the few rows left of each vector into full vectors, and DuckDB's cost of the
    long novelty expression is per vector (3x less at 10M rows).
    """
    expression, params = _novelty_expression(ctx)
    where = ctx.feature_where
    columns = "".join(f", f.{quote(feature)}" for feature, _, _ in _novelty_parts(ctx))
    sql = (
        f"SELECT f.example_id, {expression} AS novelty FROM ("
        f"SELECT f.example_id{columns} FROM {schema_prefix(ctx.con, ctx.model)}features AS f"
        f"{_anti_joins('f')} WHERE f.env = 'serving'{where}{{prune}}) AS f "
        "ORDER BY novelty DESC NULLS LAST, f.example_id LIMIT $n"
    )

    def search(m: int) -> list[tuple[str, float]]:
        table = None
        for threshold in _novelty_thresholds(ctx, expression, params, m):
            condition, extra = _novelty_prune(ctx, threshold)
            prune = f" AND {condition} ORDER BY f.rowid"
            table = ctx.run(sql.format(prune=prune), ctx.params(n=m, **extra))
            scores = table.column(1).to_pylist()
            if len(scores) == m and scores[-1] is not None and scores[-1] > threshold + 1e-9:
                break
            table = None
        if table is None:
            table = ctx.run(sql.format(prune=""), ctx.params(n=m, **params))
        return _pairs(table)

    return _verified(ctx, lambda m: _memo(ctx, ("novelty", m), lambda: search(m)), n)


def _novelty_thresholds(
    ctx: _Context, expression: str, params: dict[str, Any], m: int
) -> list[float]:
    """Guesses of the m-th best novelty, highest first, from a sample of serving rows.

    In a p% sample about 2m p / 100 rows lie above the 2m-th best of all rows; each
    further guess goes 4 times deeper. Empty when the sample is too small to guess from.
    """
    depth = max(1, math.ceil(2 * m * NOVELTY_SAMPLE_PERCENT / 100))
    where = ctx.feature_where
    sample = ctx.run(
        f"SELECT {expression} AS novelty FROM {schema_prefix(ctx.con, ctx.model)}features AS f "
        f"TABLESAMPLE {NOVELTY_SAMPLE_PERCENT}% (system, {int(ctx.seed) % 2**31}) "
        f"WHERE f.env = 'serving'{where} ORDER BY novelty DESC NULLS LAST LIMIT $n",
        {**params, "n": 16 * depth},
    )
    scores = [score for score in sample.column(0).to_pylist() if score is not None]
    return [
        scores[d - 1]
        for d in (depth, 4 * depth, 16 * depth)
        if d <= len(scores) and scores[d - 1] > 0
    ]


# ---------------------------------------------------------------- slices


def _slice_candidates(ctx: _Context) -> list[str]:
    """Categorical features usable as slices by default (2..50 serving values), cached."""
    return _memo(ctx, "slice candidates", lambda: _count_slice_values(ctx))


def _count_slice_values(ctx: _Context) -> list[str]:
    columns = [f for f, kind in ctx.kinds.items() if kind == "categorical"]
    if not columns:
        return []
    counts = ", ".join(f"count(DISTINCT {quote(c)})" for c in columns)
    row = ctx.con.execute(
        f"SELECT {counts} FROM {schema_prefix(ctx.con, ctx.model)}features WHERE env = 'serving'"
    ).fetchall()[0]
    return [c for c, n in zip(columns, row, strict=True) if 2 <= n <= MAX_SLICE_VALUES]


def _slice_key(columns: Sequence[str], alias: str) -> str:
    """SQL text of the slice key: the value itself for one column (grouping on the raw
    column is cheaper), ``a=x / b=y`` for several."""
    if len(columns) == 1:
        return f"CAST({alias}.{quote(columns[0])} AS VARCHAR)"
    return " || ' / ' || ".join(
        "'{}=' || coalesce(CAST({}.{} AS VARCHAR), 'NULL')".format(
            c.replace("'", "''"), alias, quote(c)
        )
        for c in columns
    )


def _slice_label(columns: Sequence[str], key: Any) -> str:
    """The readable name of a slice key, e.g. ``region=north``."""
    if len(columns) == 1:
        return f"{columns[0]}={'NULL' if key is None else key}"
    return str(key)


def _slice_view(ctx: _Context, columns: Sequence[str]) -> str:
    name = f"__evalstore_suggest_view_{next(_names)}"
    ctx.con.execute(
        f"CREATE OR REPLACE TEMP VIEW {quote(name)} AS SELECT f.example_id, f.example_key, "
        f"{_slice_key(columns, 'f')} AS slice "
        f"FROM {schema_prefix(ctx.con, ctx.model)}features AS f WHERE f.env = 'serving'"
    )
    ctx.temp.append(name)
    return name


def _slice_needs(ctx: _Context) -> dict[str, Any]:
    """Choose the slicing (``by`` or the most discriminating feature) and its needs."""
    if ctx.slices is not None:
        return ctx.slices
    if ctx.by is None:
        options = [[c] for c in _slice_candidates(ctx)]
        if not options:
            raise InvalidParameterError(
                f"strategy='slices' found no categorical feature of {ctx.model!r} with 2 to "
                f"{MAX_SLICE_VALUES} serving values; pass by=<feature> (or several)"
            )
    else:
        by = [ctx.by] if isinstance(ctx.by, str) else list(ctx.by)
        for column in by:
            if column not in ctx.kinds:
                raise InvalidParameterError(
                    f"by={column!r} is not a feature of {ctx.model!r}; known features: "
                    + ", ".join(ctx.kinds)
                )
        options = [by]
    best = None
    for columns in options:
        view = _slice_view(ctx, columns)
        needs = ctx.con.sql(
            "SELECT slice, examples, labeled, coverage, error_rate, need "
            "FROM evalstore.suggest_slice_needs(?, ?, ?, ?)",
            params=[ctx.model, ctx.version, f"temp.main.{view}", ctx.prior],
        ).to_arrow_table()
        values = [v for v in needs.column("need").to_pylist() if v is not None]
        spread = (max(values) - min(values)) if values else 0.0
        if best is None or spread > best["spread"]:
            best = {"columns": columns, "view": view, "needs": needs, "spread": spread}
    ctx.slices = best
    return best


def _top_slices(ctx: _Context, n: int) -> list[tuple[str, float]]:
    """D'Hondt over slices by need; inside a slice, a seeded random order.

    The random order is the seeded hash of the example's key (``example_key``, a
    function of the id; hashing it costs a quarter of hashing the text). Rather than
    ranking every serving row, each slice keeps the rows whose hash falls below a cut
    sized to a few times the picks D'Hondt can give it (a Bernoulli sample with the same
    order), and the cut grows until every slice has enough candidates or all of them.
    """
    slices = _slice_needs(ctx)
    rows_needs = slices["needs"].to_pylist()
    where = ctx.where_clause("v")
    # D'Hondt seats per slice for n picks (capped by the slice's size): how deep to sample
    seats = {row["slice"]: 0 for row in rows_needs}
    size = {row["slice"]: row["examples"] for row in rows_needs}
    need = {row["slice"]: row["need"] or 0.0 for row in rows_needs}
    for _ in range(n):
        open_ = [key for key in seats if seats[key] < size[key]]
        if not open_:
            break
        best = max(open_, key=lambda key: (need[key] / (seats[key] + 1), str(key)))
        seats[best] += 1

    def sample(factor: float) -> pa.Table:
        cut = [min(1.0, factor * (seats[key] + 2) / max(size[key], 1)) for key in seats]
        cuts = pa.table(
            {
                "slice": pa.array(list(seats), pa.string()),
                "need": pa.array([need[key] for key in seats], pa.float64()),
                "cut": pa.array(cut, pa.float64()),
            }
        )
        name = ctx.register(cuts)
        # hash / 2^64 is uniform in [0, 1): keep a slice's rows below its cut (the largest
        # cut first, on the scan, so that few rows reach the join), then drop the labeled
        # and requested ones
        sql = (
            "WITH sampled AS MATERIALIZED (SELECT v.example_id, v.example_key, v.slice, "
            "c.need, "
            "evalstore.pick_order(v.example_key, $seed) AS o "
            f"FROM temp.main.{quote(slices['view'])} AS v JOIN {quote(name)} AS c "
            "ON c.slice IS NOT DISTINCT FROM v.slice "
            "WHERE evalstore.pick_order(v.example_key, $seed) / 18446744073709551616.0 < c.cut "
            "AND evalstore.pick_order(v.example_key, $seed) / 18446744073709551616.0 < $cut"
            f"{where}) SELECT s.example_id, s.slice, s.o, s.need "
            f"FROM sampled AS s{_anti_joins('s')}"
        )
        table = ctx.run(sql, ctx.params(cut=max(cut, default=1.0)))
        return table

    factor = 4.0
    while True:
        table = _memo(ctx, ("slices", n, factor), lambda factor=factor: sample(factor))
        ids = table.column(0).to_pylist()
        ok = _plausible(ctx, ids)
        per_slice: dict[Any, int] = {}
        ranked = []
        keys, orders, needs_ = (table.column(i).to_pylist() for i in (1, 2, 3))
        for eid, key, _, slice_need in sorted(
            zip(ids, keys, orders, needs_, strict=True), key=lambda t: (str(t[1]), t[2])
        ):
            if eid not in ok:
                continue
            per_slice[key] = per_slice.get(key, 0) + 1
            ranked.append((eid, slice_need, per_slice[key]))
        short = [
            key
            for key in seats
            if per_slice.get(key, 0) < seats[key] and factor * (seats[key] + 2) < size[key]
        ]
        if not short or factor >= 4096:
            break
        factor *= 4
    ranked.sort(key=lambda t: (-(t[1] or 0.0) / t[2], t[0]))
    return [(eid, (need_ or 0.0) / r) for eid, need_, r in ranked[:n]]


def _plausible(ctx: _Context, ids: Sequence[str]) -> set[str]:
    """The ``ids`` that may be candidates.

    A ranking over the serving features (novelty, slices) or over every version
    (committee) has applied the label and request exclusions but not the version and
    time range. Checking that takes a join with all predictions, so it is done once, for
    the final picks (:func:`_confirmed`): until then an id not known to fail is taken as
    a candidate. After a pick has failed the check (a time range, or several versions),
    the rankings check their rows eagerly (:func:`_candidates_among`) instead.
    """
    if not ctx.optimistic:
        return _candidates_among(ctx, ids)
    return {eid for eid in ids if ctx.verdicts.get(eid, True)}


def _confirmed(ctx: _Context, ids: Sequence[str]) -> bool:
    """Check the picks not known to be candidates, in one query; False (and eager checks
    from then on) when one of them is not a candidate, so the picks must be redone.

    A pick may also be known to fail already: a ranking that checks eagerly (the
    regression diversity pool) can reject an id another ranking picked optimistically.
    """
    _candidates_among(ctx, [eid for eid in ids if eid not in ctx.verdicts])
    if all(ctx.verdicts[eid] for eid in ids):
        return True
    ctx.optimistic = False
    return False


def _candidates_among(ctx: _Context, ids: Sequence[str]) -> set[str]:
    """Which of ``ids`` are candidates; their predictions are kept for the result."""
    unknown = list(dict.fromkeys(eid for eid in ids if eid not in ctx.verdicts))
    if unknown:
        _check_candidates(ctx, unknown)
    return {eid for eid in ids if ctx.verdicts[eid]}


def _check_candidates(ctx: _Context, ids: Sequence[str]) -> None:
    """Record which of ``ids`` are candidates (``ctx.verdicts``) and keep their
    predictions for the result, in one query."""
    name = ctx.register(pa.table({"example_id": pa.array(list(ids), pa.string())}))
    # The rows of these ids first (a materialized semi-join, so the exclusions below only
    # look at them), then the same conditions as evalstore.suggest_candidates.
    table = ctx.run(
        "WITH c AS MATERIALIZED (SELECT p.* FROM evalstore.model_table($model, 'predictions') "
        f"AS p WHERE p.example_key IN (SELECT {example_key_sql('example_id')} FROM {quote(name)})) "
        f"SELECT c.example_id, {PREDICTION_PAYLOAD.format(a='c')} FROM c{_anti_joins('c')} "
        "WHERE c.version = $version AND ($since IS NULL OR c.ts >= $since) "
        "AND ($until IS NULL OR c.ts < $until)",
        ctx.params(),
    )
    _keep_predictions(ctx, table)
    ctx.verdicts.update(dict.fromkeys(ids, False))
    ctx.verdicts.update(dict.fromkeys(table.column(0).to_pylist(), True))


def _features_of(ctx: _Context, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Serving feature rows (values and per-feature rarities) of examples, cached; one
    query, by ``example_key`` (DuckDB pushes the few keys into the scan of the features).
    """
    missing = [e for e in dict.fromkeys(ids) if e not in ctx.features]
    if not missing:
        return ctx.features
    parts = _novelty_parts(ctx) if ctx.kinds else []
    params: dict[str, Any] = {}
    for _, _, p in parts:
        params.update(p)
    cols = ["f.example_id"]
    cols += [f"{expr} AS {quote('r_' + feature)}" for feature, expr, _ in parts]
    cols += [f"f.{quote(feature)} AS {quote('v_' + feature)}" for feature in ctx.kinds]
    if ctx.slices is not None:
        cols.append(f"{_slice_key(ctx.slices['columns'], 'f')} AS __slice")
    name = ctx.register(pa.table({"example_id": pa.array(missing, pa.string())}))
    sql = (
        f"SELECT {', '.join(cols)} FROM {schema_prefix(ctx.con, ctx.model)}features AS f "
        f"WHERE f.env = 'serving' "
        f"AND f.example_key IN (SELECT {example_key_sql('example_id')} FROM {quote(name)})"
    )
    for row in ctx.run(sql, params).to_pylist():
        ctx.features[row["example_id"]] = row
    return ctx.features


# ---------------------------------------------------------------- diversity


def _numeric_features(ctx: _Context) -> list[str]:
    return [f for f, kind in ctx.kinds.items() if kind == "numeric"]


def _k_center(ctx: _Context, n: int, exclude: set[str]) -> list[tuple[str, float]]:
    """Greedy k-center over the pool; scores are distances relative to the first step's."""
    numeric = _numeric_features(ctx)
    if not numeric:
        raise InvalidParameterError(
            f"strategy='diversity' needs numeric features; {ctx.model!r} has none"
        )
    if ctx.task == "regression":
        # the pool shapes every pick, so its rows are checked to be candidates now
        optimistic, ctx.optimistic = ctx.optimistic, False
        try:
            pool = _top_novelty(ctx, ctx.pool + len(exclude)) if _novelty_parts(ctx) else []
        finally:
            ctx.optimistic = optimistic
        if not pool:
            pool = _top_random(ctx, ctx.pool + len(exclude))
    else:
        pool = _top_uncertain(ctx, "entropy", ctx.pool + len(exclude))
    everything = [eid for eid, _ in pool]
    ids = [eid for eid in everything if eid not in exclude][: ctx.pool]
    if not ids:
        return []
    # the other strategies' picks come along: their features are needed for the result
    features = _features_of(ctx, [*everything, *sorted(exclude)])
    pool_ids = [e for e in ids if e in features]
    if not pool_ids:
        return []
    x = np.array(
        [[_as_float(features[e]["v_" + c]) for c in numeric] for e in pool_ids], dtype=float
    ).reshape(len(pool_ids), len(numeric))
    return list(zip(*k_center(pool_ids, x, n), strict=True))


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")


def k_center(ids: Sequence[str], x: np.ndarray, n: int) -> tuple[list[str], list[float]]:
    """Greedy k-center: ``n`` rows of ``x`` (standardized per column) spread apart.

    The first pick is row 0 (the pool is ordered by uncertainty, so the most uncertain);
    each next pick maximises the Euclidean distance to its nearest earlier pick (ties:
    the earlier row). Missing and non-finite values are set to the column mean (0 after
    standardizing); constant columns are dropped. Returns the ids in pick order and each
    pick's distance divided by the second pick's (the first scores 1).
    """
    x = np.array(x, dtype=float, copy=True)
    x[~np.isfinite(x)] = np.nan
    mean = np.nanmean(x, axis=0) if len(x) else np.zeros(x.shape[1])
    sd = np.nanstd(x, axis=0) if len(x) else np.ones(x.shape[1])
    mean = np.where(np.isnan(mean), 0.0, mean)
    keep = np.nan_to_num(sd) > 0
    z = (x[:, keep] - mean[keep]) / sd[keep]
    z = np.nan_to_num(z, nan=0.0)
    m = len(ids)
    n = min(n, m)
    picked: list[int] = [0]
    scores = [1.0]
    nearest = np.sqrt(((z - z[0]) ** 2).sum(axis=1))
    scale = None
    for _ in range(1, n):
        nearest[picked[-1]] = -1.0
        nearest[picked] = -1.0
        i = int(np.argmax(nearest))
        d = float(nearest[i])
        if scale is None:
            scale = d if d > 0 else 1.0
        picked.append(i)
        scores.append(max(d, 0.0) / scale)
        nearest = np.minimum(nearest, np.sqrt(((z - z[i]) ** 2).sum(axis=1)))
    return [ids[i] for i in picked], scores


# ---------------------------------------------------------------- mix


def _mix(ctx: _Context, k: int, weights: dict[str, float]) -> list[tuple[str, float, str]]:
    """D'Hondt merge: the r-th pick of strategy s has priority w_s / r; first pick wins."""
    shares = _apportion(weights, k)
    if "diversity" in shares and not ctx.pool_given:
        # the pool scales with diversity's share of the budget, not with k
        ctx.pool = min(max(10 * shares["diversity"], 2000), ctx.pool)
    if "diversity" in weights and ctx.task != "regression":
        ctx.min_uncertain = ctx.pool + k
    picks: list[tuple[str, float, str]] = []
    taken: set[str] = set()
    queue: list[tuple[float, int, str, str]] = []
    # Strategies fill their share in turn; a strategy short of candidates leaves its
    # remaining slots to the others (a second round tops up from the best ones).
    for order, (name, weight) in enumerate(sorted(weights.items(), key=lambda kv: -kv[1])):
        ranked = _ranked(ctx, name, shares[name] + k, taken) if shares[name] else []
        count = 0
        for eid, _ in ranked:
            if count >= shares[name]:
                break
            if eid in taken:
                continue
            taken.add(eid)
            count += 1
            queue.append((weight / count, order, eid, name))
    if len(queue) < k:
        for name in sorted(weights, key=lambda s: -weights[s]):
            for eid, _ in _ranked(ctx, name, k - len(queue), taken):
                taken.add(eid)
                queue.append((0.0, 99, eid, name))
            if len(queue) >= k:
                break
    queue.sort(key=lambda row: (-row[0], row[1]))
    for priority, _, eid, name in queue[:k]:
        picks.append((eid, priority, name))
    return picks


def _apportion(weights: dict[str, float], k: int) -> dict[str, int]:
    """Seats per strategy by D'Hondt: the k largest of weight / r."""
    seats = dict.fromkeys(weights, 0)
    for _ in range(k):
        name = max(weights, key=lambda s: (weights[s] / (seats[s] + 1), -list(weights).index(s)))
        seats[name] += 1
    return seats


# ---------------------------------------------------------------- result


def _describe(ctx: _Context, strategy: str, picks: list[tuple[str, float, str]]) -> pa.Table:
    """The result table: per-strategy scores of the picks and a reason for each."""
    ids = [eid for eid, _, _ in picks]
    known = set()
    for part in ctx.predictions:
        known.update(part.column(0).to_pylist())
    missing = [e for e in ids if e not in known]
    if missing:
        _check_candidates(ctx, missing)
    unc_by: dict[str, dict[str, Any]] = {}
    if ctx.predictions and ids:
        payload = ctx.register(pa.concat_tables(ctx.predictions))
        chosen = ctx.register(pa.table({"example_id": pa.array(ids, pa.string())}))
        for row in ctx.run(
            "SELECT DISTINCT ON (p.example_id) p.example_id, p.p_version AS version, "
            "p.p_prediction AS prediction, p.p_score AS score, "
            "evalstore.least_confidence(p.p_score, p.p_probabilities) AS least_confidence, "
            "evalstore.margin(p.p_score, p.p_probabilities) AS margin, "
            "evalstore.entropy(p.p_score, p.p_probabilities) AS entropy "
            f"FROM {quote(payload)} AS p "
            f"WHERE p.example_id IN (SELECT example_id FROM {quote(chosen)})",
            {},
        ).to_pylist():
            unc_by[row["example_id"]] = row
    committee: dict[str, dict[str, Any]] = {}
    if ids and _version_count(ctx) > 1:
        chosen = ctx.register(pa.table({"example_id": pa.array(ids, pa.string())}))
        rows = ctx.run(
            "SELECT s.* FROM evalstore.suggest_committee($model, NULL, NULL) AS s "
            f"WHERE s.example_id IN (SELECT example_id FROM {quote(chosen)})",
            ctx.params(),
        ).to_pylist()
        committee = {row["example_id"]: row for row in rows}
    novelty: dict[str, tuple[float | None, str | None, Any, float | None]] = {}
    slice_of: dict[str, tuple[str, dict[str, Any]]] = {}
    features = _features_of(ctx, ids) if ids and ctx.kinds else {}
    parts = _novelty_parts(ctx) if ids and ctx.kinds else []
    needs = {}
    if ctx.slices is not None:
        needs = {row["slice"]: row for row in ctx.slices["needs"].to_pylist()}
    for eid in ids:
        row = features.get(eid)
        if row is None:
            continue
        if ctx.slices is not None and "__slice" in row:
            label = _slice_label(ctx.slices["columns"], row["__slice"])
            slice_of[eid] = (label, needs.get(row["__slice"], {}))
        rarities = [
            (row["r_" + feature], feature, row["v_" + feature])
            for feature, _, _ in parts
            if row.get("r_" + feature) is not None
        ]
        if not rarities:
            novelty[eid] = (None, None, None, None)
            continue
        top = max(rarities, key=lambda t: t[0])
        mean = sum(r for r, _, _ in rarities) / len(rarities)
        novelty[eid] = (mean, top[1], top[2], top[0])
    diversity = dict.fromkeys(ids)
    for eid, priority, name in picks:
        if name == "diversity":
            diversity[eid] = priority

    columns: dict[str, list[Any]] = {name: [] for name in RESULT_COLUMNS}
    for rank, (eid, priority, name) in enumerate(picks, start=1):
        u = unc_by.get(eid, {})
        cm = committee.get(eid, {})
        nv = novelty.get(eid, (None, None, None, None))
        sl = slice_of.get(eid)
        scores = {
            "least_confidence": u.get("least_confidence"),
            "margin": u.get("margin"),
            "entropy": u.get("entropy"),
            "committee": cm.get("committee"),
            "novelty": nv[0],
            "slice_need": sl[1].get("need") if sl else None,
            "diversity": diversity.get(eid),
        }
        reason = _reason(ctx, name, u, cm, nv, sl, scores)
        if strategy == "mix":
            others = [
                f"{key} {value:.2f}"
                for key, value in scores.items()
                if value is not None
                and key != name
                and key not in ("least_confidence", "margin")
                and not (name in UNCERTAINTY and key in UNCERTAINTY)
            ]
            reason = f"mix/{name}: {reason}" + (f" ({', '.join(others)})" if others else "")
        values = {
            "rank": rank,
            "example_id": eid,
            "version": u.get("version", ctx.version),
            "strategy": strategy,
            "picked_by": name,
            "priority": float(priority) if priority is not None else None,
            "reason": reason,
            **scores,
            "prediction": u.get("prediction"),
            "score": u.get("score"),
            "slice": sl[0] if sl else None,
            "request_id": None,
            "expires_at": None,
        }
        for key in RESULT_COLUMNS:
            columns[key].append(values[key])
    schema = pa.schema(
        [
            ("rank", pa.int64()),
            ("example_id", pa.string()),
            ("version", pa.string()),
            ("strategy", pa.string()),
            ("picked_by", pa.string()),
            ("priority", pa.float64()),
            ("reason", pa.string()),
            *[(name, pa.float64()) for name in SCORE_COLUMNS],
            ("prediction", pa.string()),
            ("score", pa.float64()),
            ("slice", pa.string()),
            ("request_id", pa.int64()),
            ("expires_at", pa.timestamp("us", tz="UTC")),
        ]
    )
    return pa.table(columns, schema=schema)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return repr(value) if isinstance(value, str) else str(value)


def _reason(
    ctx: _Context,
    name: str,
    u: Mapping[str, Any],
    cm: Mapping[str, Any],
    nv: tuple[Any, ...],
    sl: tuple[str, Mapping[str, Any]] | None,
    scores: Mapping[str, Any],
) -> str:
    if name in UNCERTAINTY:
        value = scores[name]
        detail = f"score {u['score']:.3f}" if u.get("score") is not None else "probabilities"
        return f"uncertain prediction {u.get('prediction')!r} ({detail}; {name} {value:.3f})"
    if name == "committee":
        return (
            f"{cm.get('versions')} versions disagree (majority {cm.get('majority')!r}, "
            f"vote entropy {cm.get('vote_entropy', 0):.2f}, "
            f"score spread {cm.get('score_spread', 0):.2f})"
        )
    if name == "novelty":
        mean, feature, value, rarity = nv
        if feature is None:
            return "novel features"
        what = (
            "out of the reference range"
            if rarity >= 1 and ctx.kinds[feature] == "numeric"
            else (
                "a category unseen in the reference"
                if rarity >= 1
                else f"rare (rarity {rarity:.2f})"
            )
        )
        return f"unusual features (novelty {mean:.2f}): {feature}={_fmt(value)} is {what}"
    if name == "slices":
        if sl is None:
            return "under-covered slice"
        key, need = sl
        rate = need.get("error_rate")
        rate_text = f"error rate {rate:.1%}" if rate is not None else "no errors measured"
        return (
            f"slice {key}: {need.get('labeled', 0)}/{need.get('examples', 0)} labeled "
            f"({need.get('coverage', 0):.1%}), {rate_text}, need {need.get('need', 0):.2f}"
        )
    if name == "diversity":
        return f"unlike earlier picks (k-center distance {scores['diversity']:.2f} of the first)"
    return f"random pick (seed {ctx.seed})"


def _record(ctx: _Context, table: pa.Table, expires_in: str | None) -> pa.Table:
    now = datetime.now(UTC)
    expires = None
    if expires_in is not None:
        try:
            expires = ctx.con.execute(
                "SELECT CAST(? AS TIMESTAMPTZ) + CAST(? AS INTERVAL)", [now, expires_in]
            ).fetchall()[0][0]
        except duckdb.Error as error:
            raise InvalidParameterError(
                f"expires_in={expires_in!r} is not an interval: use e.g. '14 days' or None"
            ) from error
    rows = ctx.register(table.select(["example_id", "picked_by", "priority", "reason", "rank"]))
    with transaction(ctx.con):
        ids = ctx.con.execute(
            "INSERT INTO evalstore.label_requests (model, example_id, strategy, priority, "
            "reason, requested_at, expires_at, status) "
            f"SELECT ?, example_id, picked_by, priority, reason, ?, ?, 'open' FROM {quote(rows)} "
            "ORDER BY rank RETURNING example_id, request_id",
            [ctx.model, now, expires],
        ).fetchall()
    by_id = dict(ids)
    table = table.set_column(
        table.schema.get_field_index("request_id"),
        "request_id",
        pa.array([by_id.get(e) for e in table.column("example_id").to_pylist()], pa.int64()),
    )
    return table.set_column(
        table.schema.get_field_index("expires_at"),
        "expires_at",
        pa.array([expires] * table.num_rows, pa.timestamp("us", tz="UTC")),
    )
