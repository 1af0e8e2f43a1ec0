-- wrk script: POST /payments with a fresh correlationId per request, as k6 sends them.
local counter = 0
local thread_tag = 0
local threads = {}

function setup(thread)
  thread:set("tag", #threads)
  table.insert(threads, thread)
end

function init(args)
  thread_tag = tonumber(tag) or 0
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
end

function request()
  counter = counter + 1
  local id = string.format("%08x-%04x-4000-8000-%012x", counter, thread_tag, math.random(0, 2^40))
  local body = '{"correlationId":"' .. id .. '","amount":19.90}'
  return wrk.format(nil, "/payments", nil, body)
end
