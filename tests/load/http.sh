#!/usr/bin/env bash
# Load benchmark of the SCIM HTTP surface: the local runner (release build)
# with 100,000 users loaded, driven by wrk over loopback.
#
#   tests/load/http.sh [users] [seconds] [connections]
#
# Prints a Markdown table for docs/PERFORMANCE.md. Installs wrk from Debian
# when it is missing. Traffic goes to 127.0.0.1 only, for a bounded time.
set -euo pipefail
cd "$(dirname "$0")/../.."

USERS=${1:-100000}
SECONDS_PER_RUN=${2:-20}
CONNECTIONS=${3:-8}
PORT=${PORT:-18181}

if ! command -v wrk >/dev/null; then
  (apt-get update -qq && apt-get install -y -qq wrk) >/dev/null
fi

cargo build --release --locked -q -p lockstep-cli
BIN=target/release/lockstep
DATA=$(mktemp -d)
trap 'kill "${SERVER:-}" 2>/dev/null || true; rm -rf "$DATA"' EXIT

echo "seeding $USERS users..." >&2
SEED=$("$BIN" --json --data-dir "$DATA" seed --users "$USERS")
USER_ID=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["sample_user_id"])' <<<"$SEED")
USER_NAME=$(python3 -c 'import json,sys; print(json.load(sys.stdin)["sample_user_name"])' <<<"$SEED")

# Request logs stay on (as in production) but go nowhere.
"$BIN" --json --data-dir "$DATA" serve --port "$PORT" --new-token > "$DATA/serve.out" 2>&1 &
SERVER=$!
for _ in $(seq 1 100); do
  [ -s "$DATA/serve.out" ] && break
  sleep 0.1
done
TOKEN=$(head -1 "$DATA/serve.out" | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
: > "$DATA/serve.out"
BASE="http://127.0.0.1:$PORT/default/scim/v2"
FILTER="filter=userName%20eq%20%22${USER_NAME//@/%40}%22"

# wrk shares the machine with the server: one wrk thread drives the
# connections (it needs under half a core), so the server's worker threads
# are not descheduled for a second load thread, which would only show up as
# tail latency of the load generator's own making.
WRK_THREADS=${WRK_THREADS:-1}

run() {
  local name=$1 url=$2
  # Warm up, then measure.
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d3s -H "Authorization: Bearer $TOKEN" "$url" >/dev/null
  local out
  out=$(wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"${SECONDS_PER_RUN}s" --latency -H "Authorization: Bearer $TOKEN" "$url")
  local rps p50 p90 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p90=$(awk '$1=="90%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $5}' <<<"$out")
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$name" "$CONNECTIONS" "$rps" "$p50" "$p90" "$p99" "${non2xx:-0}"
}

echo "| request | connections | requests/s | p50 | p90 | p99 | non-2xx |"
echo "| --- | --- | --- | --- | --- | --- | --- |"
run "GET /Users/{id}" "$BASE/Users/$USER_ID"
run "GET /Users?filter=userName eq" "$BASE/Users?$FILTER"
run "GET /ServiceProviderConfig" "$BASE/ServiceProviderConfig"
echo
echo "users: $USERS; $(nproc) cores shared by wrk ($WRK_THREADS thread) and the server; $(date -u +%Y-%m-%d)"
