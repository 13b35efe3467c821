"""Other compute engines fed by the same SQL: the macros of ``sql/`` inlined and
transpiled (:mod:`evalstore.engines.sql_inline`) and run on Apache Spark over the lake
layout of :mod:`evalstore.core.lake` (:mod:`evalstore.engines.spark`).

Import rule: engines sit at the top with the facade and the CLI (they write results into
the store's metric history, :mod:`evalstore.monitors`); nothing below them imports them.
"""
