#!/usr/bin/env bash
# Brute force on /login from one address, spread over every gateway in GATEWAYS so that no single
# edge sees enough failures on its own; the control plane's fleet view blocks the address everywhere.
# Then the real user logs in from elsewhere, unaffected.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ATTACKER=${ATTACKER:-203.0.113.10}
ATTEMPTS=${ATTEMPTS:-8}
codes=()
for i in $(seq 0 $((ATTEMPTS - 1))); do
  codes+=("$(status "$i" "$ATTACKER" POST /login -H 'content-type: application/json' -d "{\"username\":\"alice\",\"password\":\"guess$i\"}")")
done
line "$ATTEMPTS wrong passwords from $ATTACKER" "${codes[@]}"
after "then GET /users/1" "$ATTACKER" GET /users/1
line "alice from her own address" "$(status 0 198.51.100.20 POST /login -H 'content-type: application/json' -d '{"username":"alice","password":"wonderland"}')"
