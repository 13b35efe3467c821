"""The model-level metric commands: ``performance``, ``slices`` (worst slices),
``skew`` (training/serving), ``compare`` (two versions) and ``health`` (production).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from evalstore.cli.common import (
    cell_arguments,
    echo_wrapped,
    emit,
    open_store,
    output_options,
    parse_names,
    parse_slice_keys,
    parse_window,
    performance_options,
    slice_columns,
    slice_options,
    threshold_option,
)

if TYPE_CHECKING:
    import pyarrow as pa


@click.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--metrics", help="Comma-separated, e.g. roc_auc,f1 (default: all of the task).")
@performance_options()
@threshold_option()
@click.option(
    "--normalize-confusion-matrix",
    type=click.Choice(["all", "true", "pred"]),
    help="Metrics tp,fp,fn,tn as shares of all rows, the true or the predicted class.",
)
@click.option(
    "--business-value-matrix",
    help="TN,FP,FN,TP values of each decision for metric business_value, e.g. 0,-5,-50,100.",
)
@click.option(
    "--normalize-business-value",
    type=click.Choice(["per_prediction"]),
    help="business_value per decision (the total / n) instead of the total.",
)
@click.option(
    "--preset",
    type=click.Choice(["nannyml"]),
    help="NannyML 0.13's realized metrics of a binary model (its definitions, named in variant).",
)
@output_options()
@click.pass_context
def performance(
    ctx: click.Context,
    model: str,
    metrics: str | None,
    window: str,
    by: str | None,
    slices: tuple[str, ...],
    version: str | None,
    where: str | None,
    threshold: float | None,
    normalize_confusion_matrix: str | None,
    business_value_matrix: str | None,
    normalize_business_value: str | None,
    preset: str | None,
    fmt: str,
    limit: int | None,
) -> None:
    """Realized performance per window, version and slice, with confidence intervals.

    \b
    Example:
      evalstore performance --model fraud --window "7 days" --by region --metrics roc_auc,f1
      evalstore performance -m fraud --metrics business_value --business-value-matrix 0,-5,-50,100
    """
    cells = cell_arguments(metrics, window, by, slices, version, where)
    options: dict[str, Any] = {}
    if normalize_confusion_matrix:
        options["normalize_confusion_matrix"] = normalize_confusion_matrix
    if business_value_matrix:
        options["business_value_matrix"] = parse_value_matrix(business_value_matrix)
    if normalize_business_value:
        options["normalize_business_value"] = normalize_business_value
    if preset:
        options["preset"] = preset
    with open_store(ctx, read_only=True) as store:
        table = store.performance(model, **cells, threshold=threshold, **options)
    emit(table, fmt, limit, columns=_performance_view(table), drop_empty=True)


def parse_value_matrix(text: str) -> list[list[float]]:
    """--business-value-matrix TN,FP,FN,TP as ``[[tn, fp], [fn, tp]]`` (NannyML's layout).

    >>> parse_value_matrix("0,-5,-50,100")
    [[0.0, -5.0], [-50.0, 100.0]]
    """
    try:
        values = [float(part) for part in text.split(",")]
    except ValueError:
        values = []
    if len(values) != 4:
        raise click.BadParameter(
            "four comma-separated numbers TN,FP,FN,TP (the value of each decision)",
            param_hint="'--business-value-matrix'",
        )
    return [values[:2], values[2:]]


def _performance_view(table: pa.Table) -> list[str]:
    """Columns of `performance` worth reading in a terminal: the slice keys included."""
    return ["window_start", *slice_columns(table), "version", "metric", "class", "value",
            "ci_low", "ci_high", "n", "label_coverage", "labels_complete", "reason"]  # fmt: skip


@click.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--metric", help="accuracy, precision, recall, specificity, brier, log_loss, mae…")
@click.option("--since", help="Only predictions at or after this ISO-8601 time.")
@click.option("--until", help="Only predictions before this ISO-8601 time.")
@click.option("--version", "-v", "version", help="Version (default: the latest registered).")
@click.option("--where", help="SQL predicate over feature columns.")
@click.option("--features", help="Comma-separated features to slice (default: all).")
@click.option("--min-support", default="0.01", show_default=True, help="Rows (int) or share.")
@click.option("--alpha", type=float, default=0.05, show_default=True, help="False discovery rate.")
@click.option("--correction", type=click.Choice(["bh", "bonferroni", "none"]), default="bh")
@click.option("--no-pairs", is_flag=True, help="Search single features only.")
@click.option("--top", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--threshold", type=float, help="Binary what-if: decide by score >= it.")
@click.option("--business-value-matrix", help="TN,FP,FN,TP values (metric business_value).")
@output_options()
@click.pass_context
def slices(
    ctx: click.Context,
    model: str,
    features: str | None,
    min_support: str,
    no_pairs: bool,
    business_value_matrix: str | None,
    fmt: str,
    limit: int | None,
    **options: Any,
) -> None:
    """Worst slices: feature values, bins and pairs where a metric is significantly worse.

    Prints the findings ranked by excess (effect x rows), then each one's SQL predicate,
    to pass as --where to performance, drift, suggest or select.

    \b
    Example:
      evalstore slices --model fraud --metric log_loss --since 2026-10-15
    """
    try:
        support: float = int(min_support) if min_support.isdigit() else float(min_support)
    except ValueError:
        raise click.BadParameter(
            "a row count or a share in (0, 1)", param_hint="'--min-support'"
        ) from None
    if business_value_matrix:
        options["business_value_matrix"] = parse_value_matrix(business_value_matrix)
    with open_store(ctx, read_only=True) as store:
        table = store.worst_slices(
            model,
            features=parse_names(features),
            min_support=support,
            pairs=not no_pairs,
            **options,
        )
    if fmt != "table":
        emit(table, fmt, limit)
        return
    if not table.num_rows:
        click.echo("No slice is significantly worse than the rest.")
        return
    from evalstore.cli import render as cli_render

    emit(table, fmt, limit, columns=["rank", "slice", "n", "value", "rest_value", "effect",
                                      "q_value", "predicate"])  # fmt: skip
    first = table.slice(0, 1).to_pylist()[0]
    width = cli_render.terminal_width()
    echo_wrapped(f"metric {first['metric']} of version {first['version']}; {first['test']}")
    echo_wrapped(f"scored: {first['variant']}")
    click.echo("predicates (pass as --where):")
    shown = table if not limit else table.slice(0, limit)
    for row in shown.select(["rank", "predicate"]).to_pylist():
        line = f"  #{row['rank']}: {row['predicate']}"
        click.echo("\n".join(cli_render.wrap_lines(line, width, indent="      ")))


@click.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--tolerance", type=float, default=1e-8, show_default=True, help="Absolute.")
@click.option("--rtol", type=float, default=1e-5, show_default=True, help="Relative tolerance.")
@click.option("--features", help="Comma-separated features (default: all).")
@click.option("--version", "-v", "version", help="Its training dataset and predicted examples.")
@click.option("--where", help="SQL predicate both rows of an example must meet.")
@click.option("--method", default="js", show_default=True, help="Drift method of the distance.")
@click.option("--no-distance", is_flag=True, help="Only count mismatches (faster).")
@output_options()
@click.pass_context
def skew(
    ctx: click.Context,
    model: str,
    tolerance: float,
    rtol: float,
    features: str | None,
    version: str | None,
    where: str | None,
    method: str,
    no_distance: bool,
    fmt: str,
    limit: int | None,
) -> None:
    """Training/serving skew per feature for examples logged in both envs.

    \b
    Example:
      evalstore skew --model fraud --tolerance 1e-6 --features amount,country
    """
    options = dict(features=parse_names(features), version=version, where=where)
    with open_store(ctx, read_only=True) as store:
        table = store.skew(
            model, tolerance, rtol, method=None if no_distance else method, **options
        )
        summary = store.skew_summary(model, tolerance, rtol, **options).to_pylist()[0]
    shown = ["feature", "kind", "n_compared", "n_mismatch", "share_mismatch", "skewed",
             "distance", "method", "sample_ids"]  # fmt: skip
    emit(table, fmt, limit, columns=shown)
    if fmt != "table":
        return
    echo_wrapped(
        f"{summary['n_examples_skewed']} of {summary['n_examples']} examples in both training "
        f"and serving differ in at least one feature; {summary['n_features_skewed']} of "
        f"{summary['n_features']} compared features have mismatches"
    )


@click.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--a", "-a", "a", required=True, help="Baseline version (champion).")
@click.option("--b", "-b", "b", required=True, help="Challenger version.")
@click.option(
    "--window", "-w", default="1 day", show_default=True, help="Over a's prediction time."
)
@click.option("--metrics", help="Comma-separated, e.g. disagreement,accuracy (default: all).")
@slice_options("Comma-separated categorical features to slice by.")
@click.option("--where", help="SQL predicate over feature columns.")
@threshold_option()
@output_options()
@click.pass_context
def compare(
    ctx: click.Context,
    model: str,
    a: str,
    b: str,
    window: str,
    metrics: str | None,
    by: str | None,
    slices: tuple[str, ...],
    where: str | None,
    threshold: float | None,
    fmt: str,
    limit: int | None,
) -> None:
    """Compare two versions on the examples both predicted (champion/challenger, shadow).

    \b
    Example:
      evalstore compare --model fraud -a v1 -b v2 --window "7 days" --metrics accuracy
    """
    keys = parse_slice_keys(by, slices)
    with open_store(ctx, read_only=True) as store:
        table = store.compare(
            model, a, b, window=parse_window(window), by=keys, metric=parse_names(metrics),
            where=where, threshold=threshold,
        )  # fmt: skip
    names = table.column_names
    slice_columns = names[4 : names.index("metric")] if "metric" in names else []
    shown = ["window_start", *slice_columns, "metric", "value", "ci_low", "ci_high", "p_value",
             "value_a", "value_b", "n", "test"]  # fmt: skip
    emit(table, fmt, limit, columns=shown)
    if fmt == "table":
        click.echo(f"value: disagreement rate, or the difference {b} - {a}")


@click.command()
@click.option("--model", "-m", required=True, help="Registered model name.")
@click.option("--window", "-w", default="1 day", show_default=True, help="An interval.")
@click.option("--version", "-v", "version", help="Only this version.")
@click.option("--sections", help="Comma-separated: staleness, serving, ingest, dependencies.")
@click.option("--as-of", help="Clock for staleness (default: the latest prediction ts).")
@click.option("--now", help="Clock for ingest freshness (default: the current time).")
@output_options()
@click.pass_context
def health(
    ctx: click.Context,
    model: str,
    window: str,
    version: str | None,
    sections: str | None,
    as_of: str | None,
    now: str | None,
    fmt: str,
    limit: int | None,
) -> None:
    """Production health: staleness, latency/throughput/errors, ingest, dependency changes.

    \b
    Example:
      evalstore health --model fraud --window "1 hour" --sections serving,ingest
    """
    from evalstore.metrics.health import wide

    with open_store(ctx, read_only=True) as store:
        table = store.health(model, window, version, parse_names(sections), as_of=as_of, now=now)
    if fmt != "table":
        emit(table, fmt, limit)
        return
    titles = {
        "staleness": "Staleness (days)",
        "serving": f"Serving per {window} (throughput in predictions/s, latency in ms)",
        "ingest": "Ingest (freshness in hours; batches and rows in total)",
        "dependencies": "Dependency changes between consecutive versions",
    }
    parts = wide(table)
    if not parts:
        click.echo("(no health figures: nothing logged yet)")
    for section, part in parts.items():
        click.echo(f"== {titles[section]}")
        emit(part, fmt, limit)
