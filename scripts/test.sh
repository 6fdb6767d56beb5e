#!/usr/bin/env bash
# Runs every test of the project. Works on a fresh clone: installs what it needs
# (npm and pip packages into project-local folders) and needs PostgreSQL at
# 127.0.0.1:5432 (trust auth) for the aggregator's tests.
set -euo pipefail
cd "$(dirname "$0")/.."

# moto in server mode stands in for AWS (agent collectors, enrolment via STS).
if ! command -v moto_server >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi

# Cloud Carbon Footprint's own npm package: the reference the `ccf` methodology
# is compared against (pinned in package-lock.json).
if [ ! -d tests/ccf-reference/node_modules ]; then
  npm ci --prefix tests/ccf-reference --no-audit --no-fund --loglevel=error
fi
npm test --prefix tests/ccf-reference

bash scripts/deny.sh  # cargo-deny (deny.toml): licences, bans, sources; advisories when the RustSec database is reachable

cargo test --workspace --locked

# Browser test of the dashboard on a running `canopy demo`: Debian's Chromium
# driven by playwright-core (pinned in tests/browser/package-lock.json).
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
bash tests/browser/run.sh

# Infrastructure as code: cfn-lint, checkov, HCL reference checks, agent IAM
# policy (against the agent binary the workspace tests just built).
CANOPY_AGENT_BIN=target/debug/canopy-agent CANOPY_AGGREGATOR_BIN=target/debug/canopy-aggregator bash tests/iac/run.sh
