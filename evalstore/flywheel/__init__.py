"""Flywheel layer: choosing what to label next and what to train on.

Suggestions of examples to label (``suggest``), training-data selection
(``training_data``) and named reproducible selections (``snapshots``).

Import rule: the flywheel imports :mod:`evalstore.errors`, core, metrics and other flywheel
modules; never ``demo``, ``cli``, ``store`` or ``server`` (checked by ``tests/test_layers.py``).
"""
