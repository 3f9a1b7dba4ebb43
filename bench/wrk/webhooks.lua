-- Replays precomputed, correctly signed Twilio webhooks (one unique MessageSid each).
-- Each wrk thread reads its own file: bench/relay.py writes "<signature>\t<form body>" lines.
-- THINK_MS > 0: each connection waits an exponentially distributed time of that mean
-- between requests (a paced, near-Poisson load for the latency-at-80% run).
local counter = 0
local threads = {}

function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
  table.insert(threads, thread)
end

function init(args)
  local prefix = os.getenv("WEBHOOKS_FILE")
  local path = os.getenv("WEBHOOK_PATH")
  think_ms = tonumber(os.getenv("THINK_MS") or "0")
  requests = {}
  for line in io.lines(prefix .. "." .. id) do
    local sig, body = line:match("^([^\t]+)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", path, {
      ["Content-Type"] = "application/x-www-form-urlencoded",
      ["X-Twilio-Signature"] = sig,
      ["I-Twilio-Idempotency-Token"] = "bench",
    }, body)
  end
  nreq = #requests
  i = 0
  wrapped = 0
  math.randomseed(id * 7919 + 17)
end

function request()
  i = i + 1
  if i > nreq then
    i = 1
    wrapped = wrapped + 1
  end
  return requests[i]
end

function delay()
  if think_ms <= 0 then
    return 0
  end
  return -math.log(1 - math.random()) * think_ms
end

function done(summary, latency, requests)
  local wraps = 0
  for _, thread in ipairs(threads) do
    wraps = wraps + (thread:get("wrapped") or 0)
  end
  io.write(string.format(
    'WRK_JSON {"wrapped": %d, "requests": %d, "duration_us": %d, "connect_errors": %d, "read_errors": %d, "write_errors": %d, "status_errors": %d, "timeouts": %d, "p50_us": %d, "p90_us": %d, "p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    wraps, summary.requests, summary.duration, summary.errors.connect, summary.errors.read,
    summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
