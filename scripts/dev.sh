#!/usr/bin/env bash
# The README's "run nproxy" command: installs what the build needs (as root, or through
# sudo for a sudo user), builds nproxyctl in release mode and runs `nproxyctl dev` with the
# arguments given (e.g. --upstream "$(npm config get registry)", --config nproxy.toml).
# `--install-only` stops after the install step (the test command checks it that way).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if ! command -v cmake >/dev/null; then
  echo "installing cmake (pingora's build needs it)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq cmake >/dev/null
fi
if [ "${1:-}" = "--install-only" ]; then
  echo "build dependencies ready"
  exit 0
fi
command -v cargo >/dev/null || { echo "cargo is missing: install Rust with rustup first" >&2; exit 1; }
cd "$root"
cargo build --release --locked -p nproxyctl
exec "$root/target/release/nproxyctl" dev "$@"
