#!/usr/bin/env bash
# Instructions per request of the gateway Envoy, counted by valgrind's callgrind: exact and
# repeatable even while other work shares the machine, unlike req/s (though it does not see
# cache misses or the kernel). Uses the configurations `bench/run.sh` wrote to target/bench/.
#
# bench/instructions.sh [CONFIG...]   (no-filter empty-wasm vigil by default)
# Env: MIX (benign), N (400 requests counted), WARM (warm-up requests first, 100). Takes ~2 minutes a config.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_BIN=${ENVOY_BIN:-.tools/envoy/envoy/_bin/envoy}
MIX=${MIX:-benign}
N=${N:-400}
OUT=target/bench
command -v valgrind >/dev/null || { echo "valgrind is missing: apt-get install valgrind" >&2; exit 1; }
[ -f "$OUT/vigil.yaml" ] || { echo "run bench/run.sh (make bench-throughput) first" >&2; exit 1; }

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT
ready() { for _ in $(seq 1 1500); do curl -fs "http://127.0.0.1:$1/ready" >/dev/null 2>&1 && return 0; sleep 0.2; done; return 1; }
# Sends exactly $1 requests of the mix on one connection and marks the moment the last answer
# came ($OUT/count.done): wrk itself only exits at its deadline, and counting the idle seconds
# until then would add the gateways' timers (vigil's 100 ms tick) to every request.
cat >"$OUT/count.lua" <<'LUA'
dofile(os.getenv("VIGIL_MIX"))
local limit, seen = tonumber(os.getenv("VIGIL_COUNT")), 0
response = function()
  seen = seen + 1
  if seen == limit then
    local f = io.open(os.getenv("VIGIL_DONE"), "w"); f:close()
    wrk.thread:stop()
  end
end
LUA
# send N [then]: starts the requests, waits for the last answer, runs `then` at once, prints N.
send() {
  rm -f "$OUT/count.done"
  VIGIL_MIX="bench/$MIX.lua" VIGIL_COUNT=$1 VIGIL_DONE="$OUT/count.done" \
    wrk -t1 -c1 -d300s -s "$OUT/count.lua" http://127.0.0.1:18190 >/dev/null &
  local wrk_pid=$!
  for _ in $(seq 1 6000); do [ -f "$OUT/count.done" ] && break; sleep 0.05; done
  [ -f "$OUT/count.done" ] || { echo "the requests did not finish" >&2; kill $wrk_pid; exit 1; }
  ${2:-true} >/dev/null 2>&1
  kill $wrk_pid 2>/dev/null; wait $wrk_pid 2>/dev/null || true
  echo "$1"
}

"$ENVOY_BIN" -c "$OUT/upstream.yaml" --concurrency 1 --disable-hot-restart --base-id 181 --log-level error >"$OUT/upstream.log" 2>&1 &
pids+=($!)
ready 18181 || { echo "upstream Envoy did not start" >&2; exit 1; }

for config in "${@:-no-filter empty-wasm vigil}"; do
  for c in $config; do
    rm -f "$OUT/callgrind-$c.out"*
    valgrind --tool=callgrind --smc-check=all-non-file --instr-atstart=no \
      --callgrind-out-file="$OUT/callgrind-$c.out" \
      "$ENVOY_BIN" -c "$OUT/$c.yaml" --concurrency 1 --disable-hot-restart --base-id 191 --log-level error \
      >"$OUT/callgrind-$c.log" 2>&1 &
    vg=$!
    ready 18191 || { echo "$c did not start under valgrind" >&2; kill $vg; exit 1; }
    send "${WARM:-100}" >/dev/null
    callgrind_control -i on $vg >/dev/null 2>&1
    callgrind_control -z $vg >/dev/null 2>&1
    got=$(send "$N" "callgrind_control -d $vg")
    kill $vg; wait $vg 2>/dev/null || true
    callgrind_annotate --threshold=100 "$OUT/callgrind-$c.out.1" 2>/dev/null | python3 -c '
import re, sys, collections
n, label = int(sys.argv[1]), sys.argv[2]
by, total = collections.Counter(), 0
for line in sys.stdin:
    m = re.match(r"\s*([\d,]+) \([\d. %]+\)\s+(.*)$", line)
    if not m: continue
    v = int(m.group(1).replace(",", ""))
    if "PROGRAM TOTALS" in m.group(2): total = v; continue
    ob = re.search(r"\[([^\]]*)\]\s*$", m.group(2))
    # Code in no file ("anon"): with a wasm filter, this adds the V8-compiled module and its
    # host-call wrappers; compare configurations rather than reading it alone.
    by["anon" if not ob or ob.group(1) == "???" else ob.group(1).split("/")[-1]] += v
print("%-11s %s: %d requests, %d instructions per request (%s)" % (label, sys.argv[3], n, total // n,
      ", ".join("%s %d" % (k, v // n) for k, v in by.most_common(3))))
' "$got" "$c" "$MIX"
  done
done
