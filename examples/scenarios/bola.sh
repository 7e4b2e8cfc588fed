#!/usr/bin/env bash
# Broken object-level authorization: walking /users/{id} to read other customers' records.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ATTACKER=${ATTACKER:-203.0.113.80}
codes=()
for id in $(seq 1 15); do codes+=("$(status 0 "$ATTACKER" GET "/users/$id")"); done
line "GET /users/1 .. /users/15 from $ATTACKER" "${codes[@]}"
after "then GET /users/16" "$ATTACKER" GET /users/16
mine=()
for _ in $(seq 1 5); do mine+=("$(status 0 192.0.2.80 GET /users/1)"); done
line "a user reading their own profile" "${mine[@]}"
