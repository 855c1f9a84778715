#!/usr/bin/env bash
# `npm ci` of a realistic app (../shared/bench/fixture-project: 786 packages) through warm
# nproxy, next to npm's own offline floor (`npm ci --offline` from a filled npm cache).
# Reports wall time per install, CPU-seconds spent in nproxy per install and nproxy's peak RSS.
#
# Uses the REAL upstream (the registry npm is configured with), so it is not part of CI.
# Usage: bench/npm-ci.sh [--runs 3] [--project DIR] [--bin target/release/nproxy-data-plane]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
runs=3
project="$root/../shared/bench/fixture-project"
bin="$root/target/release/nproxy-data-plane"
perf_out=""
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs="$2"; shift 2 ;;
    --project) project="$2"; shift 2 ;;
    --bin) bin="$2"; shift 2 ;;
    --perf) perf_out="$2"; shift 2 ;;  # perf record nproxy during the first warm install
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
upstream="$(npm config get registry)"
out="$(mktemp -d /tmp/nproxy-npm-ci.XXXXXX)"
chmod 755 "$out"  # nginx workers (the static floor) run as another user
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
tck=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  if [ "${KEEP:-0}" = 1 ]; then echo "kept $out"; else rm -rf "$out"; fi
}
trap cleanup EXIT

if [ ! -x "$bin" ]; then
  echo "== building (release)"
  cargo build --release -q -p nproxy-data-plane --manifest-path "$root/Cargo.toml"
fi
port=$(free_port); mport=$(free_port)
NPROXY_STORAGE__PATH="$out/store" RUST_LOG=warn "$bin" --upstream "$upstream" \
  --listen "127.0.0.1:$port" --metrics-listen "127.0.0.1:$mport" > "$out/nproxy.log" 2>&1 & np=$!; pids+=($np)
