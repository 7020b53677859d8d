-- wrk script: POST /api/users with an address no other request uses.
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local sent = 0

request = function()
  sent = sent + 1
  local body = string.format('{"name":"Bench %d","email":"bench%d_%d@example.com"}', sent, tid, sent)
  return wrk.format("POST", "/api/users", { ["content-type"] = "application/json" }, body)
end
