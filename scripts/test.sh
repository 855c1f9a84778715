#!/usr/bin/env bash
# The whole test suite, as CI runs it: installs what it needs, then the gates, then the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/install-test-tools.sh
# The README's run command's install step (the binary it runs is tested by the suite).
./scripts/dev.sh --install-only
cargo fmt --all --check
# No import cycles between a crate's modules (issue 11).
python3 scripts/check-cycles.py
# deploy/: yamllint, Kubernetes schemas, hadolint, haproxy -c, env names against the code.
./scripts/validate-deploy.sh
cargo clippy --workspace --all-targets --locked -- -D warnings
# The integration tests start the real binaries.
cargo build --workspace --bins --locked
# The PostgreSQL server the tests share is started by the first test that needs it and
# stopped here, pass or fail.
trap 'cargo run -q --locked -p nproxy-test-postgres -- stop || true' EXIT
cargo nextest run --workspace --locked --profile ci
