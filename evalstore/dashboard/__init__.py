"""Pictures of a store: the dashboard of ``evalstore serve``, self-contained HTML reports
and notebook figures, drawn from one set of chart definitions.

- :mod:`~evalstore.dashboard.charts`: the charts (Altair, i.e. Vega-Lite specifications);
- :mod:`~evalstore.dashboard.panels`: what each panel reads from the store and the calls
  that reproduce it, the model page's :class:`~evalstore.dashboard.panels.View` and the
  models overview;
- :mod:`~evalstore.dashboard.pages`: the HTML (dashboard pages and offline reports);
- ``static/``: the vendored Vega, Vega-Lite and vega-embed scripts (see
  ``static/README.md``) and the dashboard's own script and style sheet.

The dashboard sits at the top layer with the Store facade: it reads through the Store.
"""
