"""Core layer: the store's storage and the rules every family relies on.

Connection and transactions (``db``), the store layout and its migrations (``layout``),
identifier quoting (``identifiers``), sources and ingest, the model registry, label-request
fulfilment and expiry (``label_requests``), the SQL macros' installation (``macros``) and
Python UDFs, value views, time limits, parameter bounds, the SQL policy, result formats,
analysis windows and references (``windows``), and the :class:`~evalstore.core.context.Context`
that the families receive instead of the ``Store``.

Import rule: core imports only the standard library, third-party packages,
:mod:`evalstore.errors` and other core modules; never ``metrics``, ``flywheel``, ``demo``,
``cli``, ``store`` or ``server`` (checked by ``tests/test_layers.py``).
"""
