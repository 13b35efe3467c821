"""Performance estimated before labels arrive: CBPE (classification) and DLE (regression).

Modules: :mod:`~evalstore.metrics.estimation.estimate` (the front-end,
``store.estimate_performance``), :mod:`~evalstore.metrics.estimation.calibration`
(isotonic calibration by pool-adjacent-violators), :mod:`~evalstore.metrics.estimation.loss_model`
(DLE's gradient-boosted loss model), :mod:`~evalstore.metrics.estimation.reference` (the
labeled reference). The estimates themselves are computed by ``sql/estimation.sql``
(``evalstore.estimation_binary``, ``evalstore.estimation_multiclass``,
``evalstore.estimation_regression``), which also joins the realized value from the
performance macros. Definitions: docs/estimation.md.
"""
