"""checkov on the CloudFormation, Terraform and Dockerfiles: no failed check,
no parsing error, and every skipped check justified inline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import DOCKER_DIR, STACKSET_DIR, TERRAFORM_DIR, checkov

TARGETS = [
    (STACKSET_DIR, "cloudformation", 40),
    (TERRAFORM_DIR, "terraform", 150),
    (DOCKER_DIR, "dockerfile", 50),
]


def scan(directory: Path, framework: str, out_dir: Path) -> tuple[str, dict]:
    run = checkov(directory, framework, out_dir)
    assert run.returncode in (0, 1), run.stdout + run.stderr
    cli = (out_dir / "results_cli.txt").read_text()
    report = json.loads((out_dir / "results_json.json").read_text())
    return cli, report


@pytest.mark.parametrize("directory,framework,minimum_passed", TARGETS, ids=[t[1] for t in TARGETS])
def test_checkov_passes(directory, framework, minimum_passed, tmp_path):
    cli, report = scan(directory, framework, tmp_path)
    # checkov exits 0 when a file does not parse, so its output is checked too.
    assert "Parsing errors" not in cli and "parsing error" not in cli.lower(), cli
    summary = report["summary"]
    assert summary["parsing_errors"] == 0
    failed = [(c["check_id"], c["resource"], c["file_path"]) for c in report["results"]["failed_checks"]]
    assert failed == [] and summary["failed"] == 0
    # It really scanned the files.
    assert summary["passed"] >= minimum_passed, summary
    for skipped in report["results"].get("skipped_checks", []):
        reason = (skipped["check_result"].get("suppress_comment") or "").strip()
        assert len(reason) >= 30 and reason != "No comment provided", (skipped["check_id"], skipped["resource"], reason)


def test_parsing_error_is_detected(tmp_path):
    source = tmp_path / "tf"
    source.mkdir()
    (source / "main.tf").write_text('resource "aws_s3_bucket" "b" {\n  bucket = \n')
    out = tmp_path / "out"
    out.mkdir()
    run = checkov(source, "terraform", out)
    cli = (out / "results_cli.txt").read_text() if (out / "results_cli.txt").exists() else run.stdout
    assert run.returncode == 0  # the reason the suite looks at the output
    assert "Parsing errors" in cli or "Parsing errors" in run.stdout


def test_unjustified_failure_is_detected(tmp_path):
    source = tmp_path / "tf"
    source.mkdir()
    (source / "main.tf").write_text(
        'resource "aws_sqs_queue" "plain" {\n  name = "plain"\n  sqs_managed_sse_enabled = false\n}\n'
    )
    out = tmp_path / "out"
    out.mkdir()
    _, report = scan(source, "terraform", out)
    assert "CKV_AWS_27" in {c["check_id"] for c in report["results"]["failed_checks"]}
