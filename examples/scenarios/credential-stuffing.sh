#!/usr/bin/env bash
# Credential stuffing: one address tries a leaked list of many different accounts, once each.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ATTACKER=${ATTACKER:-192.0.2.44}
codes=()
for i in $(seq 1 12); do
  codes+=("$(status 0 "$ATTACKER" POST /login -H 'content-type: application/json' -d "{\"username\":\"user$i@example.com\",\"password\":\"Summer2024!\"}")")
done
line "12 accounts from one list via $ATTACKER" "${codes[@]}"
after "then alice's own login attempt" "$ATTACKER" GET /users/1
