-- GET a path as a user, each request the next line of the file.
-- wrk ... -s pairs.lua URL -- PAIRS_FILE   (lines: bearer token, a space, path)
local common = require("common")

function init(args)
  local requests = {}
  for _, line in ipairs(common.lines(args[1])) do
    local token, path = line:match("^(%S+) (%S+)$")
    requests[#requests + 1] = wrk.format("GET", path, { Authorization = "Bearer " .. token })
  end
  common.serve(requests)
end
