#!/usr/bin/env bash
# `make bench`'s throughput part: Envoy with no filter, with an empty wasm filter (the floor any
# wasm filter pays) and with vigil (default policy), measured with wrk in alternating runs
# (A B C A B C ...) on loopback, for a benign mix and an attack mix; then a soak of vigil to check
# that Envoy's resident memory stays flat. Results: target/bench/results.json.
#
# The gateways run side by side for a whole mix and are warmed up once (WARMUP), long
# enough for V8 to finish optimising the filter; each run then loads one of them. With two or
# more CPUs the gateways share the last CPU and wrk and the upstream the others, so that runs
# do not depend on where the scheduler puts several busy processes on few cores.
#
# Each run reports: req/s and p50/p99 with CONNECTIONS connections (the gateway's one worker is
# saturated, so latency there is mostly queueing); the gateway's CPU time per request; and
# p50/p99 at light load (LIGHT_CONNECTIONS), which is the latency a request adds.
#
# Env: ROUNDS (5), DURATION (8s), WARMUP (10s), CONNECTIONS (32), LIGHT_CONNECTIONS (2),
#      LIGHT_DURATION (4s), MIXES (benign attack), SOAK_REQUESTS (1000000; 0 skips the soak),
#      CONFIGS (no-filter empty-wasm read-floor vigil; any target/bench/NAME.yaml can join, e.g. an older build),
#      RESULTS (target/bench/results.json).
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_BIN=${ENVOY_BIN:-.tools/envoy/envoy/_bin/envoy}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-8s}
WARMUP=${WARMUP:-10s}
CONNECTIONS=${CONNECTIONS:-32}
LIGHT_CONNECTIONS=${LIGHT_CONNECTIONS:-2}
LIGHT_DURATION=${LIGHT_DURATION:-4s}
SOAK_REQUESTS=${SOAK_REQUESTS:-1000000}
OUT=target/bench
mkdir -p "$OUT"
UPSTREAM_PORT=18180 GATEWAY_PORT=18190 ADMIN_PORT=18191 UPSTREAM_ADMIN_PORT=18181
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }

# CPU placement: gateways on the last CPU, load and upstream on the rest (no pinning on one CPU).
last_cpu=$(($(nproc) - 1))
if [ "$last_cpu" -ge 1 ] && command -v taskset >/dev/null; then
  ON_GATEWAY_CPU="taskset -c $last_cpu"; ON_LOAD_CPUS="taskset -c 0-$((last_cpu - 1))"
else
  ON_GATEWAY_CPU=""; ON_LOAD_CPUS=""
fi

