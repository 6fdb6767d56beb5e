"""CloudFormation templates: cfn-lint clean, and the properties the
deployment relies on (StackSet wiring, change feed, durable outbox)."""

from __future__ import annotations

import re
import subprocess

import pytest

from conftest import STACKSET_DIR, TEMPLATES, load_template, tool


def test_templates_exist():
    assert [t.name for t in TEMPLATES] == ["agent.yaml", "management-account.yaml", "stackset.yaml"]


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda p: p.name)
def test_cfn_lint_reports_nothing(template):
    run = subprocess.run([tool("cfn-lint"), str(template)], capture_output=True, text=True)
    assert run.returncode == 0 and run.stdout.strip() == "", run.stdout + run.stderr


def test_cfn_lint_would_catch_an_error(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        (STACKSET_DIR / "agent.yaml").read_text().replace("VisibilityTimeout: 120", "VisibilityTimeout: 99999")
    )
    run = subprocess.run([tool("cfn-lint"), str(broken)], capture_output=True, text=True)
    assert run.returncode == 2 and "E3034 99999 is greater than the maximum of 43200" in run.stdout


def test_stackset_is_service_managed_with_auto_deployment_and_region_parameter():
    t = load_template(STACKSET_DIR / "stackset.yaml")
    props = t["Resources"]["AgentStackSet"]["Properties"]
    assert props["PermissionModel"] == "SERVICE_MANAGED"
    assert props["AutoDeployment"] == {"Enabled": True, "RetainStacksOnAccountRemoval": False}
    assert t["Parameters"]["Regions"]["Type"] == "CommaDelimitedList"
    (group,) = props["StackInstancesGroup"]
    assert group["Regions"] == {"Ref": "Regions"}
    assert group["DeploymentTargets"]["OrganizationalUnitIds"] == {"Ref": "TargetOrganizationalUnitIds"}


def test_stackset_passes_every_required_agent_parameter_and_nothing_unknown():
    agent = load_template(STACKSET_DIR / "agent.yaml")["Parameters"]
    stackset = load_template(STACKSET_DIR / "stackset.yaml")
    passed = {p["ParameterKey"] for p in stackset["Resources"]["AgentStackSet"]["Properties"]["Parameters"]}
    required = {k for k, v in agent.items() if "Default" not in v}
    assert passed <= set(agent), passed - set(agent)
    assert required <= passed, required - passed
    for key in passed:
        assert key in stackset["Parameters"], f"stackset.yaml passes {key} without declaring it"


def test_change_feed_is_encrypted_with_a_dead_letter_queue():
    r = load_template(STACKSET_DIR / "agent.yaml")["Resources"]
    queue = r["ChangeQueue"]["Properties"]
    dlq = r["ChangeDeadLetterQueue"]["Properties"]
    assert queue["KmsMasterKeyId"] == {"Ref": "AgentKey"} and dlq["KmsMasterKeyId"] == {"Ref": "AgentKey"}
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": ["ChangeDeadLetterQueue", "Arn"]}
    assert r["AgentKey"]["Properties"]["EnableKeyRotation"] is True
    (target,) = r["ResourceChangeRule"]["Properties"]["Targets"]
    assert target["Arn"] == {"Fn::GetAtt": ["ChangeQueue", "Arn"]}
    sources = set(r["ResourceChangeRule"]["Properties"]["EventPattern"]["source"])
    assert {"aws.ec2", "aws.rds", "aws.s3", "aws.lambda", "aws.ecs", "aws.eks", "aws.tag"} <= sources
    log_group = r["AgentLogGroup"]["Properties"]
    assert log_group["RetentionInDays"] == {"Ref": "LogRetentionDays"} and "KmsKeyId" in log_group


def test_outbox_lives_on_its_own_encrypted_volume_that_outlives_the_instance():
    t = load_template(STACKSET_DIR / "agent.yaml")
    volume = t["Resources"]["OutboxVolume"]
    assert volume["Type"] == "AWS::EC2::Volume"
    assert volume["UpdateReplacePolicy"] == "Snapshot"
    assert volume["Properties"]["Encrypted"] is True
    user_data = t["Resources"]["AgentInstance"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"][0]
    # The host mounts the volume before the agent starts, and the agent's
    # outbox directory is on it.
    assert "ExecStartPre=/usr/local/sbin/canopy-outbox-mount" in user_data
    assert "-v /var/lib/canopy/outbox:/var/lib/canopy/outbox" in user_data
    assert "--read-only" in user_data and "--user 65532:65532" in user_data
    tags = {tag["Key"]: tag["Value"] for tag in volume["Properties"]["Tags"]}
    assert tags["canopy:agent-stack"] == {"Ref": "AWS::StackName"}
    assert "tag:canopy:agent-stack" in user_data


def test_agent_security_group_has_no_inbound_rule():
    sg = load_template(STACKSET_DIR / "agent.yaml")["Resources"]["AgentSecurityGroup"]["Properties"]
    assert "SecurityGroupIngress" not in sg
    ports = sorted((e["IpProtocol"], str(e["FromPort"])) for e in sg["SecurityGroupEgress"])
    assert ports == [("tcp", "443"), ("udp", "{'Ref': 'AggregatorPort'}")]


def test_both_agent_roles_take_the_permissions_boundary():
    r = load_template(STACKSET_DIR / "agent.yaml")["Resources"]
    for name in ("AgentRole", "HostRole", "FlowLogRole"):
        assert r[name]["Properties"]["PermissionsBoundary"] == {
            "Fn::If": ["HasBoundary", {"Ref": "PermissionsBoundaryArn"}, {"Ref": "AWS::NoValue"}]
        }, name


def _actions(statements):
    for s in statements:
        if isinstance(s, dict) and "Fn::If" in s:
            s = s["Fn::If"][1]
        actions = s["Action"]
        yield from [actions] if isinstance(actions, str) else actions


def test_management_role_is_read_only_and_includes_the_sustainability_api():
    t = load_template(STACKSET_DIR / "management-account.yaml")
    statements = t["Resources"]["AggregatorReadPolicy"]["Properties"]["PolicyDocument"]["Statement"]
    actions = set(_actions(statements))
    assert {
        "sustainability:GetEstimatedCarbonEmissions",
        "organizations:ListAccountsForParent",
        "organizations:ListTagsForResource",
        "cur:DescribeReportDefinitions",
        "bcm-data-exports:GetExport",
        "s3:GetObject",
    } <= actions
    read_only = re.compile(r"^[a-z0-9-]+:(Get|List|Describe)[A-Za-z]+$|^kms:Decrypt$")
    assert [a for a in actions if not read_only.match(a)] == []
    trust = t["Resources"]["AggregatorReadRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"][0]
    assert trust["Condition"]["StringEquals"]["sts:ExternalId"] == {"Ref": "ExternalId"}
    assert trust["Principal"] == {"AWS": {"Ref": "AggregatorRoleArn"}}
