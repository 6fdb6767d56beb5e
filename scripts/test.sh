#!/usr/bin/env bash
# Runs every test of the project. Works on a fresh clone: installs what it needs.
set -euo pipefail
cd "$(dirname "$0")/.."

# Cloud Carbon Footprint's own npm package, used as the reference that the
# `ccf` methodology is compared against (pinned in package-lock.json).
if [ -f tests/ccf-reference/package-lock.json ]; then
  if [ ! -d tests/ccf-reference/node_modules ]; then
    npm ci --prefix tests/ccf-reference --no-audit --no-fund --loglevel=error
  fi
  npm test --prefix tests/ccf-reference
fi

cargo test --workspace --locked
