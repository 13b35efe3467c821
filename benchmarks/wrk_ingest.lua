-- wrk script of bench_service_ingest.py: single-example JSON ingest requests, every
-- example id new. Arguments (after --): kind (predictions | labels), path, id prefix.
--   wrk -t2 -c32 -d5s -s benchmarks/wrk_ingest.lua http://127.0.0.1:PORT -- predictions \
--       /v1/models/svc/predictions?version=v1 run1
-- done() prints one JSON line: requests, seconds, status errors, p50/p99 latency in ms.

local threads = {}
local counter = 0

function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

function init(args)
  kind = args[1] or "predictions"
  path = args[2] or "/v1/models/svc/predictions?version=v1"
  prefix = args[3] or "wrk"
  headers = { ["Content-Type"] = "application/json" }
end

function request()
  counter = counter + 1
  local second = counter % 86400
  local ts = string.format("2026-01-01T%02d:%02d:%02dZ", math.floor(second / 3600),
    math.floor(second / 60) % 60, second % 60)
  local body
  if kind == "predictions" then
    body = string.format('[{"example_id": "%s-%d-%d", "ts": "%s", "score": %.3f}]',
      prefix, tid, counter, ts, (counter % 1000) / 1000)
  else
    body = string.format('[{"example_id": "%s-%d-%d", "ts": "%s", "label": %d}]',
      prefix, tid, counter, ts, counter % 2)
  end
  return wrk.format("POST", path, headers, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    '{"requests": %d, "seconds": %.3f, "errors": %d, "p50_ms": %.3f, "p99_ms": %.3f}\n',
    summary.requests, summary.duration / 1e6,
    summary.errors.status + summary.errors.connect + summary.errors.read
      + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1e3, latency:percentile(99) / 1e3))
end
