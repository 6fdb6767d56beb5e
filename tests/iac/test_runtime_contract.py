"""The deployment and the binaries agree on how the aggregator is configured:
every CANOPY_* variable the Terraform module gives the aggregator's container
is one `canopy-aggregator serve` reads, the container's command is a real
subcommand, and the management-account role allows every AWS Organizations
action the aggregator calls (`canopy-aggregator iam-actions`)."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

from conftest import REPO, STACKSET_DIR, TERRAFORM_DIR, load_template

ECS_TF = TERRAFORM_DIR / "modules" / "aggregator" / "ecs.tf"


def aggregator_command(*args: str) -> list[str]:
    """`canopy-aggregator ARGS`: the binary named by CANOPY_AGGREGATOR_BIN
    (scripts/test.sh points it at the workspace build), else `cargo run`."""
    binary = os.environ.get("CANOPY_AGGREGATOR_BIN")
    if binary:
        path = Path(binary)
        if not path.is_absolute():
            path = REPO / path
        return [str(path), *args]
    return ["cargo", "run", "-q", "-p", "canopy-aggregator", "--bin", "canopy-aggregator", "--", *args]


def run(*args: str) -> str:
    done = subprocess.run(aggregator_command(*args), capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, f"canopy-aggregator {' '.join(args)} failed:\n{done.stderr}"
    return done.stdout


def container_variables() -> set[str]:
    """Names of the environment variables and secrets of the aggregator container."""
    text = ECS_TF.read_text()
    names = set(re.findall(r'name\s*=\s*"(CANOPY_[A-Z0-9_]+)"', text))
    assert names, f"no CANOPY_* variables found in {ECS_TF}"
    return names


def test_every_container_variable_is_read_by_serve():
    help_text = run("serve", "--help")
    unread = sorted(n for n in container_variables() if n not in help_text)
    assert not unread, f"{ECS_TF.name} sets variables `canopy-aggregator serve` does not read: {unread}"


def test_the_container_is_given_a_ca_certificate_and_key_and_a_database():
    names = container_variables()
    for needed in ("CANOPY_DATABASE_URL", "CANOPY_CA_CERT_PEM", "CANOPY_CA_KEY_PEM", "CANOPY_QUIC_LISTEN", "CANOPY_SERVER_NAMES"):
        assert needed in names, f"{ECS_TF.name} does not set {needed}"


def test_the_container_command_is_a_subcommand_with_real_flags():
    text = ECS_TF.read_text()
    match = re.search(r'command\s*=\s*\[([^\]]*)\]', text)
    assert match, "the aggregator container has no command"
    words = re.findall(r'"([^"]*)"', match.group(1))
    assert words and words[0] == "serve", words
    help_text = run("serve", "--help")
    for flag in (w for w in words[1:] if w.startswith("--")):
        assert flag in help_text, f"`serve` has no flag {flag}"


def test_management_role_allows_exactly_the_organizations_actions_the_aggregator_calls():
    needed = json.loads(run("iam-actions"))
    assert needed == sorted(set(needed)) and needed, needed
    resources = load_template(STACKSET_DIR / "management-account.yaml")["Resources"]
    granted: set[str] = set()
    for resource in resources.values():
        if resource.get("Type") not in ("AWS::IAM::Role", "AWS::IAM::ManagedPolicy", "AWS::IAM::Policy"):
            continue
        props = resource.get("Properties", {})
        documents = [p["PolicyDocument"] for p in props.get("Policies", [])]
        if "PolicyDocument" in props:
            documents.append(props["PolicyDocument"])
        for doc in documents:
            for statement in doc["Statement"]:
                if statement.get("Effect") != "Allow":
                    continue
                actions = statement["Action"]
                granted.update([actions] if isinstance(actions, str) else actions)
    missing = [a for a in needed if a not in granted]
    assert not missing, f"management-account.yaml does not allow {missing}"
    # Least privilege: no Organizations action the code does not call.
    organizations = sorted(a for a in granted if a.startswith("organizations:"))
    unused = [a for a in organizations if a not in needed]
    assert not unused, f"management-account.yaml allows Organizations actions the aggregator never calls: {unused}"
    assert organizations == needed
