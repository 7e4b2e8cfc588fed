#!/usr/bin/env bash
# Rate abuse: hammering /search faster than the policy's budget; vigil answers 429 + retry-after.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ATTACKER=${ATTACKER:-203.0.113.70}
codes=()
for _ in $(seq 1 30); do codes+=("$(status 0 "$ATTACKER" GET '/search?q=cup')"); done
line "30 searches at once from $ATTACKER" "${codes[@]}"
retry=$(curl -s -o /dev/null -D - -H "x-forwarded-for: $ATTACKER" "${GW[0]}/search?q=cup" | tr -d '\r' | sed -n 's/^retry-after: //Ip')
echo "  retry-after: ${retry:-none}"
