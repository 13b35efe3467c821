"""Monitors layer: watching a model, not only answering about it.

The metric history (``history``: persisted results of windowed metric calls, refreshed
incrementally, and the stored series; ``fingerprints``: which windows later batches
touched), and the monitors, alerts and notifications built on it.

This package has no import-time side effects: import its modules by name.

Import rule: monitors import :mod:`evalstore.errors`, core, metrics, flywheel and other
monitors modules; never ``demo``, ``cli``, ``store``, ``facade`` or ``server``.
"""
