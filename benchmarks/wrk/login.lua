-- POST the login form, each request as the next account of the list.
-- wrk ... -s login.lua URL -- PATH CREDENTIALS_FILE   (lines: url-encoded email, a space, password)
local common = require("common")

function init(args)
  local headers = { ["Content-Type"] = "application/x-www-form-urlencoded" }
  local requests = {}
  for _, line in ipairs(common.lines(args[2])) do
    local email, password = line:match("^(%S+) (%S+)$")
    local body = "username=" .. email .. "&password=" .. password
    requests[#requests + 1] = wrk.format("POST", args[1], headers, body)
  end
  common.serve(requests)
end
