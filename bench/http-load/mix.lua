-- wrk script for bench/http-load/run.sh: each connection runs whole orders through the HTTP API,
-- one request after the other, the way a client of the API does:
--   POST /orders (2 items)  POST /orders/{id}/place  POST /orders/{id}/pay
--   GET /orders/{id}?min_sequence=<pay's sequence>   (read-your-writes: waits for the read model)
--   GET /customers/c-<n>    GET /products/widget      (plain queries, no min_sequence)
-- HTTP_LOAD_MIX=realistic runs all six (3 commands, 3 queries); HTTP_LOAD_MIX=commands the first
-- three only. Run it with as many wrk threads as connections (-tC -cC): wrk keeps one Lua state
-- per thread, and the state below follows one connection's orders.
-- HTTP_LOAD_PREFIX makes the order ids unique per run; HTTP_LOAD_DELAY_MS (may be fractional)
-- waits that long on average before each request (run.sh's half-peak load).
-- Unexpected statuses are counted (`errors=` in the summary line done() prints) and the order
-- is abandoned.
local mix = os.getenv("HTTP_LOAD_MIX") or "realistic"
local prefix = os.getenv("HTTP_LOAD_PREFIX") or tostring(os.time())
local delay_ms = tonumber(os.getenv("HTTP_LOAD_DELAY_MS") or "0")
local steps = (mix == "commands") and 3 or 6
local json = {["Content-Type"] = "application/json"}
local items = '"items":[{"sku":"widget","qty":2,"unit_price_cents":250},' ..
              '{"sku":"gadget","qty":1,"unit_price_cents":1000}]'
local expected = {201, 200, 200, 200, 200, 200}

local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end

local step, n, id, customer, sequence = 0, 0, "", "", "0"
errors, last_error = 0, ""

function request()
  if step == 0 then
    n = n + 1
    id = prefix .. "-" .. tid .. "-" .. n
    customer = "c-" .. (n % 50)
    return wrk.format("POST", "/orders", json,
                      '{"customer_id":"' .. customer .. '","order_id":"' .. id .. '",' .. items .. '}')
  elseif step == 1 then
    return wrk.format("POST", "/orders/" .. id .. "/place")
  elseif step == 2 then
    return wrk.format("POST", "/orders/" .. id .. "/pay", json, '{"amount_cents":1500}')
  elseif step == 3 then
    return wrk.format("GET", "/orders/" .. id .. "?min_sequence=" .. sequence)
  elseif step == 4 then
    return wrk.format("GET", "/customers/" .. customer)
  else
    return wrk.format("GET", "/products/widget")
  end
end

function response(status, headers, body)
  if status ~= expected[step + 1] then
    errors = errors + 1
    last_error = "step " .. step .. ": " .. status .. " " .. string.sub(body or "", 1, 200)
    step = 0
    return
  end
  if step == 2 then sequence = string.match(body, '"sequence":(%d+)') or "0" end
  step = (step + 1) % steps
end

if delay_ms > 0 then
  function delay()  -- whole milliseconds (wrk's unit), dithered so the mean is delay_ms
    return math.floor(delay_ms + math.random())
  end
end

function done(summary, latency, requests)
  local errs, last = 0, ""
  for _, t in ipairs(threads) do
    errs = errs + t:get("errors")
    local l = t:get("last_error")
    if l ~= "" then last = l end
  end
  local e = summary.errors
  io.write(string.format(
    "wrk_result requests=%d seconds=%.3f rps=%.1f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f " ..
    "mean_ms=%.3f errors=%d socket_errors=%d\n",
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    latency:percentile(50) / 1000, latency:percentile(99) / 1000,
    latency:percentile(99.9) / 1000, latency.mean / 1000, errs,
    e.connect + e.read + e.write + e.timeout))
  if last ~= "" then io.write("wrk_last_error " .. last .. "\n") end
end
