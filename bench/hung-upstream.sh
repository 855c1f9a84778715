#!/usr/bin/env bash
# Issue 10: `npm ci` of a real project through a warm nproxy whose every packument is stale
# (packument_max_age_secs = 0), with the upstream (1) answering, (2) refusing connections,
# (3) accepting connections and never answering (a black-holed egress). Prints one table.
#
# Usage: bench/hung-upstream.sh [--bin PATH] [--project DIR] [--upstream URL] [--runs N]
#   --bin       data plane binary or folder (default: target/release, else target/debug)
#   --project   a folder with package.json + package-lock.json
#               (default: ../shared/bench/fixture-project, 786 packages)
#   --upstream  the real registry for warming and case 1 (default: `npm config get registry`)
#   --runs      npm ci runs per case, the median is reported (default 1)
# Not part of CI (uses the real upstream). nproxy, the refusing port and the black hole are
# all on 127.0.0.1; everything started here is stopped on exit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
BIN=""
PROJECT="$root/../shared/bench/fixture-project"
UPSTREAM=""
RUNS=1
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2 ;;
    --project) PROJECT="$2"; shift 2 ;;
    --upstream) UPSTREAM="$2"; shift 2 ;;
    --runs) RUNS="$2"; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
[ -n "$UPSTREAM" ] || UPSTREAM="$(npm config get registry)"
if [ -z "$BIN" ]; then
  for c in "$root/target/release/nproxy-data-plane" "$root/target/debug/nproxy-data-plane"; do
    [ -x "$c" ] && { BIN="$c"; break; }
  done
elif [ -d "$BIN" ]; then
  BIN="$BIN/nproxy-data-plane"
fi
[ -n "$BIN" ] && [ -x "$BIN" ] || { echo "no data plane binary (build one, or pass --bin)" >&2; exit 1; }
[ -f "$PROJECT/package-lock.json" ] || { echo "$PROJECT has no package-lock.json" >&2; exit 1; }
for v in $(compgen -e); do case "$v" in NPROXY_*) unset "$v" ;; esac; done

tmp="$(mktemp -d /tmp/nproxy-hung.XXXXXX)"
dp_pid="" hole_pid=""
cleanup() {
  for p in $dp_pid $hole_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# The black hole: accepts every connection, reads, never answers.
hole_port=$(free_port)
python3 - "$hole_port" <<'PY' & hole_pid=$!
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(4096)
def drain(c):
    try:
        while c.recv(65536): pass
    except OSError: pass
while True:
    c, _ = s.accept(); threading.Thread(target=drain, args=(c,), daemon=True).start()
PY
refused_port=$(free_port)   # nothing listens there

dp_port=$(free_port)
start_dp() { # upstream URL
  [ -n "$dp_pid" ] && { kill "$dp_pid" 2>/dev/null || true; wait "$dp_pid" 2>/dev/null || true; }
  RUST_LOG=warn NPROXY_PACKUMENT_MAX_AGE_SECS=0 "$BIN" --upstream "$1" \
    --listen "127.0.0.1:$dp_port" --metrics-listen "" --storage-dir "$tmp/store" \
    >> "$tmp/dp.log" 2>&1 & dp_pid=$!
  for _ in $(seq 100); do
    curl -s -o /dev/null "http://127.0.0.1:$dp_port/-/ping" && return 0
    sleep 0.1
  done
  echo "the data plane did not start" >&2; cat "$tmp/dp.log" >&2; exit 1
}

run_ci() { # label -> seconds (median of RUNS)
  local times=() i t0 t1
  for i in $(seq "$RUNS"); do
    rm -rf "$tmp/p" "$tmp/cache" && mkdir -p "$tmp/p"
    cp "$PROJECT/package.json" "$PROJECT/package-lock.json" "$tmp/p/"
    t0=$(date +%s.%N)
    if ! (cd "$tmp/p" && timeout 900 npm ci --registry "http://127.0.0.1:$dp_port/" \
          --cache "$tmp/cache" --ignore-scripts --no-audit --no-fund --fetch-retries=0 \
          --loglevel=error > "$tmp/ci-$1-$i.log" 2>&1); then
      echo "   npm ci ($1) failed; see below" >&2; tail -5 "$tmp/ci-$1-$i.log" >&2
      times+=("failed"); continue
    fi
    t1=$(date +%s.%N)
    times+=("$(python3 -c "print(f'{$t1-$t0:.1f}')")")
  done
  printf '%s\n' "${times[@]}" | sort -n | sed -n "$(( (RUNS + 1) / 2 ))p"
}

echo "== warming nproxy from the upstream (one npm ci)" >&2
start_dp "$UPSTREAM"
run_ci warm > /dev/null
pkgs=$(find "$tmp/p/node_modules" -name package.json -path '*/node_modules/*/package.json' -not -path '*/node_modules/*/node_modules/*/*/package.json' | wc -l)

echo "== case 1: upstream answering" >&2
start_dp "$UPSTREAM"; answering=$(run_ci answering)
echo "== case 2: upstream refusing connections" >&2
start_dp "http://127.0.0.1:$refused_port/"; refusing=$(run_ci refusing)
echo "== case 3: upstream accepting and never answering" >&2
start_dp "http://127.0.0.1:$hole_port/"; hung=$(run_ci hung)

cat <<EOF
nproxy with a sick upstream ($(date '+%Y-%m-%d %H:%M')), bench/hung-upstream.sh --runs $RUNS
binary: $BIN; project: $PROJECT (about $pkgs packages); $(nproc) cores
every packument stale (packument_max_age_secs = 0), store warm, fresh npm cache, --fetch-retries=0

| upstream | npm ci (s) |
| --- | --- |
| answering | $answering |
| refusing connections | $refusing |
| accepting connections and never answering | $hung |
EOF
grep -c "circuit breaker open" "$tmp/dp.log" | sed 's/^/breaker openings logged: /'
