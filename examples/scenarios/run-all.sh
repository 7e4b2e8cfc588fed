#!/usr/bin/env bash
# Every scenario in turn (`make demo` runs this after pushing examples/policies/behaviour.yaml).
set -euo pipefail
dir=$(dirname "$0")
for s in brute-force credential-stuffing bola exfiltration rate-abuse scanner; do
  echo "- $s"
  "$dir/$s.sh"
done
