"""The :class:`~evalstore.Store` facade's method groups, one module per concern.

``evalstore.store`` keeps the handle itself (opening, closing, sessions, ``sql``, the
model registry and the ingest write path); the public methods that hand a call to a
lower layer live here as mixin classes that :class:`~evalstore.Store` inherits:

* :class:`~evalstore.facade.analysis.AnalysisMethods`: the metric families (drift,
  quality and schemas, performance, worst slices, skew, compare, health);
* :class:`~evalstore.facade.flywheel.FlywheelMethods`: label suggestions and requests,
  training-data selections, exports and snapshots;
* :class:`~evalstore.facade.ingest.IngestMethods`: ``log_features``,
  ``log_predictions`` and ``log_labels``;
* :class:`~evalstore.facade.monitoring.MonitoringMethods`: monitors, alerts and
  notification channels (:mod:`evalstore.monitors`).

Each mixin declares (for readers and type checkers) the attributes and helpers of
``Store`` it relies on; none is usable on its own. Every public method is wrapped by
:func:`evalstore.errors.translate_duckdb_errors`, as the ``Store``'s own are.

Import rule: the facade sits at the top with ``store``, ``demo`` and ``cli`` and may
import any layer (core, metrics, flywheel, monitors); nothing below it imports the facade (checked
by ``tests/test_layers.py``). It never imports ``evalstore.store`` (which imports it).
"""
