-- GET one path, optionally as several users in turn.
-- wrk ... -s get.lua URL -- PATH [TOKENS_FILE]   (one bearer token per line)
local common = require("common")

function init(args)
  local path = args[1]
  local requests = {}
  if args[2] then
    for _, token in ipairs(common.lines(args[2])) do
      requests[#requests + 1] = wrk.format("GET", path, { Authorization = "Bearer " .. token })
    end
  else
    requests[1] = wrk.format("GET", path)
  end
  common.serve(requests)
end
