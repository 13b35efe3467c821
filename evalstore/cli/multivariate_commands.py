"""``evalstore multivariate-drift``: joint drift of the features per window.

One call of :meth:`evalstore.Store.multivariate_drift` (methods ``mmd``, ``pca``,
``domain_classifier``); the options are its keyword arguments.
"""

from __future__ import annotations

from typing import Any

import click

from evalstore.cli.common import (
    emit,
    output_options,
    parse_names,
    reference_option,
    run_analysis,
    window_option,
)
from evalstore.metrics.specs import MULTIVARIATE_DRIFT_METHODS

#: Columns shown with --format table (the other formats carry every column).
VIEW = ["window_start", "method", "value", "p_value", "threshold_low", "threshold", "drifted",
        "n_reference", "n_analysis", "reason"]  # fmt: skip


def _range(text: str | None) -> tuple[float, float] | None:
    if text is None:
        return None
    low, comma, high = text.partition(",")
    try:
        if not comma:
            raise ValueError(text)
        return float(low), float(high)
    except ValueError:
        raise click.BadParameter(
            f"{text!r}: use LOW,HIGH, e.g. 0.45,0.65 (NannyML's default range)",
            param_hint="'--classifier-range'",
        ) from None


@click.command("multivariate-drift")
@click.option("--model", "-m", required=True, help="Registered model name.")
@reference_option("training, validation, dataset:TAG or START..END (a fixed reference).")
@window_option()
@click.option(
    "--features",
    help="Comma-separated features (default: the numeric ones); categorical ones are encoded.",
)
@click.option("--methods", help=f"Comma-separated: {', '.join(MULTIVARIATE_DRIFT_METHODS)}.")
@click.option("--version", "-v", "version", help="Only examples this version predicted.")
@click.option("--where", help="SQL predicate over feature columns, e.g. \"region = 'north'\".")
@click.option(
    "--categorical-encoding",
    type=click.Choice(["count", "onehot"]),
    default="count",
    show_default=True,
    help="How categorical features become numbers.",
)
@click.option(
    "--classifier-rows",
    type=int,
    default=2000,
    show_default=True,
    help="domain_classifier: rows per side (a seeded subsample).",
)
@click.option(
    "--classifier-range",
    help="domain_classifier: a fixed alert range LOW,HIGH (default: learned on reference chunks).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the subsamples.")
@click.option(
    "--preset",
    type=click.Choice(["nannyml"]),
    help="NannyML 0.13's data-reconstruction drift (pca, its definition, named in variant).",
)
@output_options()
@click.pass_context
def multivariate_drift(
    ctx: click.Context,
    model: str,
    reference: str,
    window: str,
    features: str | None,
    methods: str | None,
    version: str | None,
    where: str | None,
    categorical_encoding: str,
    classifier_rows: int,
    classifier_range: str | None,
    seed: int,
    preset: str | None,
    fmt: str,
    limit: int | None,
) -> None:
    """Joint drift of the features per window: MMD², PCA reconstruction error and a
    domain classifier's cross-validated ROC AUC.

    \b
    Example:
      evalstore multivariate-drift -m fraud -w "7 days" --methods domain_classifier
      evalstore multivariate-drift -m fraud --features amount,country --classifier-range 0.45,0.65
    """
    limits = _range(classifier_range)
    chosen = parse_names(methods)
    options: dict[str, Any] = {} if chosen is None else {"methods": chosen}
    if preset:
        options["preset"] = preset
    table = run_analysis(
        ctx, "multivariate_drift", model, reference, window, features,
        version=version, where=where, categorical_encoding=categorical_encoding,
        classifier_rows=classifier_rows, classifier_range=limits, seed=seed, **options,
    )  # fmt: skip
    emit(table, fmt, limit, columns=VIEW, drop_empty=True)
