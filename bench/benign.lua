-- Realistic benign API traffic for wrk: JWT and other headers, query strings, JSON bodies of
-- 0.5 to 4 KiB. Requests cycle in a fixed order so every run sends the same mix.
local jwt = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiI0MTYzZTY2OS1jYzM0LTQyODMiLCJleHAiOjE5MDAwMDAwMDAsInNjb3BlIjoicmVhZDphbGwifQ.QCoNw864tdbGHmHwp8C0VRiGHCZoyitJB-f9GjgoLY8"
local common = {
  ["Authorization"] = jwt,
  ["User-Agent"] = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
  ["Accept"] = "application/json",
  ["Accept-Language"] = "en-US,en;q=0.9",
  ["X-Request-Id"] = "1fbc5971-47a6-475f-b86a-4ff7fc94a95d",
}
local function headers(extra)
  local h = {}
  for k, v in pairs(common) do h[k] = v end
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end
local function items(n)
  local parts = {}
  for i = 1, n do
    parts[#parts + 1] = string.format('{"sku": "SKU-%04d", "qty": %d, "price": 12.5, "note": "Leave at the door, ring twice. O\'Brien\'s order #%d"}', i, i % 5 + 1, i)
  end
  return '{"customer": "cus_YfxMbhkuJedX0F", "currency": "usd", "items": [' .. table.concat(parts, ", ") .. ']}'
end
local json = { ["Content-Type"] = "application/json" }
local rich = '{"body": "## Release notes\\n\\nWe **improved** search: try `select the best plan`, O\'Brien & Co. <b>bold</b> and <a href=\\"https://example.com/docs\\">docs</a>. ' .. string.rep("Lorem ipsum dolor sit amet, consectetur adipiscing elit. ", 50) .. '", "format": "markdown"}'
local reqs
-- Built in init(): wrk knows the target host only then, and every request needs its Host header.
function init(args)
reqs = {
  wrk.format("GET", "/v1/customers/cus_lYsv1zHM9TBCn8/charges?limit=10&starting_after=ch_cRUMQlk6h54ILV", headers()),
  wrk.format("GET", "/v1/search?q=O%27Brien%20running%20shoes&page=2&per_page=50", headers()),
  wrk.format("POST", "/v1/orders", headers(json), items(4)),    -- ~0.5 KiB
  wrk.format("GET", "/v1/orders?status=cancelled&sort=-created_at&page=29", headers()),
  wrk.format("POST", "/v1/orders", headers(json), items(18)),   -- ~2 KiB
  wrk.format("PUT", "/v1/users/6530057e-bc04-4ac4-8384-799927cf6e09/profile", headers(json), '{"display_name": "Jean-Luc O\'Brien", "timezone": "Europe/Dublin", "bio": "Select the best plan for your team."}'),
  wrk.format("POST", "/v1/posts/42/comments", headers(json), rich), -- ~3.5 KiB
  wrk.format("GET", "/v1/events?type=order.%2A&occurred_after=2024-01-17T04%3A30%3A00-05%3A00", headers()),
}
end
local i = 0
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
