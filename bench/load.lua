-- Requests for wrk, chosen by environment variables that bench/run.py sets.
--
-- BENCH_MODE    get (the URL given to wrk) | post
-- BENCH_TOKEN   API token sent as "Authorization: Bearer" (none: no header)
-- BENCH_PREFIX  post: image ids are PREFIX .. zero-padded index
-- BENCH_FIRST, BENCH_LAST   post: the index range [FIRST, LAST) this run works on
-- BENCH_QUOTA   post: "1" makes each thread stop once it has had an answer
--               for every index of its share (a count bound; use one
--               connection per thread); otherwise POST goes on past LAST
-- BENCH_MAX     most requests one thread sends, whatever the mode
-- BENCH_STATUS  the status counted as ok (default 200); 503 is counted as
--               busy (the service's "database busy or unavailable"), any other
--               as bad
--
-- Thread t of T takes indices FIRST+t, FIRST+t+T, ... With one connection per
-- thread, a thread sends its next request only after the last one's response,
-- so in quota mode the index moves on in response(), and stopping there leaves
-- no request past the quota. (wrk also calls request() once to check it before
-- starting, which therefore uses up no index.)

local mode = os.getenv("BENCH_MODE") or "get"
local token = os.getenv("BENCH_TOKEN")
local prefix = os.getenv("BENCH_PREFIX") or "img-"
local first = tonumber(os.getenv("BENCH_FIRST") or "0")
local last = tonumber(os.getenv("BENCH_LAST") or "0")
local quota_mode = os.getenv("BENCH_QUOTA") == "1"
local max_requests = tonumber(os.getenv("BENCH_MAX") or "1000000")
local expected = tonumber(os.getenv("BENCH_STATUS") or "200")

local threads = {}
local thread_count = 0

function setup(thread)
  thread:set("tid", thread_count)
  thread_count = thread_count + 1
  table.insert(threads, thread)
end

function init(args)
  step = tonumber(os.getenv("BENCH_THREADS") or "1")
  index = first + tid
  sent, ok, busy, bad = 0, 0, 0, 0
  headers = {}
  if token then headers["Authorization"] = "Bearer " .. token end
  if mode == "post" then headers["Content-Type"] = "application/json" end
  if mode == "get" then fixed = wrk.format("GET", nil, headers) end
end

local function advance()
  index = index + step
end

function request()
  sent = sent + 1
  if mode == "get" then return fixed end
  local i = index
  if not quota_mode then advance() end
  local id = string.format("%s%08d", prefix, i)
  local body = string.format(
    '{"id": "%s", "provider": "ec2", "remote_user": "ubuntu", "name": "Ubuntu 24.04 LTS build %d"}', id, i)
  return wrk.format("POST", "/v3/image", headers, body)
end

function response(status, headers, body)
  if status == expected then ok = ok + 1 elseif status == 503 then busy = busy + 1 else bad = bad + 1 end
  if quota_mode then advance() end
  if (quota_mode and index >= last) or sent >= max_requests then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local ok_total, busy_total, bad_total = 0, 0, 0
  for _, thread in ipairs(threads) do
    ok_total = ok_total + thread:get("ok")
    busy_total = busy_total + thread:get("busy")
    bad_total = bad_total + thread:get("bad")
  end
  local e = summary.errors
  io.write(string.format(
    'BENCH_RESULT {"requests": %d, "duration_us": %d, "ok": %d, "busy": %d, "bad": %d, ' ..
    '"socket_errors": %d, "timeouts": %d, "p50_us": %d, "p99_us": %d, "max_us": %d, "bytes": %d}\n',
    summary.requests, summary.duration, ok_total, busy_total, bad_total,
    e.connect + e.read + e.write, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max, summary.bytes))
end
