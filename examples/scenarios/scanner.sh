#!/usr/bin/env bash
# A scanner probing for secrets and admin panels: 404s and probe paths from one address.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
ATTACKER=${ATTACKER:-198.51.100.66}
codes=()
for p in /.env /.git/config /wp-login.php /phpmyadmin/ /backup.zip /admin /old /test /actuator/env /config.json /server-status /users/1; do
  codes+=("$(status 0 "$ATTACKER" GET "$p")")
done
line "12 probes from $ATTACKER" "${codes[@]}"
after "then an ordinary request" "$ATTACKER" GET /users/1
