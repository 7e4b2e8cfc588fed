#!/usr/bin/env bash
# Where vigil's time goes inside Envoy. Builds the filter with `--features timing` (a clock read
# around the request callbacks and the engine, summed into vigil.timing.* counters), runs the
# benign mix through it with bench/run.sh next to the read floor, and prints the wasm-side time
# per request. Compare the engine's share with `cargo run --release -p vigil-engine --example mix`:
# warm, and with caches evicted between requests, as they are in a busy gateway.
# Env: ROUNDS (3), MIXES (benign); the rest as bench/run.sh. Its results go to
# target/bench/timing-results.json, leaving `make bench`'s results.json alone.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=target/bench
mkdir -p "$OUT"
cargo build --release --target wasm32-wasip1 -p vigil-filter --features timing --target-dir target/timing
cargo build --release -p vigil
wasm="$PWD/target/timing/wasm32-wasip1/release/vigil_filter.wasm"
target/release/vigil envoy-config --no-control-plane --listen 127.0.0.1:18190 --admin 127.0.0.1:18191 \
  --upstream 127.0.0.1:18180 --wasm "$wasm" >"$OUT/timing.yaml"
MIXES=${MIXES:-benign}
RESULTS="$OUT/timing-results.json" CONFIGS="read-floor timing" ROUNDS=${ROUNDS:-3} MIXES=$MIXES SOAK_REQUESTS=0 bench/run.sh
for mix in $MIXES; do
  python3 - "$OUT/timing-$mix.stats" "$mix" <<'PY'
import sys
stats = dict(l.split(": ", 1) for l in open(sys.argv[1]).read().splitlines() if ": " in l)
n = int(stats["wasmcustom.vigil.requests.inspected"])
us = lambda k: int(stats[f"wasmcustom.vigil.timing.{k}_ns"]) / n / 1000
hdr, body, engine, clock = (us(k) for k in ("request_headers", "request_body", "engine", "nothing"))
# Each window holds about one clock read's cost, which `nothing` measures alone.
print(f"{sys.argv[2]}: {n} requests; per request, inside the filter: request callbacks {hdr + body:.2f} us "
      f"(headers {hdr:.2f}, body {body:.2f}), of which the engine {engine:.2f} us; an empty window "
      f"{clock * 1000:.0f} ns (in each of those figures)")
PY
done
