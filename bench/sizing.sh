#!/usr/bin/env bash
# Sizing numbers for deploy/README.md that the request benchmarks don't give, measured on a
# real PostgreSQL (the test server of testing/postgres), a real Redis and a control plane:
#   - Redis bytes per org snapshot, by number of live tokens;
#   - PostgreSQL bytes per audit event and per 1,000 tokens (tables + indexes);
#   - control-plane CPU-seconds and RSS per mutation (token create: sign-free, one event).
# The audit table is filled to --events rows by copying rows the control plane wrote (new
# ids and sequence numbers), so row and index sizes are those of real events.
#
# Usage: bench/sizing.sh [--tokens 1000] [--events 1000000] [--bin target/release]
# Local only (loopback); not part of CI. Stops what it started.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
TOKENS=1000
EVENTS=1000000
BIN=""
while [ $# -gt 0 ]; do
  case "$1" in
    --tokens) TOKENS="$2"; shift 2 ;;
    --events) EVENTS="$2"; shift 2 ;;
    --bin) BIN="$2"; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
if [ -z "$BIN" ]; then
  for c in "$root/target/release" "$root/target/debug"; do
    [ -x "$c/nproxy-control-plane" ] && [ -x "$c/nproxyctl" ] && { BIN="$c"; break; }
  done
fi
[ -n "$BIN" ] || { echo "build nproxy-control-plane and nproxyctl first" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

db="$(cd "$root" && cargo run -q -p nproxy-test-postgres -- url)"
rport="$(port)"
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no >"$work/redis.log" 2>&1 &
pids+=($!)
cport="$(port)"
admin="sizing-admin-token-0123456789abcdef"
env -i PATH="$PATH" RUST_LOG=warn \
  NPROXY_LISTEN="127.0.0.1:$cport" NPROXY_DATABASE="$db" \
  NPROXY_REDIS_URL="redis://127.0.0.1:$rport" \
  NPROXY_MASTER_KEY="MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=" \
  NPROXY_ADMIN_TOKEN="$admin" NPROXY_DATA_PLANE_TOKEN="sizing-data-plane-token-0123456789" \
  "$BIN/nproxy-control-plane" >"$work/cp.log" 2>&1 &
cp_pid=$!
pids+=("$cp_pid")
for _ in $(seq 100); do
  (exec 3<>"/dev/tcp/127.0.0.1/$cport") 2>/dev/null && break
  sleep 0.1
done
ctl() { NPROXY_ADMIN_TOKEN="$admin" "$BIN/nproxyctl" --endpoint "http://127.0.0.1:$cport" "$@"; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$cp_pid/stat"; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$cp_pid/status"; }
hz="$(getconf CLK_TCK)"

ctl org create sizing >/dev/null
ctl org settings sizing --internal-scopes @sizing >/dev/null
snapshot_bytes() { redis-cli -p "$rport" MEMORY USAGE "nproxy:v1:org:sizing" SAMPLES 0; }
echo "Redis: org snapshot with 0 tokens: $(snapshot_bytes) bytes"

t0="$(cpu_ticks)"
started="$(date +%s.%N)"
for i in $(seq "$TOKENS"); do
  ctl token create --org sizing --name "t$i" --scope proxy --scope publish >/dev/null
  case "$i" in 10|100|1000|10000) echo "Redis: org snapshot with $i tokens: $(snapshot_bytes) bytes" ;; esac
done
t1="$(cpu_ticks)"
elapsed="$(python3 -c "import time; print(round(time.time() - $started, 1))")"
echo "control plane: $TOKENS token creations in ${elapsed} s (one nproxyctl process each): $(python3 -c "print(round(($t1 - $t0) / $hz / $TOKENS * 1000, 2))") ms CPU each; RSS $(( $(rss_kb) / 1024 )) MB"

q() { psql "$db" -Atc "$1"; }
tok_bytes="$(q "select pg_total_relation_size('tokens')")"
echo "PostgreSQL: tokens table + indexes: $tok_bytes bytes for $TOKENS tokens = $(( tok_bytes * 1000 / TOKENS / 1024 )) KiB per 1,000"

real="$(q "select count(*) from audit_events")"
q "insert into audit_events (id, org_id, seq, time_ms, type, actor, details_json, prev_hash, hash, idempotency_key)
   select md5(random()::text) || substr(e.id, 1, 4), e.org_id, m.seq * (g + 1) + e.seq, e.time_ms + g, e.type, e.actor,
          e.details_json, e.prev_hash, e.hash, null
   from generate_series(0, ($EVENTS - $real) / $real) g
   cross join audit_events e
   cross join (select max(seq) as seq from audit_events) m
   limit $EVENTS - $real" >/dev/null
q "vacuum analyze audit_events" >/dev/null
n="$(q "select count(*) from audit_events")"
ev_bytes="$(q "select pg_total_relation_size('audit_events')")"
heap="$(q "select pg_relation_size('audit_events')")"
echo "PostgreSQL: audit_events: $n events ($real written by the control plane, the rest copies of them): $(( ev_bytes / 1024 / 1024 )) MiB with indexes (heap $(( heap / 1024 / 1024 )) MiB) = $(( ev_bytes / n )) bytes per event"
echo "PostgreSQL: whole database: $(( $(q "select pg_database_size(current_database())") / 1024 / 1024 )) MiB"