# The allocator's and the caches' view (MB), from nproxy's metrics.
heap() {
  curl -sf "http://127.0.0.1:$mport/metrics" | awk '
    /^nproxy_heap_bytes\{/ { split($1, a, "\""); h = h sprintf("%s %.0f, ", a[2], $2 / 1048576) }
    /^nproxy_memory_cache_bytes\{/ { split($1, a, "\""); c = c sprintf("%s cache %.1f, ", a[2], $2 / 1048576) }
    /^nproxy_memory_cache_entries\{/ { split($1, a, "\""); e = e sprintf("%s %d, ", a[2], $2) }
    END { printf "heap MB: %sMB in caches: %sentries: %s\n", h, c, e }'
}
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/-/ping" >/dev/null && break; sleep 0.1; done

# Peak RSS over the whole run, sampled every 50 ms.
echo 0 > "$out/peak"
( while kill -0 $np 2>/dev/null; do
    r=$(awk '/VmRSS/ {print $2}' "/proc/$np/status" 2>/dev/null || echo 0)
    [ "${r:-0}" -gt "$(cat "$out/peak")" ] && { echo "$r" > "$out/peak"; heap > "$out/peak-heap" || true; }
    [ -n "${RSS_LOG:-}" ] && echo "$(date +%s.%N) $r $(awk '/^Threads/ {print $2}' "/proc/$np/status" 2>/dev/null)" >> "$RSS_LOG"; sleep 0.05; done ) & pids+=($!)

install() { # $1 = label, rest = extra npm args; prints seconds
  rm -rf "$out/app" && cp -r "$project" "$out/app" && rm -rf "$out/app/node_modules"
  local t0 t1
  t0=$(date +%s.%N)
  (cd "$out/app" && npm ci --no-audit --no-fund --loglevel=error "$@" > "$out/npm-$1.log" 2>&1) \
    || { echo "npm ci ($1) failed:" >&2; tail -20 "$out/npm-$1.log" >&2; exit 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc -l
}

reg="http://127.0.0.1:$port/"
echo "== cold install through nproxy (fills its store from the upstream)"
printf "cold: %.1f s, nproxy peak RSS so far %s MB\n" \
  "$(install cold --registry "$reg" --cache "$out/cache-cold")" "$(( $(cat "$out/peak") / 1024 ))"
cold_peak=$(cat "$out/peak"); echo 0 > "$out/peak"
echo "at the cold peak: $(cat "$out/peak-heap")"; echo "after: $(heap)"

# A static floor: nginx serving the very bytes nproxy sends (its gzip'd packuments, rendered
# with tarball URLs pointing at nginx, and the tarballs), so the gap splits into npm's own
# networked-install work and nproxy's share.
NGINX="$(command -v nginx || echo /usr/sbin/nginx)"
ng_port=$(free_port)
python3 - "$project/package-lock.json" "http://127.0.0.1:$port" "127.0.0.1:$ng_port" "$out/static" <<'PY'
import gzip, json, os, sys, urllib.request
lock, np, host, root = sys.argv[1:5]
pk = json.load(open(lock))["packages"]
seen = set()
def get(path, headers):
    req = urllib.request.Request(np + path, headers=headers)
    with urllib.request.urlopen(req, timeout=60) as r:
        return r.read()
for key, v in pk.items():
    if not key:
        continue
    name = v.get("name") or key.split("node_modules/")[-1]
    ver = v.get("version")
    if name not in seen:
        seen.add(name)
        d = os.path.join(root, name)
        os.makedirs(d, exist_ok=True)
        body = get("/" + name.replace("/", "%2f"), {"Host": host, "Accept-Encoding": "gzip"})
        # nginx's try_files looks for the plain file; gzip_static then sends the .gz one.
        open(os.path.join(d, "index.json.gz"), "wb").write(body)
        open(os.path.join(d, "index.json"), "wb").write(gzip.decompress(body))
    if ver:
        f = name.split("/")[-1] + "-" + ver + ".tgz"
        d = os.path.join(root, name, "-")
        os.makedirs(d, exist_ok=True)
        try:
            open(os.path.join(d, f), "wb").write(get("/%s/-/%s" % (name, f), {}))
        except Exception as e:  # platform-specific optional packages nproxy never fetched
            pass
PY
cat > "$out/nginx.conf" <<CONF
worker_processes 2;
pid $out/nginx.pid;
error_log $out/nginx.err warn;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path $out/tmp; proxy_temp_path $out/tmp; fastcgi_temp_path $out/tmp;
  uwsgi_temp_path $out/tmp; scgi_temp_path $out/tmp;
  default_type application/octet-stream;
  gzip_static on;
  server {
    listen 127.0.0.1:$ng_port;
    root $out/static;
    location ~ ^/((@[^/]+/)?[^/]+)$ { default_type application/json; try_files /\$1/index.json =404; }
  }
}
CONF
mkdir -p "$out/tmp"
"$NGINX" -c "$out/nginx.conf" -g 'daemon off;' & pids+=($!)
sleep 0.5
static="http://127.0.0.1:$ng_port/"
# Rendering every document again for a second base URL (nginx's) is its own workload.
capture_peak=$(cat "$out/peak"); capture_heap=$(cat "$out/peak-heap"); echo 0 > "$out/peak"

# Warm installs through nproxy and the offline floor, interleaved so a slow spell of the
# machine lands on both; the gap is the median of the per-pair differences.
printf "\n%-6s %14s %12s %12s %20s\n" run "warm nproxy s" "nginx s" "offline s" "nproxy CPU-s/install"
gaps=(); cpus=(); sgaps=()
for i in $(seq "$runs"); do
  rm -rf "$out/cache-warm"
  if [ -n "$perf_out" ] && [ "$i" = 1 ]; then
    perf record -F 999 -g -p "$np" -o "$perf_out" > "$out/perf.log" 2>&1 & perf_pid=$!; sleep 1
  fi
  c0=$(cpu_ticks $np)
  s=$(install "warm$i" --registry "$reg" --cache "$out/cache-warm")
  c1=$(cpu_ticks $np)
  if [ -n "$perf_out" ] && [ "$i" = 1 ]; then kill -INT "$perf_pid"; wait "$perf_pid" || true; fi
  cpu=$(echo "($c1 - $c0) / $tck" | bc -l)
  # The floor: the same install from the npm cache this warm run filled, no network at all.
  o=$(install "offline$i" --offline --registry "$reg" --cache "$out/cache-warm")
  rm -rf "$out/cache-static"
  g=$(install "static$i" --registry "$static" --cache "$out/cache-static")
  printf "%-6s %14.2f %12.2f %12.2f %20.2f\n" "$i" "$s" "$g" "$o" "$cpu"
  gaps+=("$(echo "$s - $o" | bc -l)"); cpus+=("$cpu"); sgaps+=("$(echo "$s - $g" | bc -l)")
done
median() { printf "%s\n" "$@" | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
printf "\nmedian gap warm nproxy - offline floor: %.2f s (target <= 1 s)\n" "$(median "${gaps[@]}")"
printf "median gap warm nproxy - nginx serving the same bytes: %.2f s\n" "$(median "${sgaps[@]}")"
printf "median nproxy CPU per install %.2f s (target <= 0.3)\n" "$(median "${cpus[@]}")"
printf "nproxy peak RSS: cold install %s MB, warm installs %s MB (target <= 100)\n" \
  "$((cold_peak / 1024))" "$(( $(cat "$out/peak") / 1024 ))"
echo "at the warm peak: $(cat "$out/peak-heap")"; echo "after: $(heap)"
printf "nproxy peak RSS while rendering every packument for a second base URL: %s MB\n" \
  "$((capture_peak / 1024))"
echo "at that peak: $capture_heap"
