"""The server the OpenAPI fuzz runs against: a small store with data, and tokens of both scopes.

Shared by ``tests/server/test_openapi_fuzz.py`` (bounded, in ``make test``) and
``benchmarks/soak_openapi.py`` (thousands of cases). The app is built on a store file in a
temporary folder with a registered binary model (two versions) holding training and serving
features, predictions, labels, a label request, a snapshot, a monitor and a webhook channel,
so every operation of ``/openapi.json`` has something to read; requests carry the write
token, so writes (ingest, registration, suggestions, cancellations, snapshots, monitors,
alerts, channels) are exercised too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from fastapi import FastAPI

import evalstore
from server import create_app

READ_TOKEN = "fuzz-reader-0123456789abcdef"
WRITE_TOKEN = "fuzz-writer-0123456789abcdef"
TOKENS = f"{READ_TOKEN} read fuzz-reader\n{WRITE_TOKEN} write fuzz-writer\n"
#: Headers every fuzzed request carries (the write scope may also read).
AUTH = {"Authorization": f"Bearer {WRITE_TOKEN}"}
#: The response checks: no 5xx; every status, media type and body as ``/openapi.json`` says.
CHECK_NAMES = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
)
T0 = datetime(2024, 3, 1, tzinfo=UTC)


def checks() -> list[Any]:
    """The Schemathesis check functions named in :data:`CHECK_NAMES`."""
    import schemathesis.checks as core_checks
    from schemathesis.specs.openapi import checks as openapi_checks

    return [getattr(openapi_checks, n, None) or getattr(core_checks, n) for n in CHECK_NAMES]


def populate(store: evalstore.Store, rows: int = 120) -> None:
    """Model ``fraud`` (binary, v1 and v2) with features, predictions, labels and a snapshot."""
    rng = np.random.default_rng(19)
    store.register_model("fraud", "v1", "binary", threshold=0.5, stage="production")
    store.register_model("fraud", "v2", "binary", stage="shadow")
    ids = [f"t{i}" for i in range(rows)]
    store.log_features(
        "fraud",
        pa.table(
            {
                "example_id": ids,
                "ts": [T0 - timedelta(days=30)] * rows,
                "amount": rng.normal(100, 10, rows),
                "channel": rng.choice(["web", "app", "pos"], rows),
            }
        ),
        env="training",
    )
    ids = [f"s{i}" for i in range(rows)]
    ts = [T0 + timedelta(hours=int(h)) for h in rng.integers(0, 48, rows)]
    store.log_features(
        "fraud",
        pa.table(
            {
                "example_id": ids,
                "ts": ts,
                "amount": rng.normal(110, 12, rows),
                "channel": rng.choice(["web", "app", "pos"], rows),
            }
        ),
    )
    scores = rng.uniform(0, 1, rows)
    for version in ("v1", "v2"):
        store.log_predictions(
            "fraud",
            pa.table({"example_id": ids, "ts": ts, "score": scores, "latency_ms": scores * 100}),
            version=version,
            latency_column="latency_ms",
        )
    half = rows // 2
    labels = (rng.uniform(0, 1, half) < scores[:half]).astype(int)
    store.log_labels("fraud", pa.table({"example_id": ids[:half], "label": labels}))
    store.suggest("fraud", k=5, strategy="random")
    store.snapshot("fraud-train", {"model": "fraud", "env": "serving"})
    store.add_monitor(
        "amount_psi", "fraud", "drift", "psi", {"type": "fixed", "direction": "above", "value": 0.2}
    )
    store.add_channel("ops", "webhook", {"url": "https://hooks.example.com/evalstore"})


class OwnLifespan:
    """``app`` for Schemathesis's ASGI transport, its lifespan run by the caller instead.

    Schemathesis starts an app's lifespan on the first request and (its pytest plugin)
    stops it after each test; the server's lifespan closes its read pool for good, as a
    server's does once. So the caller runs the lifespan once (``with TestClient(app)``)
    and this wrapper declines lifespan events, the way an app without one does.
    """

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            raise RuntimeError("the lifespan is run by the test, not by Schemathesis")
        await self.app(scope, receive, send)


def build(folder: Path, **options: Any) -> tuple[evalstore.Store, FastAPI]:
    """A populated store in ``folder`` and the app serving it with read and write tokens.

    The caller closes the store. ``options`` go to :func:`server.create_app`.
    """
    token_file = folder / "tokens.txt"
    token_file.write_text(TOKENS, encoding="utf-8")
    store = evalstore.open(folder / "fuzz.duckdb")
    populate(store)
    return store, create_app(store, tokens=token_file, **options)
