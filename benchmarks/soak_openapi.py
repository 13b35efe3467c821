"""OpenAPI soak: Schemathesis over every operation of ``/openapi.json``, thousands of cases.

    python benchmarks/soak_openapi.py [--examples 400] [--seed 19] [--positive-acceptance]

The app of ``tests/server/openapi_target.py`` (a populated store, read and write tokens; requests
carry the write token) is fuzzed in-process through its ASGI interface. Per operation,
``--examples`` schema-valid (positive) and as many schema-invalid (negative) requests are
generated with a fixed seed, sent, and checked as in ``tests/server/test_openapi_fuzz.py``:
no server error (5xx), every status code, media type and JSON body as the description
declares. ``--positive-acceptance`` also counts schema-valid requests the server refused.
Failures are counted, not shrunk; the first few distinct ones are printed below the table.
This is the long version of the bounded test in ``make test``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from contextlib import suppress
from pathlib import Path

from fastapi.testclient import TestClient
from harness import machine, table, versions
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "server"))
import openapi_target
import schemathesis
from schemathesis import GenerationMode
from schemathesis.core.failures import Failure, FailureGroup

KINDS = {
    "not_a_server_error": "server errors",
    "status_code_conformance": "undocumented statuses",
    "content_type_conformance": "media type violations",
    "response_schema_conformance": "schema violations",
    "positive_data_acceptance": "valid requests refused",
}


def fuzz(operation, mode: GenerationMode, examples: int, rng_seed: int, checks: list):
    """Send ``examples`` generated requests to ``operation``; count cases and failures."""
    counts, distinct = Counter(), Counter()

    @seed(rng_seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case) -> None:
        counts["cases"] += 1
        try:
            response = case.call(headers=openapi_target.AUTH)
        except Exception as error:  # the app raised instead of answering
            counts["not_a_server_error"] += 1
            distinct[(operation.label, "raised", 500, f"{type(error).__name__}: {error}")] += 1
            return
        try:
            case.validate_response(response, checks=checks, headers=openapi_target.AUTH)
        except (FailureGroup, Failure) as error:
            for failure in getattr(error, "exceptions", (error,)):
                kind = next((c for c in failure.checks if c in KINDS), failure.title)
                counts[kind] += 1
                first = (failure.message.strip().splitlines() or [failure.title])[0][:160]
                distinct[(operation.label, kind, response.status_code, first)] += 1

    with suppress(Unsatisfiable):  # no schema-invalid request exists (no parameters)
        run()
    return counts, distinct


def soak(examples: int, rng_seed: int, positive_acceptance: bool) -> tuple[list[list], Counter]:
    """Fuzz every operation; return table rows and the distinct failures seen."""
    from schemathesis.specs.openapi import checks as openapi_checks

    checks = openapi_target.checks()
    if positive_acceptance:
        checks.append(openapi_checks.positive_data_acceptance)
    kinds = [k for k in KINDS if positive_acceptance or k in CHECKS_ALWAYS]
    rows, distinct, totals = [], Counter(), Counter()
    with tempfile.TemporaryDirectory() as folder:
        store, app = openapi_target.build(Path(folder))
        try:
            with TestClient(app):  # the app's lifespan, as in the test
                schema = schemathesis.openapi.from_asgi(
                    "/openapi.json", openapi_target.OwnLifespan(app)
                )
                for result in schema.get_all_operations():
                    operation = result.ok()
                    started = time.perf_counter()
                    counts = Counter()
                    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                        found, seen = fuzz(operation, mode, examples, rng_seed, checks)
                        counts.update(found)
                        distinct.update(seen)
                    totals.update(counts)
                    elapsed = f"{time.perf_counter() - started:.1f}"
                    rows.append(
                        [operation.label, counts["cases"], *(counts[k] for k in kinds), elapsed]
                    )
        finally:
            store.close()
    rows.append(["total", totals["cases"], *(totals[k] for k in kinds), ""])
    return rows, distinct


CHECKS_ALWAYS = frozenset(openapi_target.CHECK_NAMES)


def main() -> None:
    """Run the soak and print its table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=400, help="per operation and mode")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--positive-acceptance", action="store_true")
    parser.add_argument("--show", type=int, default=30, help="distinct failures to print")
    args = parser.parse_args()
    started = time.perf_counter()
    rows, distinct = soak(args.examples, args.seed, args.positive_acceptance)
    elapsed = time.perf_counter() - started
    print(f"# OpenAPI soak: {machine()}")
    print(f"# {versions('schemathesis', 'hypothesis', 'fastapi')}")
    print(
        f"# up to {args.examples} schema-valid + {args.examples} schema-invalid requests per "
        f"operation, seed {args.seed}, {elapsed:.0f} s in all\n"
    )
    kinds = [v for k, v in KINDS.items() if args.positive_acceptance or k in CHECKS_ALWAYS]
    cells = [[str(c) for c in row] for row in rows]
    print("\n".join(table(["operation", "cases", *kinds, "s"], cells)))
    if distinct:
        print(f"\n{len(distinct)} distinct failures (operation, check, status, message):")
        for (label, kind, status, text), n in distinct.most_common(args.show):
            print(f"  {n:5d}  {label}  {kind}  {status}  {text}")


if __name__ == "__main__":
    main()
