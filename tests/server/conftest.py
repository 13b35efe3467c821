"""The server tests import their helper modules (:mod:`arrow_bodies`) by name: this
folder is put on ``sys.path`` (the tests run with ``--import-mode=importlib``, which does
not add it)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
