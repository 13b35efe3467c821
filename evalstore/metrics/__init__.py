"""Metrics layer: one module (or subpackage) per metric family.

Quality, performance (with slicing and bootstrap), slices, skew, compare, health and the
drift subpackage (univariate, numeric fast path, multivariate, kernels). Each family
chooses what to compare and calls the SQL macros installed by :mod:`evalstore.core.macros`.

Import rule: metrics import :mod:`evalstore.errors`, core and other metrics modules only;
never ``flywheel``, ``demo``, ``cli``, ``store`` or ``server`` (checked by
``tests/test_layers.py``).
"""
