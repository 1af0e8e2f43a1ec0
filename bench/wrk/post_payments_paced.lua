-- wrk script: post_payments.lua, with each connection pausing PACE_MS (environment,
-- default 100) between requests, as k6's users sleep between payments. With -c600 and
-- PACE_MS=1000 the offered load is about the official test's peak (~600 payments/s);
-- the measured latency is then that of a server that is not saturated.
dofile("bench/wrk/post_payments.lua")
local pace = tonumber(os.getenv("PACE_MS") or "100")

function delay()
  return pace
end
