-- Shared by the scenario scripts (wrk finds it through LUA_PATH, set by the harness).
-- A script requires it at load time, which defines wrk's request() and done(), and hands
-- its prepared requests to serve() from init().
local M = {}
local prepared = {}
local n = 0

-- The lines of a file, without blanks.
function M.lines(path)
  local found = {}
  for line in io.lines(path) do
    if line ~= "" then
      found[#found + 1] = line
    end
  end
  return found
end

-- The requests to send, round robin.
function M.serve(requests)
  prepared = requests
end

-- Global at load time: wrk checks for it before init() runs to know requests differ.
function request()
  n = n + 1
  return prepared[(n % #prepared) + 1]
end

-- Answers counted by status in each thread's state; done() collects them from the threads.
bench_statuses = {}
local threads = {}

function setup(thread)
  threads[#threads + 1] = thread
end

-- A script that sets M.on_response(status, body) sees every answer too.
function response(status, headers, body)
  bench_statuses[status] = (bench_statuses[status] or 0) + 1
  if M.on_response then
    M.on_response(status, body)
  end
end

local function statuses_json()
  local totals = {}
  for _, thread in ipairs(threads) do
    for status, count in pairs(thread:get("bench_statuses")) do
      totals[status] = (totals[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(totals) do
    parts[#parts + 1] = string.format('"%d":%d', status, count)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

-- What a numbering script (book.lua) adds: requests numbered, and those answered 201.
local function numbering_json()
  local sent, created = nil, {}
  for _, thread in ipairs(threads) do
    local thread_sent = thread:get("bench_sent")
    if thread_sent then
      sent = (sent or 0) + thread_sent
      for _, number in ipairs(thread:get("bench_created") or {}) do
        created[#created + 1] = string.format("%d", number)
      end
    end
  end
  if sent == nil then
    return ""
  end
  return string.format(',"sent":%d,"created":[%s]', sent, table.concat(created, ","))
end

-- One JSON line for the harness (benchmarks/measure.py parses it).
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_REPORT {"requests":%d,"duration_us":%d,"bytes":%d,"p50_us":%d,"p99_us":%d,'
      .. '"max_us":%d,"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
      .. '"statuses":%s%s}\n',
    summary.requests, summary.duration, summary.bytes,
    latency:percentile(50), latency:percentile(99), latency.max,
    e.connect, e.read, e.write, e.status, e.timeout, statuses_json(), numbering_json()))
end

return M
