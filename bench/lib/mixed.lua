-- wrk script: the soak mix. Nine reads to one write; every write uses an
-- address no other request uses (wrk's argument tells runs apart).
local threads = 0

function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local run = "0"
local sent = 0

function init(args)
  run = args[1] or "0"
end

request = function()
  sent = sent + 1
  local step = sent % 10
  if step == 0 then
    local body = string.format('{"name":"Soak %d","email":"soak%s_%d_%d@example.com"}', sent, run, tid, sent)
    return wrk.format("POST", "/api/users", { ["content-type"] = "application/json" }, body)
  elseif step < 5 then
    return wrk.format("GET", "/api/users/1")
  elseif step < 8 then
    return wrk.format("GET", "/api/users?limit=20")
  else
    return wrk.format("GET", "/api/users/2/orders")
  end
end
