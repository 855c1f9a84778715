#!/usr/bin/env bash
# nproxy (warm cache) next to nginx serving the same bytes, with wrk on loopback.
# Usage: bench/run.sh   (env: DURATION=10s CONNECTIONS=64 COLD_MB=500 REUSE_FIXTURES=1 PER_CORE=1)
# PER_CORE=1: nproxy (NPROXY_THREADS=1) and nginx (one worker) pinned to CPU 0, wrk (one
# thread) to CPU 1: requests/s per server core, the sizing unit of deploy/README.md.
# Needs nginx and wrk (scripts/install-test-tools.sh installs them). Loopback only.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/bench/out"
DURATION="${DURATION:-10s}"
CONNECTIONS="${CONNECTIONS:-64}"
COLD_MB="${COLD_MB:-500}"
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
srv_pin=(); np_pin=(); wrk_pin=(); wrk_threads=2; ng_workers=2
if [ "${PER_CORE:-0}" = 1 ]; then
  srv_pin=(taskset -c 0); np_pin=(env NPROXY_THREADS=1 taskset -c 0)
  wrk_pin=(taskset -c 1); wrk_threads=1; ng_workers=1
fi

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
rss_kb() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

echo "== building (release)"
cargo build --release -q -p nproxy-data-plane -p nproxy-control-plane -p nproxyctl --manifest-path "$root/Cargo.toml"
if [ "${REUSE_FIXTURES:-0}" = 1 ] && [ -f "$out/upstream/bench-tar/index.json" ]; then
  rm -rf "$out/same" "$out/store" "$out/store-rules" "$out"/control.db* && mkdir -p "$out/same" "$out/store"
else
  rm -rf "$out" && mkdir -p "$out/upstream" "$out/same" "$out/store"
  echo "== generating fixtures (cold tarball: ${COLD_MB} MB)"
  python3 "$root/bench/gen_fixtures.py" "$out/upstream" "$COLD_MB"
fi

nginx_conf() { # $1 = port, $2 = root, $3 = file for name-only paths
  cat <<CONF
worker_processes $ng_workers;
pid $out/nginx-$1.pid;
error_log $out/nginx-$1.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path $out/tmp-$1; proxy_temp_path $out/tmp-$1; fastcgi_temp_path $out/tmp-$1;
  uwsgi_temp_path $out/tmp-$1; scgi_temp_path $out/tmp-$1;
  default_type application/octet-stream;
  server {
    listen 127.0.0.1:$1;
    root $2;
    location ~ ^/([^/]+)$ { default_type application/json; try_files /\$1/$3 =404; }
  }
}
CONF
}

up_port=$(free_port); same_port=$(free_port); np_port=$(free_port); np_metrics=$(free_port)
nginx_conf "$up_port" "$out/upstream" index.json > "$out/nginx-up.conf"
"${srv_pin[@]}" "$NGINX" -c "$out/nginx-up.conf" -g 'daemon off;' & pids+=($!)

NPROXY_STORAGE__PATH="$out/store" RUST_LOG=warn "${np_pin[@]}" "$root/target/release/nproxy-data-plane" \
  --upstream "http://127.0.0.1:$up_port" --listen "127.0.0.1:$np_port" \
  --metrics-listen "127.0.0.1:$np_metrics" > "$out/nproxy.log" 2>&1 & np_pid=$!; pids+=($np_pid)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$np_port/-/ping" >/dev/null && break; sleep 0.1; done
# nproxy's peak RSS over the whole benchmark (warming, every case, the cold tarball).
echo 0 > "$out/np-peak"
( while kill -0 $np_pid 2>/dev/null; do r=$(rss_kb $np_pid 2>/dev/null || echo 0)
    [ "${r:-0}" -gt "$(cat "$out/np-peak")" ] && echo "$r" > "$out/np-peak"; sleep 0.05; done ) & pids+=($!)

np="http://127.0.0.1:$np_port"
abbr='Accept: application/vnd.npm.install-v1+json'
echo "== warming nproxy and capturing the exact bytes it serves"
mkdir -p "$out/same/bench-big" "$out/same/abbr" "$out/same/bench-tar/-"
curl -sf "$np/bench-big" -o "$out/same/bench-big/index.json"
curl -sf -H "$abbr" "$np/bench-big" -o "$out/same/abbr/index.json"
for v in 1.0.0 2.0.0; do curl -sf "$np/bench-tar/-/bench-tar-$v.tgz" -o "$out/same/bench-tar/-/bench-tar-$v.tgz"; done
printf "full packument %s bytes, abbreviated %s bytes\n" "$(stat -c %s "$out/same/bench-big/index.json")" "$(stat -c %s "$out/same/abbr/index.json")"

nginx_conf "$same_port" "$out/same" index.json > "$out/nginx-same.conf"
"${srv_pin[@]}" "$NGINX" -c "$out/nginx-same.conf" -g 'daemon off;' & pids+=($!)
sleep 0.5
ng="http://127.0.0.1:$same_port"

