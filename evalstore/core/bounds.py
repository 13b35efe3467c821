"""Upper bounds on the size parameters of the library's calls, checked before any work.

A size parameter (how many examples to suggest, candidates to rank, bins to cut,
permutations or bootstrap resamples to draw, rows to subsample) sets how much memory and
time a call takes. Each is checked against its bound here, when the call's arguments are
validated, so a mistyped or hostile ``k=1000000000`` is refused at once with an error
naming the parameter, the bound and what to do, instead of running for minutes (and, in
``evalstore serve``, holding a worker or the writers' lock).

The bounds are generous for interactive use; work beyond them belongs in several calls
(``suggest`` again after labeling, a narrower ``where``) rather than in one.

>>> bounded_int(20, "bins", least=1, most=MAX_BINS)
20
>>> bounded_int(10**9, "k", most=MAX_SUGGEST_K, hint="label first")
Traceback (most recent call last):
...
evalstore.errors.InvalidParameterError: k=1000000000 is above the limit of 10000; label first
"""

from __future__ import annotations

from typing import Any

import numpy as np

from evalstore.errors import InvalidParameterError

#: ``suggest(k=)``: examples suggested (and recorded as label requests) per call.
MAX_SUGGEST_K = 10_000
#: ``suggest(pool=)``: candidates the greedy k-center of ``diversity`` ranks.
MAX_SUGGEST_POOL = 100_000
#: Histogram bins of drift (``bins``) and calibration bins (``ece_bins``).
MAX_BINS = 1_000
#: Quantile bins of a numeric slicing key (``performance(by=…, bins=)``,
#: ``worst_slices(bins=)``): cells multiply across keys, so this bound is lower.
MAX_SLICE_BINS = 100
#: Feature pairs ``worst_slices`` crosses (``max_pairs``).
MAX_PAIRS = 1_000
#: Findings ``worst_slices`` returns (``top``).
MAX_TOP = 100_000
#: Bootstrap resamples of ``performance`` (``n_boot``).
MAX_BOOTSTRAP = 10_000
#: Permutations of the MMD test (``n_permutations``).
MAX_PERMUTATIONS = 10_000
#: Rows per side the MMD test subsamples to (``max_rows``): its Gram matrix holds
#: ``(2 max_rows)²`` floats (800 MB at this bound).
MAX_MMD_ROWS = 5_000
#: Work of one MMD test, ``(2 max_rows)² x n_permutations`` (50 times the default's).
MAX_MMD_WORK = 50 * (2 * 1_000) ** 2 * 200
#: Reference chunks of learned thresholds (``learn_chunks``).
MAX_LEARN_CHUNKS = 1_000
#: Offending example ids listed per feature by ``skew`` (``sample``).
MAX_SAMPLE_IDS = 10_000
#: Distinct values a saved schema lists per feature (``infer_schema(max_domain=)``).
MAX_DOMAIN = 1_000_000


def bounded_int(
    value: Any, name: str, *, least: int = 1, most: int, hint: str | None = None
) -> int:
    """``value`` as an int if it is one in ``[least, most]``; else :class:`InvalidParameterError`.

    The message names ``name``, the bound that was crossed and, above ``most``, what to
    do instead (``hint``; by default "pass at most ``most``").
    """
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
        expected = {0: "a non-negative int", 1: "a positive int"}.get(least, f"an int >= {least}")
        raise InvalidParameterError(f"{name}={value!r} must be {expected} (at most {most})")
    value = int(value)
    if value > most:
        raise InvalidParameterError(
            f"{name}={value!r} is above the limit of {most}; {hint or f'pass at most {most}'}"
        )
    return value