# The upstream: a second Envoy answering 200 at once, so the measured Envoy is the bottleneck.
cat >"$OUT/upstream.yaml" <<YAML
admin: { address: { socket_address: { address: 127.0.0.1, port_value: $UPSTREAM_ADMIN_PORT } } }
static_resources:
  listeners:
    - address: { socket_address: { address: 127.0.0.1, port_value: $UPSTREAM_PORT } }
      filter_chains:
        - filters:
            - name: envoy.filters.network.http_connection_manager
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
                stat_prefix: upstream
                route_config:
                  virtual_hosts:
                    - name: all
                      domains: ["*"]
                      routes: [{ match: { prefix: "/" }, direct_response: { status: 200, body: { inline_string: "{\"ok\":true}" } } }]
                http_filters: [{ name: envoy.filters.http.router, typed_config: { "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router } }]
YAML
# The gateways: vigil from `vigil envoy-config`; the floors and "none" derived from it.
target/release/vigil envoy-config --no-control-plane --listen 127.0.0.1:$GATEWAY_PORT --admin 127.0.0.1:$ADMIN_PORT \
  --upstream 127.0.0.1:$UPSTREAM_PORT --wasm target/vigil_filter.wasm >"$OUT/vigil.yaml"
sed "s#target/vigil_filter.wasm#target/wasm32-wasip1/release/vigil_bench_noop_filter.wasm#" "$OUT/vigil.yaml" >"$OUT/empty-wasm.yaml"
grep -q 'value: ""' "$OUT/empty-wasm.yaml" || { echo "no empty plugin configuration in $OUT/vigil.yaml" >&2; exit 1; }
sed 's#value: ""#value: "read"#' "$OUT/empty-wasm.yaml" >"$OUT/read-floor.yaml"
python3 - "$OUT/vigil.yaml" "$OUT/no-filter.yaml" <<'PY'
import sys
lines = open(sys.argv[1]).read().split("\n")
out, skip = [], None
for line in lines:
    if "- name: envoy.filters.http.wasm" in line:
        skip = len(line) - len(line.lstrip())
        continue
    if skip is not None:
        if line.strip() and len(line) - len(line.lstrip()) <= skip:
            skip = None
        else:
            continue
    out.append(line)
open(sys.argv[2], "w").write("\n".join(out))
PY

ready() { for _ in $(seq 1 200); do curl -fs "http://127.0.0.1:$1/ready" >/dev/null 2>&1 && return 0; sleep 0.05; done; return 1; }
$ON_LOAD_CPUS "$ENVOY_BIN" -c "$OUT/upstream.yaml" --concurrency 1 --disable-hot-restart --base-id 181 --log-level error >"$OUT/upstream.log" 2>&1 &
pids+=($!)
ready $UPSTREAM_ADMIN_PORT || { echo "upstream Envoy did not start" >&2; exit 1; }

# The configurations keep the ports 18190/18191 (bench/instructions.sh runs them one at a time);
# running side by side, gateway number k listens on 18190+2k, admin 18191+2k.
read -ra CONFIGS <<<"${CONFIGS:-no-filter empty-wasm read-floor vigil}"
declare -A GATEWAY_PID LISTEN ADMIN
start_gateway() { # config index
  local config=$1 k=$2
  local listen=$((GATEWAY_PORT + 2 * k)) admin=$((ADMIN_PORT + 2 * k))
  sed -e "s/port_value: $GATEWAY_PORT\b/port_value: $listen/" -e "s/port_value: $ADMIN_PORT\b/port_value: $admin/" \
    "$OUT/$config.yaml" >"$OUT/running-$config.yaml"
  $ON_GATEWAY_CPU "$ENVOY_BIN" -c "$OUT/running-$config.yaml" --concurrency 1 --disable-hot-restart \
    --base-id $((191 + k)) --log-level error >"$OUT/$config.log" 2>&1 &
  GATEWAY_PID[$config]=$!; LISTEN[$config]=$listen; ADMIN[$config]=$admin; pids+=($!)
  ready $admin || { echo "gateway $config did not start:"; tail -5 "$OUT/$config.log"; exit 1; }
}
stop_gateway() { kill "${GATEWAY_PID[$1]}" 2>/dev/null || true; wait "${GATEWAY_PID[$1]}" 2>/dev/null || true; }
load() { $ON_LOAD_CPUS wrk -t1 "$@"; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
echo "load before the runs: $(cut -d' ' -f1-3 /proc/loadavg); gateways ${ON_GATEWAY_CPU:-unpinned}" | tee "$OUT/load.txt"
: >"$OUT/runs.txt"
for mix in ${MIXES:-benign attack}; do
  for k in "${!CONFIGS[@]}"; do
    config=${CONFIGS[$k]}
    start_gateway "$config" "$k"
    load -c"$CONNECTIONS" -d"$WARMUP" -s "bench/$mix.lua" "http://127.0.0.1:${LISTEN[$config]}" >/dev/null
  done
  for round in $(seq 1 "$ROUNDS"); do
    for config in "${CONFIGS[@]}"; do
      url="http://127.0.0.1:${LISTEN[$config]}"
      ticks_before=$(cpu_ticks "${GATEWAY_PID[$config]}")
      load -c"$CONNECTIONS" -d"$DURATION" --latency -s "bench/$mix.lua" "$url" >"$OUT/wrk.txt"
      ticks=$(($(cpu_ticks "${GATEWAY_PID[$config]}") - ticks_before))
      load -c"$LIGHT_CONNECTIONS" -d"$LIGHT_DURATION" --latency -s "bench/$mix.lua" "$url" >"$OUT/wrk-light.txt"
      python3 - "$mix" "$config" "$round" "$OUT/wrk.txt" "$OUT/wrk-light.txt" "$ticks" "$(getconf CLK_TCK)" >>"$OUT/runs.txt" <<'PY'
import re, sys
mix, config, rnd, path, light_path, ticks, hz = sys.argv[1:8]
def parse(path):
    text = open(path).read()
    def ms(label):
        m = re.search(r"^\s*%s%%\s+([\d.]+)(us|ms|s)\s*$" % label, text, re.M)
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1))
    total = int(re.search(r"^\s*(\d+) requests in", text, re.M).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    return rps, ms("50"), ms("99"), total, int(non2xx.group(1)) if non2xx else 0
rps, p50, p99, total, non2xx = parse(path)
_, light_p50, light_p99, _, _ = parse(light_path)
cpu_us = int(ticks) / int(hz) * 1e6 / max(total, 1)
print(f"{mix} {config} {rnd} {rps:.0f} {p50:.3f} {p99:.3f} {non2xx} {cpu_us:.1f} {light_p50:.3f} {light_p99:.3f}")
PY
      tail -1 "$OUT/runs.txt"
    done
  done
  for config in "${CONFIGS[@]}"; do
    # vigil's own counters over the whole mix (bench/timing.sh reads its build's timings here).
    curl -fs "http://127.0.0.1:${ADMIN[$config]}/stats?filter=^wasmcustom.vigil" >"$OUT/$config-$mix.stats" || true
    stop_gateway "$config"
  done
done

soak_line=""
if [ "$SOAK_REQUESTS" -gt 0 ]; then
  start_gateway vigil 2
  url="http://127.0.0.1:${LISTEN[vigil]}"
  rss() { awk '/VmRSS/ {print $2}' "/proc/${GATEWAY_PID[vigil]}/status"; }
  load -c"$CONNECTIONS" -d10s -s bench/benign.lua "$url" >/dev/null   # warm-up
  base=$(rss); total=0; samples="$base"
  while [ "$total" -lt "$SOAK_REQUESTS" ]; do
    n=$(load -c"$CONNECTIONS" -d10s -s bench/benign.lua "$url" | awk '/requests in/ {print $1}')
    total=$((total + n)); samples="$samples $(rss)"
  done
  stop_gateway vigil
  soak_line="soak $total $samples"
  echo "$soak_line"
fi

python3 - "$OUT/runs.txt" "${RESULTS:-$OUT/results.json}" "$soak_line" <<'PY'
import json, statistics, sys
runs = [l.split() for l in open(sys.argv[1]) if l.strip()]
res = {}
keys = ["rps", "p50_ms", "p99_ms", "non_2xx", "cpu_us_per_request", "light_p50_ms", "light_p99_ms"]
for mix, config, rnd, *values in runs:
    r = res.setdefault(mix, {}).setdefault(config, {k: [] for k in keys})
    for k, v in zip(keys, values):
        r[k].append(int(v) if k == "non_2xx" else float(v))
print("\n%-7s %-11s %9s %8s %8s %8s %10s %10s" % ("mix", "config", "req/s", "p50 ms", "p99 ms", "cpu us", "light p50", "light p99"))
summary = {}
for mix, configs in res.items():
    summary[mix] = {}
    for config, r in configs.items():
        s = {k: statistics.median(v) for k, v in r.items() if k != "non_2xx"}
        s["non_2xx"] = sum(r["non_2xx"]); s["runs"] = r
        summary[mix][config] = s
        print("%-7s %-11s %9.0f %8.3f %8.3f %8.1f %10.3f %10.3f" % (mix, config, s["rps"], s["p50_ms"], s["p99_ms"],
              s["cpu_us_per_request"], s["light_p50_ms"], s["light_p99_ms"]))
    v, e, n = (summary[mix].get(c) for c in ("vigil", "empty-wasm", "no-filter"))
    if v and e and n:
        # Paired: each round's configurations run back to back, so a round's ratio sees one
        # state of the machine; the median of those is steadier than the ratio of medians when
        # the machine's speed drifts between rounds.
        paired = lambda a, b, k: statistics.median(x / y for x, y in zip(a["runs"][k], b["runs"][k]))
        ratios = {"vigil/no-filter": v["rps"] / n["rps"], "vigil/empty-wasm": v["rps"] / e["rps"],
                  "paired_vigil/no-filter": paired(v, n, "rps"), "paired_vigil/empty-wasm": paired(v, e, "rps"),
                  "paired_cpu_empty-wasm/vigil": paired(e, v, "cpu_us_per_request"),
                  "cpu_empty-wasm/vigil": e["cpu_us_per_request"] / v["cpu_us_per_request"],
                  "added_p99_vs_empty_wasm_ms": v["light_p99_ms"] - e["light_p99_ms"],
                  "added_saturated_p99_vs_empty_wasm_ms": v["p99_ms"] - e["p99_ms"]}
        r = summary[mix].get("read-floor")
        if r:
            ratios["vigil/read-floor"] = v["rps"] / r["rps"]
            ratios["paired_vigil/read-floor"] = paired(v, r, "rps")
            ratios["read-floor/empty-wasm"] = r["rps"] / e["rps"]
        summary[mix]["ratios"] = ratios
        print("%-7s req/s vigil/no-filter %.2f, vigil/empty-wasm %.2f; CPU per request empty-wasm/vigil %.2f" % (
            mix, ratios["vigil/no-filter"], ratios["vigil/empty-wasm"], ratios["cpu_empty-wasm/vigil"]))
        print("%-7s paired (median of the rounds' ratios): vigil/no-filter %.2f, vigil/empty-wasm %.2f; CPU %.2f" % (
            mix, ratios["paired_vigil/no-filter"], ratios["paired_vigil/empty-wasm"], ratios["paired_cpu_empty-wasm/vigil"]))
        if r:
            print("%-7s reading headers and body alone: read-floor/empty-wasm %.2f; vigil/read-floor %.2f (paired %.2f)" % (
                mix, ratios["read-floor/empty-wasm"], ratios["vigil/read-floor"], ratios["paired_vigil/read-floor"]))
        print("%-7s added p99 vs empty wasm: %.3f ms at light load, %.3f ms saturated" % (
            mix, ratios["added_p99_vs_empty_wasm_ms"], ratios["added_saturated_p99_vs_empty_wasm_ms"]))
if sys.argv[3]:
    parts = sys.argv[3].split()
    total, samples = int(parts[1]), [int(x) for x in parts[2:]]
    growth = (samples[-1] - samples[0]) / samples[0]
    summary["soak"] = {"requests": total, "rss_kib_after_warmup": samples[0], "rss_kib_samples": samples, "growth": growth}
    print("soak: %d requests, Envoy RSS %d KiB after warm-up -> %d KiB at the end (%+.1f%%)" % (total, samples[0], samples[-1], 100 * growth))
json.dump(summary, open(sys.argv[2], "w"), indent=2)
print("results:", sys.argv[2])
PY
