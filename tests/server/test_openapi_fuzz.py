"""Schemathesis over every operation of ``/openapi.json``: no server error, nothing undeclared.

The app of :mod:`openapi_target` (a populated store, read and write tokens; every request
carries the write token, so ingest, registration, suggestions and snapshots are exercised)
is fuzzed in-process with schema-valid (positive) and schema-invalid (negative) requests
drawn from Schemathesis's strategy for each operation, a fixed number per operation and a
fixed seed, so a run is reproducible and bounded. Each response goes through Schemathesis's
checks: no 5xx; its status code, media type and JSON body as the description declares.
``benchmarks/soak_openapi.py`` is the long version (thousands of cases).

(Schemathesis's own ``from_fixture(...).parametrize()`` runs operations as pytest subtests,
which this pytest version does not support; the operations are parametrized here instead,
and :func:`test_the_fuzzed_operations_are_all_of_them` keeps the list complete. Schemathesis
is imported by the fixture, not at collection, and its pytest plugin is off (``-p
no:schemathesis`` in pyproject.toml): the xdist workers that do not run this file do not
pay its import, ~1.3 s each.)
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, Phase, given, seed, settings

sys.path.insert(0, str(Path(__file__).parent))  # the suite imports test files by path
import openapi_target

#: Examples per operation and mode: about 20 s for the whole file on 2 cores.
EXAMPLES = 20
SEED = 19
#: Every operation of ``/openapi.json`` (checked against it below).
OPERATIONS = (
    "GET /healthz",
    "GET /metrics",
    "GET /v1/models",
    "POST /v1/models/{model}/versions",
    "POST /v1/models/{model}/features",
    "POST /v1/models/{model}/predictions",
    "POST /v1/models/{model}/labels",
    "GET /v1/models/{model}/suggestions",
    "GET /v1/models/{model}/requests",
    "POST /v1/models/{model}/requests/cancel",
    "POST /v1/models/{model}/selections",
    "POST /v1/models/{model}/snapshots",
    "GET /v1/snapshots",
    "GET /v1/snapshots/{name}",
    "POST /v1/sql",
    "GET /v1/models/{model}/{family}",
    "GET /v1/models/{model}/estimated_performance",
    "GET /v1/models/{model}/monitors",
    "POST /v1/models/{model}/monitors",
    "POST /v1/models/{model}/monitors/run",
    "POST /v1/models/{model}/monitors/backtest",
    "GET /v1/models/{model}/monitors/{name}",
    "PATCH /v1/models/{model}/monitors/{name}",
    "DELETE /v1/models/{model}/monitors/{name}",
    "POST /v1/models/{model}/monitors/{name}/backtest",
    "GET /v1/models/{model}/history",
    "GET /v1/alerts",
    "POST /v1/alerts/{alert_id}/acknowledge",
    "POST /v1/alerts/{alert_id}/silence",
    "GET /v1/channels",
    "POST /v1/channels",
    "DELETE /v1/channels/{name}",
)
#: Operations without any input: no schema-invalid request exists.
NO_INPUT = frozenset({"GET /healthz"})
#: Operations whose schema says what they accept: a schema-valid request must succeed
#: (or name an unknown model, family or snapshot: 404). Elsewhere validity depends on the
#: store's contents (registered models, column names, SQL) that the schema cannot state.
ACCEPTING = frozenset(
    {
        "GET /healthz",
        "GET /metrics",
        "GET /v1/models",
        "GET /v1/models/{model}/{family}",
        "GET /v1/models/{model}/monitors",
        "GET /v1/models/{model}/history",
        "GET /v1/alerts",
        "GET /v1/channels",
    }
)
#: (operation, Schemathesis ``GenerationMode`` value) pairs.
CASES = [
    pytest.param(label, mode, id=f"{label} {mode}")
    for label in OPERATIONS
    for mode in ("positive", "negative")
    if not (mode == "negative" and label in NO_INPUT)
]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    """The app under fuzz, loaded as a Schemathesis schema (its store closed afterwards)."""
    import schemathesis

    store, app = openapi_target.build(tmp_path_factory.mktemp("fuzz"))
    try:
        with TestClient(app):  # the app's lifespan (read pool, checkpoints) for the module
            yield schemathesis.openapi.from_asgi("/openapi.json", openapi_target.OwnLifespan(app))
    finally:
        store.close()


def test_the_fuzzed_operations_are_all_of_them(fuzzed):
    labels = [result.ok().label for result in fuzzed.get_all_operations()]
    assert sorted(labels) == sorted(OPERATIONS)


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_every_operation_answers_as_declared(fuzzed, label, mode):
    from schemathesis import GenerationMode

    mode = GenerationMode(mode)
    operation = fuzzed.find_operation_by_label(label)
    checks = openapi_target.checks()
    if mode is GenerationMode.POSITIVE and label in ACCEPTING:
        from schemathesis.specs.openapi.checks import positive_data_acceptance

        checks.append(positive_data_acceptance)

    @seed(SEED)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def answers_as_declared(case):
        case.call_and_validate(headers=openapi_target.AUTH, checks=checks)

    answers_as_declared()
