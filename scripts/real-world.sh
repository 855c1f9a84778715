#!/usr/bin/env bash
# Real-world compatibility check (not part of CI: it uses the real upstream and takes a while).
#
# Starts a fresh nproxy data plane on 127.0.0.1 (new temp storage folder) in front of the real
# upstream registry, then installs real projects (scripts/real-world/projects/<name>/) with
# npm, pnpm, yarn 1 and yarn 4:
#   cold    fresh client cache, no lockfile, through nproxy
#   frozen  node_modules and client cache removed, install from the lockfile just written
#           (npm ci / pnpm --frozen-lockfile / yarn 1 --frozen-lockfile / yarn 4 --immutable)
#   lock    every URL in the lockfile points at nproxy (never at the upstream's host)
#   direct  when an install through nproxy fails, the same install straight from the upstream:
#           if that works, nproxy is at fault
# Install scripts never run. Prints one table; the upstream's host is redacted from everything
# printed. Exit status: 0 all good, 1 an install failed because of nproxy (or could not be
# attributed), 2 the script itself could not run.
#
#   scripts/real-world.sh                               # everything
#   scripts/real-world.sh --projects legacy-toolchain --clients npm
#   scripts/real-world.sh --list
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
here="$root/scripts/real-world"
rw() { node "$here/rw.js" "$@"; }

# Pinned clients: "latest" moves.
NPM_VERSION=11.19.1
PNPM_VERSION=10.34.9
YARN1_VERSION=1.22.22
YARN4_VERSION=4.18.1

ALL_CLIENTS=(npm pnpm yarn1 yarn4)

usage() {
  cat <<'EOF'
Usage: scripts/real-world.sh [options]

  --projects a,b       projects to install (default: all under scripts/real-world/projects)
  --clients a,b        npm, pnpm, yarn1, yarn4 (default: all)
  --bin PATH           nproxy-data-plane binary (default: target/release, then target/debug)
  --upstream URL       upstream registry (default: `npm config get registry`)
  --timeout SECS       bound on each install (default 900)
  --direct MODE        on-failure (default): compare with the upstream only when an install
                       through nproxy fails; always; never
  --work DIR           working folder (default: a new temp folder)
  --tools-dir DIR      where the pinned clients are installed (default scripts/real-world/.tools)
  --out FILE           also write the table (redacted) to FILE
  --keep               keep the working folder (projects, lockfiles, logs, nproxy storage)
  --list               list the projects and exit
  -h, --help           this help
EOF
}

projects_csv=""
clients_csv=""
bin=""
upstream=""
timeout_secs=900
direct_mode="on-failure"
work=""
tools="${NPROXY_RW_TOOLS_DIR:-$here/.tools}"
out_file=""
keep=0

while [ $# -gt 0 ]; do
  case "$1" in
    --projects) projects_csv="$2"; shift 2 ;;
    --projects=*) projects_csv="${1#*=}"; shift ;;
    --clients) clients_csv="$2"; shift 2 ;;
    --clients=*) clients_csv="${1#*=}"; shift ;;
    --bin) bin="$2"; shift 2 ;;
    --bin=*) bin="${1#*=}"; shift ;;
    --upstream) upstream="$2"; shift 2 ;;
    --upstream=*) upstream="${1#*=}"; shift ;;
    --timeout) timeout_secs="$2"; shift 2 ;;
    --timeout=*) timeout_secs="${1#*=}"; shift ;;
    --direct) direct_mode="$2"; shift 2 ;;
    --direct=*) direct_mode="${1#*=}"; shift ;;
    --work) work="$2"; shift 2 ;;
    --work=*) work="${1#*=}"; shift ;;
    --tools-dir) tools="$2"; shift 2 ;;
    --tools-dir=*) tools="${1#*=}"; shift ;;
    --out) out_file="$2"; shift 2 ;;
    --out=*) out_file="${1#*=}"; shift ;;
    --keep) keep=1; shift ;;
    --list) rw list "$here/projects"; exit 0 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "unknown option: $1 (see --help)" >&2; exit 2 ;;
  esac
