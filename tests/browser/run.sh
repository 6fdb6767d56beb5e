#!/usr/bin/env bash
# Browser test: starts `canopy demo` against a fresh database on the
# machine's PostgreSQL (127.0.0.1:5432), waits for its backfill, drives the
# dashboard in Debian's Chromium (tests/browser/dashboard.test.mjs), then
# stops the demo and drops the database. Needs the `canopy` binary built by
# `cargo test --workspace` (target/debug/canopy) and /usr/bin/chromium.
# CANOPY_UPDATE_SCREENSHOT=1 copies the overview screenshot to docs/.
set -euo pipefail
cd "$(dirname "$0")/../.."

bin=${CANOPY_BIN:-target/debug/canopy}
# Workspace-wide selection (same features as the tests): only links the binary.
[ -n "${CANOPY_BIN:-}" ] || cargo build --workspace --all-targets --locked
db="canopy_browser_$$"
work=$(mktemp -d)
demo_pid=""
cleanup() {
  if [ -n "$demo_pid" ]; then kill -TERM "$demo_pid" 2>/dev/null || true; wait "$demo_pid" 2>/dev/null || true; fi
  psql -h 127.0.0.1 -U postgres -d postgres -qc "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# The CSV cells of the exports (formula neutralisation), with node alone.
node --test tests/browser/csv.test.mjs
psql -h 127.0.0.1 -U postgres -d postgres -qc "CREATE DATABASE $db"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
RUST_LOG=warn "$bin" demo --database-url "postgres://postgres@127.0.0.1:5432/$db" \
  --http-listen "127.0.0.1:$port" --accounts 6 --resources-per-account 20 --backfill-days 9 \
  --state-dir "$work/outboxes" --ready-file "$work/ready" --no-progress >"$work/demo.log" 2>&1 &
demo_pid=$!
for _ in $(seq 1 600); do
  [ -s "$work/ready" ] && break
  if ! kill -0 "$demo_pid" 2>/dev/null; then cat "$work/demo.log"; echo "canopy demo exited early" >&2; exit 1; fi
  sleep 0.5
done
[ -s "$work/ready" ] || { cat "$work/demo.log"; echo "canopy demo not ready within 300 s" >&2; exit 1; }
url=$(cat "$work/ready")

if [ ! -d tests/browser/node_modules ]; then
  npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error
fi
shots="target/browser-screenshots"
SCREENSHOT_DIR="$shots" node tests/browser/dashboard.test.mjs "$url"
if [ "${CANOPY_UPDATE_SCREENSHOT:-0}" = 1 ]; then
  cp "$shots/dashboard.png" docs/screenshot-dashboard.png
fi
