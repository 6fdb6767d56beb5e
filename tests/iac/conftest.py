"""Shared paths and helpers of the infrastructure-as-code tests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cfnlint.decode import cfn_yaml

REPO = Path(__file__).resolve().parents[2]
STACKSET_DIR = REPO / "deploy-stackset"
TERRAFORM_DIR = REPO / "terraform"
DOCKER_DIR = REPO / "docker"
TEMPLATES = sorted(STACKSET_DIR.glob("*.yaml"))
BIN_DIR = Path(sys.executable).parent


def agent_command(*args: str) -> list[str]:
    """`canopy-agent ARGS`: the binary named by CANOPY_AGENT_BIN (scripts/test.sh
    points it at the one `cargo test --workspace` just built), else `cargo run`.
    Building the agent alone would resolve different dependency features than
    the workspace build and compile the AWS SDK a second time."""
    binary = os.environ.get("CANOPY_AGENT_BIN")
    if binary:
        path = Path(binary)
        if not path.is_absolute():
            path = REPO / path
        return [str(path), *args]
    return ["cargo", "run", "-q", "-p", "canopy-agent", "--bin", "canopy-agent", "--", *args]


def tool(name: str) -> str:
    """A command installed next to this Python (the suite's venv), else on PATH."""
    local = BIN_DIR / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed: pip install -r tests/iac/requirements.txt")
    return found


def load_template(path: Path) -> dict:
    """A CloudFormation template with its short-form tags (!Ref, !Sub) decoded."""
    return cfn_yaml.load(str(path))


def checkov(directory: Path, framework: str, out_dir: Path) -> subprocess.CompletedProcess:
    """Runs checkov offline on one directory, writing CLI and JSON reports to out_dir."""
    env = dict(os.environ, BC_SKIP_MAPPING="TRUE", LOG_LEVEL="WARNING")
    return subprocess.run(
        [
            tool("checkov"), "-d", str(directory), "--framework", framework, "--skip-download",
            "-o", "cli", "-o", "json", "--output-file-path", str(out_dir),
        ],
        capture_output=True, text=True, env=env, cwd=REPO,
    )
