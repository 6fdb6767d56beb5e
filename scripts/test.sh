#!/usr/bin/env bash
# Runs every test of the project. Works on a fresh clone: installs what it needs
# (npm and pip packages into project-local folders) and needs PostgreSQL at
# 127.0.0.1:5432 (trust auth) for the aggregator's tests; with
# ../shared/tools/timescaledb present it installs TimescaleDB and runs the
# TimescaleDB path's tests on a private cluster too.
set -euo pipefail
cd "$(dirname "$0")/.."

# moto in server mode stands in for AWS (agent collectors, enrolment via STS).
if ! command -v moto_server >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.2.5'
fi

# aiosmtpd: the real SMTP server the aggregator's alert tests deliver email to
# (aggregator/tests/it/alerts.rs starts it with `python3 -m aiosmtpd`;
# alerts_smtp_tls.rs runs its Controller with STARTTLS and AUTH required).
if ! python3 -c 'import aiosmtpd' >/dev/null 2>&1; then
  python3 -m pip install --quiet --disable-pip-version-check 'aiosmtpd==1.4.6'
fi

# Cloud Carbon Footprint's own npm package: the reference the `ccf` methodology
# is compared against (pinned in package-lock.json).
if [ ! -d tests/ccf-reference/node_modules ]; then
  npm ci --prefix tests/ccf-reference --no-audit --no-fund --loglevel=error
fi
npm test --prefix tests/ccf-reference

bash scripts/deny.sh  # cargo-deny (deny.toml): licences, bans, sources; advisories when the RustSec database is reachable

# The TimescaleDB storage path: ../shared/tools/timescaledb holds a prebuilt
# TimescaleDB for this machine's PostgreSQL 15 (test infrastructure, not part
# of the repository). install.sh makes the extension available to every
# cluster (on 127.0.0.1:5432 it is then installed but not preloaded, which
# the `auto` storage choice must turn into the native path), and
# start-cluster.sh starts a private cluster with it preloaded. The
# workspace tests then also compare both paths (CANOPY_TEST_TIMESCALEDB_URL),
# and the aggregator's integration suite runs a second time on the
# TimescaleDB path (CANOPY_TEST_STORAGE=timescaledb). Without ../shared
# both are skipped, and said so.
tsdb_tools=${CANOPY_TIMESCALEDB_TOOLS:-$(cd .. && pwd)/shared/tools/timescaledb}
# A private cluster of this run only: a fresh folder and a free port, never
# a server some earlier run (or a session) left on a fixed port, which may
# be stopped under the tests.
free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}
tsdb_port=${CANOPY_TIMESCALEDB_PORT:-$(free_port)}
tsdb_dir_made=
if [ -n "${CANOPY_TIMESCALEDB_DIR:-}" ]; then tsdb_dir=$CANOPY_TIMESCALEDB_DIR
else tsdb_dir=$(mktemp -d "${TMPDIR:-/tmp}/canopy-timescaledb.XXXXXX"); tsdb_dir_made=1; fi
tsdb_started=
if [ ! -f "$tsdb_tools/install.sh" ] || [ ! -f "$tsdb_tools/start-cluster.sh" ]; then
  echo "SKIPPED: the TimescaleDB storage path is not tested: $tsdb_tools not found (the tests comparing both paths print why they skip)"
elif ! bash "$tsdb_tools/install.sh"; then
  echo "SKIPPED: the TimescaleDB storage path is not tested: $tsdb_tools/install.sh failed (it needs root)"
else
  chmod 755 "$tsdb_dir"
  bash "$tsdb_tools/start-cluster.sh" "$tsdb_port" "$tsdb_dir"
  tsdb_started=1
  pg_isready -h 127.0.0.1 -p "$tsdb_port" || { echo "the TimescaleDB cluster on port $tsdb_port is not answering; its log:"; cat "$tsdb_dir/server.log"; exit 1; }
  export CANOPY_TEST_TIMESCALEDB_URL="postgres://postgres@127.0.0.1:$tsdb_port/postgres"
  stop_tsdb() {
    if [ -n "$tsdb_started" ]; then
      bin=$(pg_config --bindir 2>/dev/null || echo /usr/lib/postgresql/15/bin)
      if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$bin/pg_ctl" -D "$tsdb_dir/data" stop -m fast >/dev/null
      else "$bin/pg_ctl" -D "$tsdb_dir/data" stop -m fast >/dev/null; fi
      if [ -n "$tsdb_dir_made" ]; then rm -rf "$tsdb_dir"; fi
    fi
  }
  trap stop_tsdb EXIT
fi

cargo test --workspace --locked

if [ -n "${CANOPY_TEST_TIMESCALEDB_URL:-}" ]; then
  # Builds the aggregator once more (-p alone unifies features differently
  # from --workspace: about 2 minutes), then runs the suite on TimescaleDB.
  tsdb_t0=$(date +%s)
  CANOPY_TEST_STORAGE=timescaledb cargo test -p canopy-aggregator --test it --locked
  echo "TimescaleDB run of the aggregator's integration suite: $(( $(date +%s) - tsdb_t0 )) s"
fi

# Browser test of the dashboard on a running `canopy demo`: Debian's Chromium
# driven by playwright-core (pinned in tests/browser/package-lock.json).
if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium
fi
bash tests/browser/run.sh

# Infrastructure as code: cfn-lint, checkov, HCL reference checks, agent IAM
# policy (against the agent binary the workspace tests just built).
CANOPY_AGENT_BIN=target/debug/canopy-agent CANOPY_AGGREGATOR_BIN=target/debug/canopy-aggregator bash tests/iac/run.sh
