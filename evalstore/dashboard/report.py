"""Self-contained HTML reports of one model: the dashboard's model page for a period,
written into one file that opens offline (``store.report``, ``evalstore report``).
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING

from evalstore.dashboard import pages, panels

if TYPE_CHECKING:
    from evalstore.store import Store

#: Drifted features whose distributions a report includes (each one's first drifted window).
MAX_DISTRIBUTIONS = 12


@dataclass
class Report:
    """An HTML report: ``html`` is the whole file (scripts and data inlined). In Jupyter it
    displays inline (``_repr_html_``); :meth:`save` writes it."""

    model: str
    view: panels.View
    html: str

    def save(self, path: str | PathLike[str]) -> Path:
        """Write the report to ``path`` (UTF-8) and return the path."""
        target = Path(path)
        target.write_text(self.html, encoding="utf-8")
        return target

    def _repr_html_(self) -> str:
        # an iframe keeps the report's scripts and styles apart from the notebook's
        return (
            f'<iframe srcdoc="{html.escape(self.html, quote=True)}" '
            'style="width: 100%; height: 900px; border: 1px solid #ddd"></iframe>'
        )

    def __repr__(self) -> str:
        return f"<Report of {self.model!r}: {len(self.html.encode()) / 1e6:.2f} MB of HTML>"


def period_text(view: panels.View) -> str:
    """The report's period in words, e.g. ``windows of 1 day from 2026-10-01``."""
    text = f"windows of {view.window}"
    if view.since:
        text += f" from {view.since}"
    if view.until:
        text += f" until {view.until} (excluded)"
    return text if view.since or view.until else text + ", all stored data"


def build_report(store: Store, view: panels.View) -> Report:
    """The report of ``view.model`` for ``view``: every panel of the model page, and the
    reference/window distributions of each drifted feature's first drifted window."""
    model_panels = panels.model_panels(store, view)
    cells = []
    drift = next(p for p in model_panels if p.id == "drift")
    frame = drift.frame
    if frame is not None and len(frame):
        drifted = frame[frame["drifted"].fillna(False).astype(bool)]
        first = drifted.groupby("feature", sort=True)["window_start"].min()
        for feature, start in list(first.items())[:MAX_DISTRIBUTIONS]:
            cells.append(panels.distribution_panel(store, view, feature, start.isoformat()))
    text = pages.report_html(
        view.model,
        [p.to_json() for p in model_panels],
        [c.to_json() for c in cells],
        period_text(view),
    )
    return Report(view.model, view, text)
