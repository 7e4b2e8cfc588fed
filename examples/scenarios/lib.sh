# Helpers for the attack scenarios. Each scenario sends its traffic through one or more vigil
# gateways as a client behind a load balancer (the address in x-forwarded-for) and prints the
# status of every request on one line, so the moment vigil steps in is easy to see.
# GATEWAYS: space-separated base URLs (default http://127.0.0.1:10000).
GATEWAYS=${GATEWAYS:-http://127.0.0.1:10000}
read -r -a GW <<<"$GATEWAYS"

# status GATEWAY_INDEX CLIENT_IP METHOD PATH [curl args...]: prints the HTTP status.
status() {
  local gw=${GW[$(( $1 % ${#GW[@]} ))]} ip=$2 method=$3 path=$4
  shift 4
  curl -s -o /dev/null -w '%{http_code}' -X "$method" -H "x-forwarded-for: $ip" "$gw$path" "$@" || echo 000
}

# line LABEL STATUS...: one summary line, 4xx from vigil in colour.
line() {
  local label=$1; shift
  printf '  %-44s' "$label"
  for s in "$@"; do
    case $s in
      403|429) printf ' \033[31m%s\033[0m' "$s" ;;
      *) printf ' %s' "$s" ;;
    esac
  done
  printf '\n'
}

# after LABEL CLIENT_IP METHOD PATH: polls every gateway (up to ~3 s) until it refuses the client,
# then prints what each answered. Local windows are per Envoy worker; the control plane's fleet
# view merges them and pushes the block to every edge, usually within a second.
after() {
  local label=$1 ip=$2 method=$3 path=$4 g s
  for g in "${!GW[@]}"; do
    for _ in $(seq 1 60); do
      s=$(status "$g" "$ip" "$method" "$path")
      case $s in 403|429) break ;; esac
      sleep 0.05
    done
    line "$label via ${GW[$g]}" "$s"
  done
}
