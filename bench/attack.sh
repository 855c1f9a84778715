#!/usr/bin/env bash
# The issue 9 attack campaign against a freshly started data plane, one attack at a time,
# with a hermetic fake upstream (bench/attack/upstream.py). For each attack: peak RSS and
# open descriptors of the data plane (sampled every 100 ms) and p50/p99 of a normal cached
# GET issued during the attack. Prints one table; --out also writes it to a file.
#
# Usage: bench/attack.sh [--bin PATH] [--duration SECS] [--out FILE] [--only a,b,...] [--keep]
#   --bin       the data plane binary, or a folder holding nproxy-data-plane
#               (default: target/release, else target/debug; nothing is built)
#   --duration  seconds per attack (default 20; the idle keep-alive attack runs >= 20)
#   --only      a subset of: dots audit idle trickle hosts put-anon put-token expect
#   --keep      keep the work folder (logs, JSON rows) instead of deleting it
# Needs python3 (stdlib only) and curl. Every address is 127.0.0.1; everything started here
# is stopped on exit.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
here="$root/bench/attack"
DURATION=20
OUT=""
ONLY="dots,audit,idle,trickle,hosts,put-anon,put-token,expect"
BIN=""
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) BIN="$2"; shift 2 ;;
    --duration) DURATION="$2"; shift 2 ;;
    --out) OUT="$2"; shift 2 ;;
    --only) ONLY="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
    *) echo "unknown argument: $1" >&2; exit 2 ;;
  esac
done
case "$DURATION" in ''|*[!0-9]*) echo "--duration takes whole seconds" >&2; exit 2 ;; esac
[ "$DURATION" -ge 5 ] && [ "$DURATION" -le 300 ] || { echo "--duration must be 5..300" >&2; exit 2; }

if [ -z "$BIN" ]; then
  for c in "$root/target/release/nproxy-data-plane" "$root/target/debug/nproxy-data-plane"; do
    [ -x "$c" ] && { BIN="$c"; break; }
  done
elif [ -d "$BIN" ]; then
  BIN="$BIN/nproxy-data-plane"