run_wrk() { # $1 = url, extra args → "rps p50 p99"
  local url="$1"; shift
  "${wrk_pin[@]}" wrk -t"$wrk_threads" -c"$CONNECTIONS" -d"$DURATION" --latency "$@" "$url" > "$out/wrk.txt" 2>&1
  local rps p50 p99
  rps=$(awk '/Requests\/sec/ {print $2}' "$out/wrk.txt")
  p50=$(awk '$1=="50%" {print $2}' "$out/wrk.txt")
  p99=$(awk '$1=="99%" {print $2}' "$out/wrk.txt")
  if grep -q "Non-2xx" "$out/wrk.txt"; then echo "ERROR: non-2xx answers for $url" >&2; cat "$out/wrk.txt" >&2; fi
  echo "$rps $p50 $p99"
}

printf "\n%-28s %12s %9s %9s %12s %9s %9s %7s\n" case "nginx rps" p50 p99 "nproxy rps" p50 p99 ratio
bench_case() { # name, nginx url, nproxy url, extra wrk args
  local name="$1" nu="$2" pu="$3"; shift 3
  read -r nr n50 n99 < <(run_wrk "$nu" "$@")
  read -r pr p50 p99 < <(run_wrk "$pu" "$@")
  printf "%-28s %12s %9s %9s %12s %9s %9s %7.2f\n" "$name" "$nr" "$n50" "$n99" "$pr" "$p50" "$p99" "$(echo "$pr / $nr" | bc -l)"
}
bench_case "full packument (13 MB)" "$ng/bench-big" "$np/bench-big"
bench_case "abbreviated packument" "$ng/abbr" "$np/bench-big" -H "$abbr"
bench_case "tarball 80 KB" "$ng/bench-tar/-/bench-tar-1.0.0.tgz" "$np/bench-tar/-/bench-tar-1.0.0.tgz"
bench_case "tarball 4 MB" "$ng/bench-tar/-/bench-tar-2.0.0.tgz" "$np/bench-tar/-/bench-tar-2.0.0.tgz"
printf "\nnproxy RSS after the runs: %s MB\n" "$(( $(rss_kb $np_pid) / 1024 ))"

echo "== security rules: the 13 MB packument with five rules on, next to rules off"
redis_port=$(free_port); cp_port=$(free_port); rp_port=$(free_port)
redis-server --bind 127.0.0.1 --port "$redis_port" --save "" --appendonly no --dir "$out" \
  --logfile "$out/redis.log" & pids+=($!)
admin="bench-admin-token-0123456789abcdef"
NPROXY_LISTEN="127.0.0.1:$cp_port" NPROXY_DATABASE="$out/control.db" \
  NPROXY_REDIS_URL="redis://127.0.0.1:$redis_port" NPROXY_ADMIN_TOKEN="$admin" \
  NPROXY_MASTER_KEY="$(head -c 32 /dev/urandom | base64)" RUST_LOG=warn \
  "$root/target/release/nproxy-control-plane" > "$out/control-plane.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$cp_port") 2>/dev/null && break; sleep 0.1; done
ctl() { "$root/target/release/nproxyctl" --endpoint "http://127.0.0.1:$cp_port" --token "$admin" "$@" > /dev/null; }
ctl org create bench
ctl rules set --org bench --cooldown block --cooldown-hours 24 --install-scripts block \
  --deprecated warn --license block --licenses MIT --unexpected-dependencies warn
NPROXY_STORAGE__PATH="$out/store-rules" NPROXY_REDIS_URL="redis://127.0.0.1:$redis_port" \
  NPROXY_DEFAULT_ORG=bench RUST_LOG=warn "${np_pin[@]}" "$root/target/release/nproxy-data-plane" \
  --upstream "http://127.0.0.1:$up_port" --listen "127.0.0.1:$rp_port" --metrics-listen "" \
  > "$out/nproxy-rules.log" 2>&1 & rp_pid=$!; pids+=($rp_pid)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$rp_port/-/ping" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$rp_port/bench-big" -o /dev/null
read -r off_rps off50 off99 < <(run_wrk "$np/bench-big")
read -r on_rps on50 on99 < <(run_wrk "http://127.0.0.1:$rp_port/bench-big")
printf "%-28s %12s %9s %9s\n" "" rps p50 p99
printf "%-28s %12s %9s %9s\n" "rules off" "$off_rps" "$off50" "$off99"
printf "%-28s %12s %9s %9s\n" "five rules on" "$on_rps" "$on50" "$on99"
printf "ratio (on/off): %.2f; RSS with rules: %s MB\n\n" "$(echo "$on_rps / $off_rps" | bc -l)" "$(( $(rss_kb $rp_pid) / 1024 ))"

echo "== cold ${COLD_MB} MB tarball through nproxy (streamed from upstream, verified on the fly)"
before=$(rss_kb $np_pid); peak=$before
curl -sf "$np/bench-tar/-/bench-tar-3.0.0.tgz" -o /dev/null & curl_pid=$!
while kill -0 $curl_pid 2>/dev/null; do r=$(rss_kb $np_pid); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.05; done
wait $curl_pid && ok=yes || ok=no
printf "completed: %s; RSS before %s MB, peak during %s MB\n" "$ok" "$((before / 1024))" "$((peak / 1024))"
printf "nproxy peak RSS over the whole benchmark: %s MB (target <= 100)\n" "$(( $(cat "$out/np-peak") / 1024 ))"
