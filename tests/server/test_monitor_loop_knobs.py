"""The monitor loop's debounce and delay from the server's settings and `evalstore serve`.

``monitor_debounce`` and ``monitor_max_delay`` (``--monitor-debounce``,
``--monitor-max-delay``) reach the app's :class:`server.monitor_loop.MonitorLoop`, which
then schedules a model's pass at ``min(last commit + debounce, first commit + max_delay)``;
a delay below the debounce is refused before a server starts.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

import evalstore
from evalstore.cli import main
from server.app import create_app


@pytest.fixture
def store():
    store = evalstore.open()
    yield store
    store.close()


def test_settings_reach_the_loop_and_its_schedule(store):
    app = create_app(
        store, lockdown=False, monitor_every=3600, monitor_debounce=0.2, monitor_max_delay=0.5
    )
    loop = app.state.monitor_loop
    assert (loop.debounce, loop.max_delay) == (0.2, 0.5)
    assert loop._due((100.0, 100.0)) == pytest.approx(100.2)  # a lone commit: debounce
    assert loop._due((100.0, 100.4)) == pytest.approx(100.5)  # a stream: capped by the delay
    default = create_app(store, lockdown=False, monitor_every=3600).state.monitor_loop
    assert (default.debounce, default.max_delay) == (1.0, 5.0)


def test_a_delay_below_the_debounce_is_refused(store):
    with pytest.raises(ValueError, match=r"max_delay=0\.5 >= debounce"):
        create_app(store, lockdown=False, monitor_debounce=1.0, monitor_max_delay=0.5)


def test_serve_refuses_a_delay_below_the_debounce(tmp_path):
    path = tmp_path / "s.duckdb"
    result = CliRunner().invoke(
        main,
        ["serve", str(path), "--monitor-debounce", "2", "--monitor-max-delay", "0.5"],
    )
    assert result.exit_code == 1  # the CLI's one-line usage errors
    assert "Invalid value for '--monitor-max-delay': 0.5 is below --monitor-debounce 2.0" in (
        result.output
    )
    assert not path.exists()  # refused before the store was opened
