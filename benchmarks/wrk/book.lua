-- POST bookings: each request a free slot no other request of the bench asks for
-- (`distinct`), or every request of a run the one slot of that run (`same`).
-- wrk ... -s book.lua URL -- PATH TOKENS_FILE EVENINGS_FILE MODE STRIDE RUN
--   EVENINGS_FILE: lines `ROOM_ID EPOCH`, the free evening (18:30 local) of a room on a day;
--   distinct: request n of run RUN is number k = RUN * STRIDE + n of the bench; evening
--     k % #evenings, slot k // #evenings (15 minutes, 30 minutes apart), token k % #tokens;
--   same: every request books evening RUN, slot 0, token n % #tokens.
-- Each request carries an Idempotency-Key of its own and its number in the title, so
-- the harness can retry, with the same key, what wrk left unanswered when it stopped
-- (benchmarks/bookings_bench.py builds the same requests).
local common = require("common")

local SLOT_S = 15 * 60
local STEP_S = 30 * 60
local path, mode, stride, run
local tokens, evenings = {}, {}
local n = 0
bench_sent = 0
bench_created = {}

local function iso(epoch)
  return os.date("!%Y-%m-%dT%H:%M:%SZ", epoch)
end

local function post(token, key, title, evening, slot)
  local starts = evening.epoch + slot * STEP_S
  local body = string.format(
    '{"room_id":"%s","title":"%s","attendees":1,"starts_at":"%s","ends_at":"%s"}',
    evening.room, title, iso(starts), iso(starts + SLOT_S))
  local headers = {
    ["Content-Type"] = "application/json",
    ["Authorization"] = "Bearer " .. token,
    ["Idempotency-Key"] = key,
  }
  return wrk.format("POST", path, headers, body)
end

function init(args)
  path, mode, stride, run = args[1], args[4], tonumber(args[5]), tonumber(args[6])
  tokens = common.lines(args[2])
  for _, line in ipairs(common.lines(args[3])) do
    local room, epoch = line:match("^(%S+) (%d+)$")
    evenings[#evenings + 1] = { room = room, epoch = tonumber(epoch) }
  end
end

function request()
  local number = n
  n = n + 1
  bench_sent = n
  if mode == "same" then
    local token = tokens[(number % #tokens) + 1]
    local key = string.format("bench-same-%d-%d", run, number)
    return post(token, key, string.format("Bench same %d", run), evenings[run + 1], 0)
  end
  local k = run * stride + number
  local evening = evenings[(k % #evenings) + 1]
  local slot = math.floor(k / #evenings)
  return post(tokens[(k % #tokens) + 1], string.format("bench-%d", k),
    string.format("Bench %d", k), evening, slot)
end

common.on_response = function(status, body)
  if status == 201 and mode == "distinct" then
    local k = body:match('"title":"Bench (%d+)"')
    if k then
      bench_created[#bench_created + 1] = tonumber(k) - run * stride
    end
  end
end