fi
[ -n "$BIN" ] && [ -x "$BIN" ] || { echo "no data plane binary (build one, or pass --bin)" >&2; exit 1; }
case "$BIN" in */release/*) build=release ;; */debug/*) build=debug ;; *) build=unknown ;; esac

# Hermetic: no inherited nproxy settings, no proxy between the data plane and 127.0.0.1.
for v in $(compgen -e); do
  case "$v" in NPROXY_*|http_proxy|https_proxy|HTTP_PROXY|HTTPS_PROXY|ALL_PROXY|all_proxy) unset "$v" ;; esac
done
export NO_PROXY=127.0.0.1 no_proxy=127.0.0.1
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ under bench/

tmp="$(mktemp -d /tmp/nproxy-attack.XXXXXX)"
up_pid="" dp_pid="" run_pid=""
stop_pid() { # pid: TERM, up to 10 s, then KILL
  local p="$1" i
  [ -n "$p" ] || return 0
  kill -TERM "$p" 2>/dev/null || return 0
  for i in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}
cleanup() {
  stop_pid "$run_pid"; stop_pid "$dp_pid"; stop_pid "$up_pid"
  if [ "$KEEP" = 1 ]; then echo "work folder kept: $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A private copy: a build running meanwhile may replace the file under target/.
cp "$BIN" "$tmp/nproxy-data-plane"
bin="$tmp/nproxy-data-plane"
bin_date="$(date -r "$BIN" '+%Y-%m-%d %H:%M')"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
http_code() { curl -s --noproxy '*' --max-time 30 -o /dev/null -w '%{http_code}' "$@" || true; }

python3 "$here/upstream.py" --port-file "$tmp/upstream.port" --log "$tmp/upstream.log" \
  2> "$tmp/upstream.err" & up_pid=$!
for _ in $(seq 300); do [ -s "$tmp/upstream.port" ] && break; sleep 0.1; done
[ -s "$tmp/upstream.port" ] || { echo "the fake upstream did not start:" >&2; cat "$tmp/upstream.err" >&2; exit 1; }
up_port="$(cat "$tmp/upstream.port")"
echo "== $(cat "$tmp/upstream.err")" >&2

start_dp() { # name, then extra VAR=value for the data plane
  local name="$1"; shift
  dp_port=$(free_port); dp_metrics=$(free_port)
  env "$@" RUST_LOG=warn "$bin" --upstream "http://127.0.0.1:$up_port" \
    --listen "127.0.0.1:$dp_port" --metrics-listen "127.0.0.1:$dp_metrics" \
    --storage-dir "$tmp/store-$name" > "$tmp/dp-$name.log" 2>&1 & dp_pid=$!
  for _ in $(seq 200); do
    [ "$(http_code "http://127.0.0.1:$dp_port/-/ping")" = 200 ] && break
    kill -0 "$dp_pid" 2>/dev/null || { echo "the data plane exited:" >&2; cat "$tmp/dp-$name.log" >&2; exit 1; }
    sleep 0.1
  done
  # Warm: the probe's packument and tarball, the big packument, the PUT target.
  local u="http://127.0.0.1:$dp_port" path code
  for path in /attack-small /attack-small/-/attack-small-1.0.0.tgz /attack-big /attack-pub /attack-small; do
    code=$(http_code "$u$path")
    [ "$code" = 200 ] || { echo "warming $path answered $code" >&2; cat "$tmp/dp-$name.log" >&2; exit 1; }
  done
}

rows=()
IFS=',' read -r -a attacks <<< "$ONLY"
for a in "${attacks[@]}"; do
  env_extra=()
  case "$a" in
    idle|trickle) env_extra=(NPROXY_KEEPALIVE_IDLE_SECS=5 NPROXY_HEADER_TIMEOUT_SECS=5) ;;
    dots|audit|hosts|put-anon|put-token|expect) ;;
    *) echo "unknown attack: $a" >&2; exit 2 ;;
  esac
  echo "== $a: fresh data plane ${env_extra[*]:-}" >&2
  start_dp "$a" "${env_extra[@]}"
  timeout --signal=TERM --kill-after=20 $((DURATION + 400)) \
    python3 "$here/run.py" --attack "$a" --pid "$dp_pid" --port "$dp_port" \
      --metrics-port "$dp_metrics" --upstream-log "$tmp/upstream.log" --duration "$DURATION" \
      --idle-secs 5 --out "$tmp/row-$a.json" & run_pid=$!
  wait "$run_pid" || echo "   the $a run exited with $?" >&2
  run_pid=""
  rows+=("$tmp/row-$a.json")
  if ! kill -0 "$dp_pid" 2>/dev/null; then echo "   the data plane died during $a" >&2; fi
  stop_pid "$dp_pid"; dp_pid=""
  grep -iE "panic|error" "$tmp/dp-$a.log" | head -3 | sed 's/^/   dp log: /' >&2 || true
done

load="$(cut -d' ' -f1-3 /proc/loadavg)"
header=(
  "nproxy attack campaign ($(date '+%Y-%m-%d %H:%M')), bench/attack.sh --duration $DURATION"
  "binary: $BIN ($build build, $bin_date)$([ "$build" = debug ] && echo '; a debug build: latencies, CPU and RSS are pessimistic next to release')"
  "machine: $(nproc) cores, load average $load at the end (other jobs were running); each attack: a fresh data plane and store, the fake upstream on 127.0.0.1"
  "probe: GET /attack-small (cached, 1.3 KB) every 20 ms over one keep-alive connection from its own process; RSS (VmRSS) and fds sampled every 100 ms"
)
args=()
for h in "${header[@]}"; do args+=(--header "$h"); done
python3 "$here/table.py" "${args[@]}" "${rows[@]}" > "$tmp/table.txt"
cat "$tmp/table.txt"
if [ -n "$OUT" ]; then cp "$tmp/table.txt" "$OUT"; echo "table written to $OUT" >&2; fi
