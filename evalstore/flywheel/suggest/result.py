"""The result table of ``suggest``: every per-strategy score of the picks and a readable
reason for each (columns :data:`RESULT_COLUMNS`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pyarrow as pa

from evalstore.core.identifiers import quote
from evalstore.flywheel.suggest.candidates import _check_candidates
from evalstore.flywheel.suggest.committee import _version_count
from evalstore.flywheel.suggest.context import UNCERTAINTY, _Context
from evalstore.flywheel.suggest.features import _features_of
from evalstore.flywheel.suggest.novelty import _novelty_parts
from evalstore.flywheel.suggest.slices import _slice_label

#: Per-strategy score columns of a suggestion.
SCORE_COLUMNS = (*UNCERTAINTY, "committee", "novelty", "slice_need", "diversity")
RESULT_COLUMNS = (
    "rank", "example_id", "version", "strategy", "picked_by", "priority", "reason",
    *SCORE_COLUMNS, "prediction", "score", "slice", "request_id", "expires_at",
)  # fmt: skip


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
        chosen = ctx.register_ids(ids)
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
        chosen = ctx.register_ids(ids)
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
