"""Monitor rules (evalstore.monitors.rules): every rule type against hand-computed series,
the verdict order (insufficient, pending, breach/ok), and definition errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from evalstore.errors import InvalidParameterError
from evalstore.monitors.rules import COMMON_PARAMS, MAX_WINDOWS, RULE_TYPES, parse_rule
from evalstore.monitors.verdicts import Series, evaluate

DAY = np.timedelta64(1, "D")


def days(count: int, start: str = "2024-01-01") -> np.ndarray:
    return np.datetime64(start) + np.arange(count) * DAY


def series(values, n=None, labels=None, starts=None) -> Series:
    values = np.asarray(values, dtype=float)
    n = np.full(len(values), 100) if n is None else np.asarray(n)
    return Series(days(len(values)) if starts is None else starts, values, n, labels)


def statuses(rule, s, **kwargs) -> list[str]:
    return list(evaluate(rule, s, **kwargs).status)


# -- definitions -------------------------------------------------------------------------


def test_parse_fills_every_default_and_round_trips_through_json():
    rule = parse_rule({"type": "trailing"})
    assert rule.to_json() == {
        "type": "trailing", "n": 7, "k": 3.0, "direction": "both", "min_rows": 1,
        "wait_for_labels": True, "fire_after": 1, "resolve_after": 1,
    }  # fmt: skip
    assert parse_rule(rule.dumps()) == rule
    assert parse_rule(rule) == rule


def test_unsupervised_defaults_depend_on_the_method():
    assert parse_rule({"type": "unsupervised"}).params["threshold"] == 3.5
    assert parse_rule({"type": "unsupervised"}).params["n"] == 14
    share = parse_rule({"type": "unsupervised", "method": "share"})
    assert (share["threshold"], share["n"]) == (0.0, None)


@pytest.mark.parametrize(
    ("definition", "message"),
    [
        ({"type": "stddev"}, "rule type 'stddev' is unknown; give 'type' as one of 'fixed'"),
        ({"direction": "above"}, "rule type None is unknown"),
        ([1, 2], "rule must be a mapping"),
        ("{not json", "rule is not valid JSON"),
        ({"type": "fixed", "value": 1}, "rule 'fixed' needs parameter 'direction'"),
        ({"type": "fixed", "direction": "above"}, "rule 'fixed' needs parameter 'value'"),
        ({"type": "fixed", "direction": "up", "value": 1}, "parameter 'direction' must be one"),
        ({"type": "fixed", "direction": "above", "value": 1, "k": 2}, "takes no parameter 'k'"),
        ({"type": "fixed", "direction": "above", "value": "x"}, "'value' must be a number"),
        ({"type": "fixed", "direction": "above", "value": math.inf}, "must be finite"),
        ({"type": "trailing", "k": 0}, "rule 'trailing': parameter 'k' must be > 0; got 0"),
        ({"type": "trailing", "k": -1.5}, "parameter 'k' must be > 0; got -1.5"),
        ({"type": "trailing", "n": 1}, "parameter 'n' must be >= 2; got 1"),
        ({"type": "trailing", "n": 2.5}, "parameter 'n' must be a whole number"),
        ({"type": "trailing", "n": True}, "parameter 'n' must be a number"),
        ({"type": "trailing", "n": 10**6}, "parameter 'n' must be <= 10000"),
        ({"type": "range", "low": 2, "high": 1}, "low=2 is above high=1; give low <= high"),
        ({"type": "range", "low": 1}, "rule 'range' needs parameter 'high'"),
        ({"type": "seasonal", "coverage": 1.0}, "parameter 'coverage' must be <= 0.999"),
        ({"type": "unsupervised", "method": "share", "n": 5}, "'n' applies to method 'mad'"),
        ({"type": "unsupervised", "method": "share", "threshold": 2}, "must be in [0, 1]"),
        ({"type": "unsupervised", "threshold": 0}, "threshold must be > 0"),
        ({"type": "range", "low": 0, "high": 1, "min_rows": -1}, "'min_rows' must be >= 0"),
        ({"type": "range", "low": 0, "high": 1, "resolve_after": 0}, "'resolve_after' must"),
        ({"type": "range", "low": 0, "high": 1, "wait_for_labels": 1}, "must be true or false"),
    ],
)
def test_bad_definitions_name_the_parameter(definition, message):
    with pytest.raises(InvalidParameterError) as info:
        parse_rule(definition)
    assert message in str(info.value)


def test_every_rule_type_documents_its_parameters():
    for rule in RULE_TYPES.values():
        assert rule.definition and rule.docs_anchor.startswith("monitoring.md#")
        for param in (*rule.params, *COMMON_PARAMS):
            assert param.doc, (rule.name, param.name)


# -- fixed and range -----------------------------------------------------------------------


def test_fixed_above_and_below_are_strict():
    s = series([0.1, 0.2, 0.25, 0.19])
    above = evaluate({"type": "fixed", "direction": "above", "value": 0.2}, s)
    assert list(above.status) == ["ok", "ok", "breach", "ok"]
    assert list(above.upper) == [0.2] * 4 and np.isnan(above.lower).all()
    assert above.reason[2] == "value 0.25 above 0.2 (fixed above 0.2)"
    below = evaluate({"type": "fixed", "direction": "below", "value": 0.2}, s)
    assert list(below.status) == ["breach", "ok", "ok", "breach"]
    assert below.reason[0] == "value 0.1 below 0.2 (fixed below 0.2)"


def test_range_breaches_outside_the_closed_interval():
    s = series([0.0, 1.0, 1.5, 2.0, 2.01])
    v = evaluate({"type": "range", "low": 1, "high": 2}, s)
    assert list(v.status) == ["breach", "ok", "ok", "ok", "breach"]
    assert v.reason[0] == "value 0 below 1 (range [1, 2])"


# -- insufficient and pending --------------------------------------------------------------


def test_insufficient_rows_and_missing_values_come_before_labels():
    s = series([5.0, 5.0, math.nan, 5.0, 0.5], n=[3, 10, 10, 10, 10],
               labels=[True, False, True, False, True])  # fmt: skip
    rule = {"type": "fixed", "direction": "above", "value": 1, "min_rows": 10}
    v = evaluate(rule, s)
    assert list(v.status) == ["insufficient", "pending", "insufficient", "pending", "ok"]
    assert v.reason[0] == "3 rows < min_rows=10"
    assert v.reason[2] == "no value (nan)"
    # a pending window still says whether it would breach (a provisional alert)
    assert list(v.breached) == [True, True, False, True, False]
    assert v.reason[1] == "labels incomplete; value 5 would breach (fixed above 1)"


def test_wait_for_labels_false_judges_half_labelled_windows():
    s = series([5.0, 0.5], labels=[False, False])
    rule = {"type": "fixed", "direction": "above", "value": 1, "wait_for_labels": False}
    assert statuses(rule, s) == ["breach", "ok"]


def test_verdict_rows_carry_times_and_bounds():
    s = Series(days(2), [1.0, 3.0], [5, 6], None, days(2) + DAY)
    rows = evaluate({"type": "range", "low": 0, "high": 2}, s).rows()
    assert [(r.status, r.n, r.lower, r.upper) for r in rows] == [
        ("ok", 5, 0.0, 2.0), ("breach", 6, 0.0, 2.0),
    ]  # fmt: skip
    assert str(rows[1].window_start) == "2024-01-02 00:00:00"
    assert str(rows[1].window_end) == "2024-01-03 00:00:00"


# -- learned --------------------------------------------------------------------------------


def test_learned_uses_the_population_sd_of_the_reference_chunks():
    reference = [0.1, 0.2, 0.3, 0.2]  # mean 0.2, population sd sqrt(0.005)
    sd = math.sqrt(0.005)
    v = evaluate({"type": "learned", "k": 2}, series([0.2, 0.35, 0.06, 0.0]), reference=reference)
    assert v.lower[0] == pytest.approx(0.2 - 2 * sd) and v.upper[0] == pytest.approx(0.2 + 2 * sd)
    assert list(v.status) == ["ok", "breach", "ok", "breach"]  # bounds [0.0586, 0.3414]


def test_learned_direction_keeps_one_side():
    v = evaluate({"type": "learned", "direction": "below"}, series([9.0, -9.0]), reference=[0, 1])
    assert list(v.status) == ["ok", "breach"] and np.isnan(v.upper).all()


def test_learned_needs_reference_values():
    with pytest.raises(InvalidParameterError, match="rule 'learned' needs reference="):
        evaluate({"type": "learned"}, series([1.0]))
    v = evaluate({"type": "learned"}, series([1.0]), reference=[1.0, math.nan])
    assert list(v.status) == ["insufficient"]
    assert v.reason[0] == "reference has 1 finite values; learned needs at least 2"
    with pytest.raises(InvalidParameterError, match="rule 'range' takes no reference values"):
        evaluate({"type": "range", "low": 0, "high": 1}, series([1.0]), reference=[1.0, 2.0])


# -- trailing -------------------------------------------------------------------------------


def test_trailing_hand_computed():
    # previous 3 windows of window 3: [1, 2, 3]: mean 2, sample sd 1 -> k=2: [0, 4]
    v = evaluate({"type": "trailing", "n": 3, "k": 2}, series([1, 2, 3, 4.5, 10]))
    assert list(v.status) == ["insufficient", "insufficient", "breach", "breach", "breach"]
    assert (v.lower[3], v.upper[3]) == (0.0, 4.0)
    assert v.reason[3] == "value 4.5 above 4 (trailing mean 2 ± 2·sd 1 of 3 windows)"
    assert v.reason[1] == "1 usable of the previous 3 windows; trailing needs 2"
    # window 2: [1, 2]: mean 1.5, sample sd sqrt(0.5) -> upper 2.914 < 3
    assert v.upper[2] == pytest.approx(1.5 + 2 * math.sqrt(0.5))


def test_trailing_skips_unusable_windows_of_the_baseline():
    s = series([1, 3, 1000, 2, 2.5], n=[10, 10, 1, 10, 10])
    v = evaluate({"type": "trailing", "n": 3, "k": 1, "min_rows": 5}, s)
    # window 4: the previous 3 are [3, 1000 (1 row: unusable), 2] -> mean 2.5, sd sqrt(0.5)
    assert v.status[2] == "insufficient"
    assert (v.lower[4], v.upper[4]) == pytest.approx((2.5 - math.sqrt(0.5), 2.5 + math.sqrt(0.5)))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-1e3, 1e3), min_size=1, max_size=40),
    st.integers(2, 8),
    st.floats(0.1, 5),
)
def test_trailing_equals_a_numpy_loop(values, n, k):
    v = evaluate({"type": "trailing", "n": n, "k": k}, series(values))
    x = np.asarray(values)
    for i in range(len(x)):
        base = x[max(0, i - n) : i]
        if len(base) < 2:
            assert v.status[i] == "insufficient"
            continue
        mean, sd = base.mean(), base.std(ddof=1)
        assert v.lower[i] == pytest.approx(mean - k * sd, abs=1e-9)
        assert v.upper[i] == pytest.approx(mean + k * sd, abs=1e-9)
        outside = x[i] < v.lower[i] or x[i] > v.upper[i]
        assert v.status[i] == ("breach" if outside else "ok")


# -- seasonal -------------------------------------------------------------------------------


def test_seasonal_naive_with_residual_quantiles():
    # daily windows, weekly season: x = weekly pattern + a small trend of 1 per week
    pattern = np.array([10, 20, 30, 40, 50, 60, 70], dtype=float)
    values = np.concatenate([pattern, pattern + 1, pattern + 2, pattern + 3])
    values[-1] = 100.0  # the last day jumps
    rule = {"type": "seasonal", "period": "weekly", "seasons": 1, "coverage": 0.5}
    v = evaluate(rule, series(values))
    # weeks 0 and 1: no value a week earlier or no full season of residuals
    assert set(v.status[:14]) == {"insufficient"}
    assert v.reason[3] == "no usable value one season earlier to forecast from"
    assert v.reason[7] == "0 residuals in the previous 1 season(s); seasonal needs one season (7)"
    # day 14: forecast = x[7] = 11, residuals of days 7..13 all 1 -> interval [12, 12]
    assert (v.lower[14], v.upper[14]) == (12.0, 12.0) and v.status[14] == "ok"
    assert v.status[-1] == "breach"  # forecast x[20] = 72, residuals all 1: [73, 73]
    assert v.reason[-1].startswith("value 100 above 73 (seasonal-naive forecast 72")


def test_seasonal_interval_is_the_empirical_quantile_of_residuals():
    rng = np.random.default_rng(3)
    values = 5 + rng.normal(size=70)
    starts = np.datetime64("2024-01-01T00") + np.arange(70) * np.timedelta64(1, "h")
    rule = {"type": "seasonal", "period": "daily", "seasons": 2, "coverage": 0.8}
    v = evaluate(rule, series(values, starts=starts))
    i = 60
    residuals = [values[j] - values[j - 24] for j in range(i - 48, i) if j >= 24]
    lo, hi = np.quantile(residuals, [0.1, 0.9])
    assert (v.lower[i], v.upper[i]) == pytest.approx((values[i - 24] + lo, values[i - 24] + hi))


def test_seasonal_refuses_windows_that_do_not_divide_the_season():
    starts = np.datetime64("2024-01-01") + np.arange(5) * np.timedelta64(5, "D")
    with pytest.raises(InvalidParameterError, match="period 'weekly' is not a whole number"):
        evaluate({"type": "seasonal"}, series([1, 2, 3, 4, 5.0], starts=starts))
    with pytest.raises(InvalidParameterError, match="period 'daily' is not a whole number"):
        evaluate({"type": "seasonal", "period": "daily"}, series([1, 2, 3.0]))


# -- unsupervised ---------------------------------------------------------------------------


def test_unsupervised_mad_score_hand_computed():
    # previous 5 of window 5: [1, 2, 3, 4, 100]: median 3, MAD 1 -> bounds 3 ± 3.5·1.4826
    v = evaluate({"type": "unsupervised", "n": 5}, series([1, 2, 3, 4, 100, 9, 8]))
    assert list(v.status[:3]) == ["insufficient"] * 3
    assert (v.lower[5], v.upper[5]) == pytest.approx((3 - 3.5 * 1.4826, 3 + 3.5 * 1.4826))
    assert v.status[5] == "breach"  # |9 - 3| = 6 > 3.5·1.4826 = 5.19
    assert v.reason[4].startswith("value 100 above")


def test_unsupervised_zero_mad_breaches_any_other_value():
    v = evaluate({"type": "unsupervised", "n": 3}, series([0, 0, 0, 0, 0.001]))
    assert list(v.status) == ["insufficient"] * 3 + ["ok", "breach"]


def test_unsupervised_share_is_a_threshold_on_the_invalid_share():
    rule = {"type": "unsupervised", "method": "share", "threshold": 0.01}
    assert statuses(rule, series([0.0, 0.01, 0.011, 0.5])) == ["ok", "ok", "breach", "breach"]
    assert statuses({"type": "unsupervised", "method": "share"}, series([0, 1e-9])) == [
        "ok",
        "breach",
    ]


# -- series checks --------------------------------------------------------------------------


def test_series_must_be_sorted_aligned_and_bounded():
    with pytest.raises(InvalidParameterError, match="strictly increasing"):
        evaluate({"type": "range", "low": 0, "high": 1},
                 series([1, 2.0], starts=days(2)[::-1]))  # fmt: skip
    with pytest.raises(InvalidParameterError, match=r"series.n has shape \(3,\)"):
        evaluate({"type": "range", "low": 0, "high": 1}, Series(days(2), [1, 2.0], [1, 2, 3]))
    count = MAX_WINDOWS + 1
    big = Series(np.arange(count).astype("datetime64[s]"), np.zeros(count), np.ones(count))
    with pytest.raises(InvalidParameterError, match=f"above the limit of {MAX_WINDOWS}"):
        evaluate({"type": "range", "low": 0, "high": 1}, big)
