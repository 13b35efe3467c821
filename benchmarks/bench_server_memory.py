"""Resident memory of JSON ingest against the body's size, before and after issue 19 (point 8).

"before" is the former path (``json.loads`` then ``pyarrow.Table.from_pylist``), "after" the
current one (:func:`server.json_body.read_json_table`, Arrow's JSON reader). Each figure is
measured in a fresh process: the body is loaded from a file, the process's peak resident
set (``ru_maxrss``) noted, then the body is parsed (``parse``) or posted to the app on a file
store through the ingest route (``ingest``: the HTTP copies of the body, parsing, validation
and the DuckDB write), and the growth of the peak is divided by the body size.

    python benchmarks/bench_server_memory.py [--rows 200000] [--modes parse,ingest]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, resource, sys, tempfile
sys.path.insert(0, {root!r})
path, mode, path_kind = sys.argv[1], sys.argv[2], sys.argv[3]
import pyarrow as pa
import evalstore, server.formats
from server import create_app
from fastapi.testclient import TestClient

def legacy(body, media):
    payload = json.loads(body if isinstance(body, bytes) else str(body.view(), "utf-8"))
    if isinstance(payload, dict):
        payload = payload["records"]
    return pa.Table.from_pylist(payload)

if path_kind == "before":
    server.formats.read_json_table = legacy
store = app = client = None
if mode == "ingest":
    directory = tempfile.mkdtemp()
    store = evalstore.open(directory + "/bench.duckdb")
    store.register_model("m", "v1", "binary")
    app = create_app(store, checkpoint_idle=None)
    client = TestClient(app)
    client.__enter__()
    client.post("/v1/models/m/features", content=b'[{{"example_id": "warm", "x0": 1.0}}]',
                headers={{"content-type": "application/json"}})
body = open(path, "rb").read()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
if mode == "parse":
    table = server.formats.body_to_data(body, "application/json")
    rows = table.num_rows
else:
    response = client.post("/v1/models/m/features", content=body,
                           headers={{"content-type": "application/json"}})
    assert response.status_code in (200, 201), response.text[:300]
    rows = response.json()["rows"]
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({{"growth": peak - base, "rows": rows}}))
"""


def make_body(rows: int, path: Path) -> int:
    """Records like a features batch: id, time, 10 floats, 2 short texts, 1 int."""
    rng = random.Random(0)
    with path.open("w") as out:
        out.write("[")
        for i in range(rows):
            record = {
                "example_id": f"ex-{i:09d}",
                "ts": f"2026-01-{1 + i % 28:02d}T{i % 24:02d}:00:00Z",
                **{f"x{j}": round(rng.gauss(0, 1), 6) for j in range(10)},
                "segment": rng.choice(["north", "south", "east", "west"]),
                "device": rng.choice(["ios", "android", "web"]),
                "count": rng.randrange(1000),
            }
            out.write(("," if i else "") + json.dumps(record, separators=(",", ":")))
        out.write("]")
    return path.stat().st_size


def measure(path: Path, mode: str, kind: str) -> dict:
    script = CHILD.format(root=str(ROOT))
    result = subprocess.run(
        [sys.executable, "-c", script, str(path), mode, kind],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--modes", default="parse,ingest")
    args = parser.parse_args()
    print(f"# {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "body.json"
        size = make_body(args.rows, path)
        print(f"# body: {args.rows} records, {size / 2**20:.1f} MiB")
        print(f"{'mode':<8} {'path':<7} {'rows':>8} {'RSS growth MiB':>15} {'x body':>7}")
        for mode in args.modes.split(","):
            for kind in ("before", "after"):
                figures = measure(path, mode, kind)
                growth = figures["growth"]
                print(
                    f"{mode:<8} {kind:<7} {figures['rows']:>8} {growth / 2**20:>15.1f} "
                    f"{growth / size:>7.2f}"
                )
    if os.environ.get("CI"):
        print("# (CI run: figures on a shared machine)")


if __name__ == "__main__":
    main()
