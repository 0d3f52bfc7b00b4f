-- wrk script: POST /orders/o-<n>/items on one of 200 draft orders (created beforehand by
-- run-orders.sh), so requests spread over many aggregates as real traffic does.
math.randomseed(os.time())
local body = '{"sku":"bench","qty":1,"unit_price_cents":1}'
local headers = {["Content-Type"] = "application/json"}
request = function()
  return wrk.format("POST", "/orders/o-" .. math.random(0, 199) .. "/items", headers, body)
end
response = function(status, _, body)
  if status ~= 200 then print("unexpected " .. status .. ": " .. body) end
end
