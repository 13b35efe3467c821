"""Every script in examples/ runs as a user would run it, and prints what it says it does.

Each script runs in a process of its own (``python examples/<name>.py``) with a temporary
working directory, so a script that writes a file leaves nothing in the checkout.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
#: What each script must print (regular expressions, searched in its stdout).
EXPECTED = {
    "quickstart.py": [
        r"Receipt\(batch_id=3, model='fraud', kind='labels', rows=600,",
        # 1000 predictions every 30 minutes from 2026-11-01, labels for the first 600:
        # weekly windows from Monday 2026-10-26, the third one partly labeled (216 of 336)
        r"2026-11-09 00:00:00\+00:00 .* 336 +216 +0\.642857",
        r"2026-11-16 00:00:00\+00:00 .* 280 +0 +0\.000000",
        r"\[\{'accuracy': 0\.775\}\]",
    ],
    "skew.py": [
        # income in thousands for 300 rows, upper-case region for 50, float noise within rtol
        r"income +2000 +300 +0\.15 ",
        r"utilization +2000 +0 +0 +NULL",
        r"region +2000 +50 +0\.025 +NULL",
        r"339 of 2000 examples differ in at least one feature; 2 of 3 features are skewed",
    ],
}


def test_every_example_script_is_checked():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED)


@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs_and_prints_its_findings(script, tmp_path):
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": str(Path(sys.executable).parent), "COLUMNS": "200"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for pattern in EXPECTED[script]:
        assert re.search(pattern, done.stdout), f"{script}: no {pattern!r} in\n{done.stdout}"
    assert not list(tmp_path.iterdir())  # in-memory stores: nothing written
