#!/usr/bin/env bash
# Infrastructure-as-code suite: cfn-lint, checkov, HCL reference checks,
# agent IAM equality. Installs its tools on first use (a venv in
# tests/iac/.venv from requirements.txt, npm packages from package-lock.json).
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/pytest ] || ! cmp -s requirements.txt .venv/requirements.txt; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/requirements.txt
fi
if [ ! -d node_modules/@cdktf/hcl2json ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
exec .venv/bin/python -m pytest -q "$@"
