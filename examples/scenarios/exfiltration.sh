#!/usr/bin/env bash
# Bulk exfiltration: repeated large exports by one client, each unremarkable on its own.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ATTACKER=${ATTACKER:-203.0.113.90}
codes=()
for _ in $(seq 1 8); do codes+=("$(status 0 "$ATTACKER" GET '/export?limit=5000')"); done
line "8 exports of 5,000 records from $ATTACKER" "${codes[@]}"
after "then a small export" "$ATTACKER" GET '/export?limit=10'
