"""Which examples to label next (``store.suggest``) and the label requests that follow.

The scores are SQL macros (``sql/suggest.sql``; their comments define each one exactly);
this package chooses the candidates, ranks them per strategy, merges strategies for
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

Modules: ``run`` (the call), ``context`` (its state), ``candidates`` (which examples may
be suggested), ``features`` (their serving feature rows), one module per strategy
(``uncertainty``, ``committee``, ``novelty``, ``slices``, ``diversity``, ``random_sample``,
``mix``) with ``ranking`` dispatching by name, ``result`` (scores and reasons) and
``record`` (the label requests).
"""

from evalstore.flywheel.suggest.context import STRATEGIES, UNCERTAINTY
from evalstore.flywheel.suggest.diversity import k_center
from evalstore.flywheel.suggest.mix import DEFAULT_WEIGHTS
from evalstore.flywheel.suggest.novelty import NOVELTY_GRID, band_bounds
from evalstore.flywheel.suggest.result import RESULT_COLUMNS, SCORE_COLUMNS
from evalstore.flywheel.suggest.run import suggest
from evalstore.flywheel.suggest.slices import MAX_SLICE_VALUES

__all__ = [
    "DEFAULT_WEIGHTS",
    "MAX_SLICE_VALUES",
    "NOVELTY_GRID",
    "RESULT_COLUMNS",
    "SCORE_COLUMNS",
    "STRATEGIES",
    "UNCERTAINTY",
    "band_bounds",
    "k_center",
    "suggest",
]