done

die() { echo "real-world: $*" >&2; exit 2; }

case "$direct_mode" in on-failure|always|never) ;; *) die "--direct must be on-failure, always or never" ;; esac
[[ "$timeout_secs" =~ ^[0-9]+$ ]] || die "--timeout takes seconds"
command -v node >/dev/null || die "node is required"
command -v npm >/dev/null || die "npm is required"
command -v curl >/dev/null || die "curl is required"

# --- what to run ---------------------------------------------------------------------------
projects=()
if [ -n "$projects_csv" ]; then
  IFS=, read -r -a projects <<<"$projects_csv"
  for p in "${projects[@]}"; do
    [ -f "$here/projects/$p/package.json" ] || die "no project $p (see --list)"
  done
else
  for d in "$here"/projects/*/; do
    [ -f "$d/package.json" ] && projects+=("$(basename "$d")")
  done
fi
clients=()
if [ -n "$clients_csv" ]; then
  IFS=, read -r -a clients <<<"$clients_csv"
  for c in "${clients[@]}"; do
    case " ${ALL_CLIENTS[*]} " in *" $c "*) ;; *) die "unknown client $c (npm, pnpm, yarn1, yarn4)" ;; esac
  done
else
  clients=("${ALL_CLIENTS[@]}")
fi

if [ -z "$bin" ]; then
  for b in "$root/target/release/nproxy-data-plane" "$root/target/debug/nproxy-data-plane"; do
    if [ -x "$b" ]; then bin="$b"; break; fi
  done
  [ -n "$bin" ] || die "no nproxy-data-plane in target/release or target/debug (build it, or pass --bin)"
fi
[ -x "$bin" ] || die "$bin is not an executable"

# --- the upstream, and redaction of its host from everything printed ------------------------
if [ -z "$upstream" ]; then
  upstream="$(cd "$root" && timeout 60 npm config get registry)" || die "npm config get registry failed"
fi
upstream="${upstream%/}/"
case "$upstream" in http://*|https://*) ;; *) die "the upstream must be an http(s) URL" ;; esac
up_host="${upstream#*://}"
up_host="${up_host%%/*}"
up_host="${up_host##*@}"
[ -n "$up_host" ] || die "cannot tell the upstream's host"
up_host_re="$(printf '%s' "$up_host" | sed 's/[][\.*^$/]/\\&/g')"
redact() { sed -u -e "s/$up_host_re/<upstream>/Ig"; }

# Everything this script prints goes through the redaction.
exec 3>&1 4>&2
# The redactors ignore Ctrl-C so the cleanup's last words still get through.
exec 1> >(trap '' INT TERM; redact >&3)
redact_out=$!
exec 2> >(trap '' INT TERM; redact >&4)
redact_err=$!

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

# --- working folder, nproxy process, cleanup ------------------------------------------------
if [ -z "$work" ]; then
  work="$(mktemp -d "${TMPDIR:-/tmp}/nproxy-real-world.XXXXXX")"
else
  mkdir -p "$work"
  work="$(cd "$work" && pwd)"
fi
# Always a fresh store and log, even in a reused --work folder.
rm -rf "$work/storage" "$work/runs" "$work/logs" "$work/nproxy.log"
mkdir -p "$work/logs" "$work/runs"
results="$work/results.tsv"
: >"$results"

nproxy_pid=""
cur_pid=""

# node_modules and client caches are large; lockfiles and logs are what explain a result.
prune_runs() {
  find "$work/runs" -maxdepth 5 -type d \( -name node_modules -o -name home \) -prune \
    -exec rm -rf {} + 2>/dev/null || true
}
any_failure=0

stop_nproxy() {
  [ -n "$nproxy_pid" ] || return 0
  if kill -0 "$nproxy_pid" 2>/dev/null; then
    kill -INT "$nproxy_pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
      kill -0 "$nproxy_pid" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$nproxy_pid" 2>/dev/null || true
  fi
  wait "$nproxy_pid" 2>/dev/null || true
  nproxy_pid=""
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  trap '' PIPE
  if [ -n "$cur_pid" ]; then
    kill -TERM "$cur_pid" 2>/dev/null || true
    wait "$cur_pid" 2>/dev/null || true
  fi
  stop_nproxy
  if [ "$keep" = 1 ]; then
    echo "working folder kept: $work" >&2
  elif [ "$any_failure" = 1 ] || [ "$rc" -ne 0 ]; then
    # Keep what explains a failure (logs, lockfiles), not the bulk.
    prune_runs
    rm -rf "$work/storage"
    echo "logs and lockfiles kept in: $work" >&2
  else
    rm -rf "$work"
  fi
  exec 1>&3 2>&4
  wait "$redact_out" "$redact_err" 2>/dev/null || true
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT
trap 'echo "terminated" >&2; exit 143' TERM

# --- pinned clients --------------------------------------------------------------------------
install_tools() {
  local stamp="$tools/.clients-$NPM_VERSION-$PNPM_VERSION-$YARN1_VERSION-$YARN4_VERSION"
  if [ ! -f "$stamp" ]; then
    log "installing npm $NPM_VERSION, pnpm $PNPM_VERSION, yarn $YARN1_VERSION, yarn $YARN4_VERSION into $tools"
    mkdir -p "$tools"
    [ -f "$tools/package.json" ] || echo '{"name":"nproxy-real-world-tools","private":true}' >"$tools/package.json"
    timeout 600 npm install --prefix "$tools" --no-audit --no-fund --loglevel=error \
      --registry "$upstream" \
      "npm@$NPM_VERSION" "pnpm@$PNPM_VERSION" "yarn@$YARN1_VERSION" "@yarnpkg/cli-dist@$YARN4_VERSION" \
      || die "installing the clients failed"
    touch "$stamp"
  fi
  local v
  for pair in "npm:$NPM_VERSION" "pnpm:$PNPM_VERSION" "yarn:$YARN1_VERSION" "@yarnpkg/cli-dist:$YARN4_VERSION"; do
    v="$(node -p "require('$tools/node_modules/${pair%:*}/package.json').version")" || die "${pair%:*} missing in $tools"
    [ "$v" = "${pair##*:}" ] || die "${pair%:*} in $tools is $v, expected ${pair##*:} (remove $tools and rerun)"
  done
}
install_tools
NPM_JS="$tools/node_modules/npm/bin/npm-cli.js"
PNPM_JS="$tools/node_modules/pnpm/bin/pnpm.cjs"
YARN1_JS="$tools/node_modules/yarn/bin/yarn.js"
YARN4_JS="$tools/node_modules/@yarnpkg/cli-dist/bin/yarn.js"

# Settings the user's npm needs to reach the upstream (CA file, proxies), carried into the
# isolated client configs.
npm_setting() {
  local v
  v="$(cd "$root" && timeout 30 npm config get "$1" 2>/dev/null || true)"
  case "$v" in ""|null|undefined) echo "" ;; *) echo "$v" ;; esac
}
ca_file="$(npm_setting cafile)"
https_proxy_setting="$(npm_setting https-proxy)"
http_proxy_setting="$(npm_setting proxy)"

# --- nproxy ----------------------------------------------------------------------------------
port="$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')"
nproxy_url="http://127.0.0.1:$port"
nproxy_log="$work/nproxy.log"
nproxy_restarts=0

start_nproxy() {
  local -a unset_env=()
  local v
  for v in $(compgen -e); do
    case "$v" in NPROXY_*) unset_env+=(-u "$v") ;; esac
  done
  env "${unset_env[@]}" RUST_LOG="${RUST_LOG:-info}" "$bin" \
    --upstream "$upstream" --listen "127.0.0.1:$port" --metrics-listen "" \
    --storage-dir "$work/storage" >>"$nproxy_log" 2>&1 &
  nproxy_pid=$!
  for _ in $(seq 1 150); do
    if curl -fsS --max-time 2 "$nproxy_url/-/ping" >/dev/null 2>&1; then return 0; fi
    if ! kill -0 "$nproxy_pid" 2>/dev/null; then
      tail -n 20 "$nproxy_log" >&2
      die "nproxy exited at start"
    fi
    sleep 0.2
  done
  tail -n 20 "$nproxy_log" >&2
  die "nproxy did not answer /-/ping within 30 s"
}

log "nproxy: $bin"
log "upstream: $upstream"
log "working folder: $work"
start_nproxy
log "nproxy listening on $nproxy_url (storage $work/storage, log $nproxy_log)"

# --- one install -----------------------------------------------------------------------------
# Client environment: nothing from the user's config (HOME, npm_config_*, YARN_*) leaks in.
client_env() { # home
  local home="$1"
  local -a e=(env -i "PATH=$PATH" "HOME=$home" "LANG=C.UTF-8" "CI=true"
    "npm_config_userconfig=$home/.npmrc" "npm_config_globalconfig=$home/global-npmrc"
    "XDG_CONFIG_HOME=$home/.config" "XDG_CACHE_HOME=$home/.cache"
    "XDG_DATA_HOME=$home/.local/share" "XDG_STATE_HOME=$home/.local/state"
    "YARN_IGNORE_PATH=1" "YARN_ENABLE_TELEMETRY=0" "COREPACK_ENABLE_STRICT=0"
    "NO_UPDATE_NOTIFIER=1")
  local v
  for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE SSL_CERT_DIR HTTP_PROXY HTTPS_PROXY http_proxy https_proxy TMPDIR; do
    [ -n "${!v:-}" ] && e+=("$v=${!v}")
  done
  if [ -n "${HTTP_PROXY:-}${HTTPS_PROXY:-}${http_proxy:-}${https_proxy:-}" ]; then
    local np="${NO_PROXY:-${no_proxy:-}}"
    e+=("NO_PROXY=${np:+$np,}127.0.0.1,localhost" "no_proxy=${np:+$np,}127.0.0.1,localhost")
  fi
  printf '%s\0' "${e[@]}"
}

write_configs() { # client project home registry
  local client="$1" proj="$2" home="$3" reg="$4"
  mkdir -p "$home"
  : >"$home/global-npmrc"
  {
    echo "registry=$reg"
    echo "cache=$home/npm-cache"
    echo "omit-lockfile-registry-resolved=false"
    echo "audit=false"
    echo "fund=false"
    echo "update-notifier=false"
    echo "ignore-scripts=true"
    [ -n "$ca_file" ] && echo "cafile=$ca_file"
    [ -n "$https_proxy_setting" ] && echo "https-proxy=$https_proxy_setting"
    [ -n "$http_proxy_setting" ] && echo "proxy=$http_proxy_setting"
  } >"$home/.npmrc"
  if [ "$client" = yarn4 ]; then
    {
      echo "npmRegistryServer: \"${reg%/}\""
      echo "unsafeHttpWhitelist:"
      echo "  - \"127.0.0.1\""
      echo "enableGlobalCache: false"
      echo "cacheFolder: \"$home/yarn4-cache\""
      echo "nodeLinker: node-modules"
      echo "enableTelemetry: false"
      echo "enableImmutableInstalls: false"
      echo "enableScripts: false"
      echo "npmMinimalAgeGate: 0"
      echo "httpTimeout: 300000"
      [ -n "$ca_file" ] && echo "httpsCaFilePath: \"$ca_file\""
      [ -n "$https_proxy_setting" ] && echo "httpsProxy: \"$https_proxy_setting\""
      [ -n "$http_proxy_setting" ] && echo "httpProxy: \"$http_proxy_setting\""
    } >"$proj/.yarnrc.yml"
    # Marks the project root, whatever folders lie above it.
    [ -f "$proj/yarn.lock" ] || : >"$proj/yarn.lock"
  fi
}

clear_client_state() { # project home
  rm -rf "$2/npm-cache" "$2/pnpm-store" "$2/yarn1-cache" "$2/yarn4-cache" "$2/.cache" "$2/.local" \
    "$2/.yarn" "$1/.yarn"
  find "$1" -maxdepth 4 -type d -name node_modules -prune -exec rm -rf {} + 2>/dev/null || true
}

# Runs one install; sets RES (cell text) and RES_OK (1/0).
run_install() { # client mode(cold|frozen) project home registry logfile
  local client="$1" mode="$2" proj="$3" home="$4" reg="$5" logf="$6"
  local -a cmd
  case "$client:$mode" in
    npm:cold) cmd=(node "$NPM_JS" install --ignore-scripts --no-audit --no-fund) ;;
    npm:frozen) cmd=(node "$NPM_JS" ci --ignore-scripts --no-audit --no-fund) ;;
    pnpm:*)
      cmd=(node "$PNPM_JS" install --ignore-scripts --registry "$reg" --store-dir "$home/pnpm-store" --reporter=append-only)
      if [ "$mode" = cold ]; then cmd+=(--no-frozen-lockfile); else cmd+=(--frozen-lockfile); fi ;;
    yarn1:*)
      cmd=(node "$YARN1_JS" install --non-interactive --no-progress --ignore-scripts --ignore-engines
        --registry "$reg" --cache-folder "$home/yarn1-cache" --network-timeout 300000)
      [ "$mode" = frozen ] && cmd+=(--frozen-lockfile) ;;
    yarn4:*)
      cmd=(node "$YARN4_JS" install --mode=skip-build)
      [ "$mode" = frozen ] && cmd+=(--immutable) ;;
  esac
  local -a envv
  mapfile -d '' envv < <(client_env "$home")
  {
    echo "# $client $mode in $proj"
    echo "# registry $reg"
    echo "# \$ ${cmd[*]}"
  } >"$logf"
  local t0 t1 rc=0
  t0=$EPOCHREALTIME
  (cd "$proj" && exec timeout -k 20 "$timeout_secs" "${envv[@]}" "${cmd[@]}") >>"$logf" 2>&1 </dev/null &
  cur_pid=$!
  wait "$cur_pid" || rc=$?
  cur_pid=""
  t1=$EPOCHREALTIME
  local secs
  secs="$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }')"
  echo "# exit $rc after ${secs}s" >>"$logf"
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then
    RES="TIMEOUT ${secs}s"; RES_OK=0; return
  fi
  if [ "$rc" -ne 0 ]; then
    RES="FAIL ${secs}s"; RES_OK=0; return
  fi
  local deps
  if ! deps="$(rw check-deps "$proj")"; then
    echo "# installed tree incomplete: $deps" >>"$logf"
    RES="FAIL(tree) ${secs}s"; RES_OK=0; return
  fi
  RES="ok ${secs}s"; RES_OK=1
}

# A cold install and (optionally) a frozen one in a fresh copy of the project.
# Sets COLD COLD_OK FROZEN FROZEN_OK LOCK LOCK_OK.
install_pair() { # project client label registry want_frozen check_lock
  local project="$1" client="$2" label="$3" reg="$4" want_frozen="$5" check_lock="$6"
  local dir="$work/runs/$project.$client.$label"
  local proj="$dir/project" home="$dir/home"
  rm -rf "$dir"
  mkdir -p "$dir"
  COLD="-"; COLD_OK=""; FROZEN="-"; FROZEN_OK=""; LOCK="-"; LOCK_OK=""
  local prep
  if ! prep="$(rw prepare "$here/projects/$project" "$proj" "$client" "$reg" "$upstream")"; then
    echo "preparing $project failed: $prep" >&2
    COLD="FAIL(prepare)"; COLD_OK=0; return
  fi
  write_configs "$client" "$proj" "$home" "$reg"
  local logf="$work/logs/$project.$client.$label.cold.log"
  log "$project / $client: cold install via $label"
  run_install "$client" cold "$proj" "$home" "$reg" "$logf"
  COLD="$RES"; COLD_OK="$RES_OK"
  log "$project / $client: cold via $label: $COLD"
  [ "$COLD_OK" = 1 ] || return 0
  if [ "$check_lock" = 1 ]; then
    local lockerr="$work/logs/$project.$client.$label.lockfile.log"
    if LOCK="$(rw check-lock "$proj" "$client" "$nproxy_url" "$up_host" 2>"$lockerr")"; then LOCK_OK=1; else LOCK_OK=0; fi
    log "$project / $client: lockfile: $LOCK"
  fi
  [ "$want_frozen" = 1 ] || return 0
  clear_client_state "$proj" "$home"
  logf="$work/logs/$project.$client.$label.frozen.log"
  log "$project / $client: frozen install via $label"
  run_install "$client" frozen "$proj" "$home" "$reg" "$logf"
  FROZEN="$RES"; FROZEN_OK="$RES_OK"
  log "$project / $client: frozen via $label: $FROZEN"
}

nproxy_alive_or_restart() {
  if ! kill -0 "$nproxy_pid" 2>/dev/null; then
    log "nproxy DIED; restarting it on the same port and storage"
    wait "$nproxy_pid" 2>/dev/null || true
    nproxy_pid=""
    nproxy_restarts=$((nproxy_restarts + 1))
    start_nproxy
    return 1
  fi
  return 0
}

failures=()   # "label|logfile" lines for the report
faults=0

for project in "${projects[@]}"; do
  for client in "${clients[@]}"; do
    install_pair "$project" "$client" nproxy "$nproxy_url/" 1 1
    n_cold="$COLD" n_cold_ok="$COLD_OK" n_frozen="$FROZEN" n_frozen_ok="$FROZEN_OK"
    n_lock="$LOCK" n_lock_ok="$LOCK_OK"
    died=0
    nproxy_alive_or_restart || died=1

    failed_stage=""
    if [ "$n_cold_ok" != 1 ]; then failed_stage=cold
    elif [ "$n_frozen_ok" != 1 ]; then failed_stage=frozen
    fi
    [ "$n_cold_ok" = 1 ] || failures+=("$project/$client cold via nproxy|$work/logs/$project.$client.nproxy.cold.log")
    [ "$n_cold_ok" != 1 ] || [ "$n_frozen_ok" = 1 ] || failures+=("$project/$client frozen via nproxy|$work/logs/$project.$client.nproxy.frozen.log")
    [ "$n_lock_ok" != 0 ] || failures+=("$project/$client lockfile|$work/logs/$project.$client.nproxy.lockfile.log")

    direct="-"
    d_ok=""
    if [ "$direct_mode" = always ] || { [ "$direct_mode" = on-failure ] && [ -n "$failed_stage" ]; }; then
      want_frozen=1
      [ "$direct_mode" = on-failure ] && [ "$failed_stage" = cold ] && want_frozen=0
      install_pair "$project" "$client" direct "$upstream" "$want_frozen" 0
      if [ "$want_frozen" = 1 ] && [ "$COLD_OK" = 1 ]; then
        direct="$COLD / $FROZEN"
        [ "$FROZEN_OK" = 1 ] && direct="ok ${COLD#ok } / ${FROZEN#ok }"
      else
        direct="$COLD"
      fi
      # Did the upstream manage the step that failed through nproxy?
      case "$failed_stage" in
        cold) d_ok="$COLD_OK" ;;
        frozen) if [ "$COLD_OK" = 1 ] && [ "$FROZEN_OK" = 1 ]; then d_ok=1; else d_ok=0; fi ;;
      esac
      [ "$COLD_OK" = 1 ] || failures+=("$project/$client cold straight from the upstream|$work/logs/$project.$client.direct.cold.log")
      [ "$COLD_OK" != 1 ] || [ "$want_frozen" != 1 ] || [ "$FROZEN_OK" = 1 ] \
        || failures+=("$project/$client frozen straight from the upstream|$work/logs/$project.$client.direct.frozen.log")
    fi

    if [ -n "$failed_stage" ]; then
      case "$d_ok" in
        1) verdict="NPROXY" ;;
        0) verdict="upstream fails too" ;;
        *) verdict="FAIL (not compared)" ;;
      esac
    elif [ "$n_lock_ok" = 0 ]; then
      verdict="NPROXY"
    else
      verdict="pass"
    fi
    [ "$died" = 1 ] && verdict="NPROXY (crashed)"
    case "$verdict" in NPROXY*|FAIL*) faults=$((faults + 1)) ;; esac
    [ "$verdict" = pass ] || any_failure=1
    log "$project / $client: $verdict"
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$project" "$client" "$n_cold" "$n_frozen" "$n_lock" "$direct" "$verdict" >>"$results"
    # node_modules and caches are large; keep lockfiles and logs.
    prune_runs
  done
done

# --- report ----------------------------------------------------------------------------------
{
  echo
  echo "nproxy $("$bin" --version 2>/dev/null | awk '{print $NF}') via $nproxy_url, upstream $upstream"
  echo "clients: npm $NPM_VERSION, pnpm $PNPM_VERSION, yarn $YARN1_VERSION, yarn $YARN4_VERSION; node $(node --version)"
  echo
  rw table "$results"
  echo
  echo "cold: fresh client cache, no lockfile; frozen: from that lockfile with a fresh client cache;"
  echo "lockfile URLs: all on nproxy (named = tarball URLs the package.json itself names);"
  case "$direct_mode" in
    on-failure) echo "upstream direct: the same install without nproxy, run when one through nproxy failed." ;;
    always) echo "upstream direct: the same installs (cold / frozen) without nproxy." ;;
    never) echo "upstream direct: not run (--direct never)." ;;
  esac
  [ "$nproxy_restarts" -eq 0 ] || echo "nproxy crashed and was restarted $nproxy_restarts time(s)."
} >"$work/table.txt"
cat "$work/table.txt"
if [ -n "$out_file" ]; then
  mkdir -p "$(dirname "$out_file")"
  redact <"$work/table.txt" >"$out_file"
fi

if [ ${#failures[@]} -gt 0 ]; then
  echo
  echo "== failures (last lines of each log) =="
  for f in "${failures[@]}"; do
    echo "--- ${f%%|*}: ${f#*|}"
    # The client's error lines first (yarn 1 ends with a stack trace), then how it ended.
    grep -E -i -m 8 'error|err!|err_|YN0001|YN0018|YN0035|YN0028|FAIL|not on nproxy|incomplete' "${f#*|}" 2>/dev/null \
      | grep -v -E '^\s+at ' | cut -c1-300 || true
    echo "  ..."
    tail -n 3 "${f#*|}" 2>/dev/null | cut -c1-300 || true
  done
fi

problems="$(grep -E '(WARN|ERROR)' "$nproxy_log" | sed -E 's/^[^ ]+ +//' | sort | uniq -c | sort -rn | head -n 40 || true)"
if [ -n "$problems" ]; then
  echo
  echo "== nproxy warnings and errors (count, message; full log: $nproxy_log) =="
  echo "$problems" | cut -c1-400
fi

if [ "$faults" -gt 0 ]; then
  echo
  echo "$faults project/client pair(s) failed because of nproxy (or could not be compared)."
  exit 1
fi
exit 0
