"""The agent's IAM role allows exactly the actions the agent's collectors
declare in code (`canopy-agent iam-actions`): a collector added without a
policy update, or a policy action no collector needs, fails here."""

from __future__ import annotations

import json
import subprocess

from conftest import REPO, STACKSET_DIR, agent_command, load_template


def declared_by_agent() -> list[str]:
    run = subprocess.run(
        agent_command("iam-actions"),
        capture_output=True, text=True, cwd=REPO,
    )
    assert run.returncode == 0, f"`canopy-agent iam-actions` failed:\n{run.stderr}"
    actions = json.loads(run.stdout)
    assert isinstance(actions, list) and all(isinstance(a, str) for a in actions), run.stdout
    return actions


def policy_statements(resources: dict) -> list[dict]:
    return resources["AgentCollectorPolicy"]["Properties"]["PolicyDocument"]["Statement"]


def granted_actions(statements: list[dict]) -> list[str]:
    out = []
    for s in statements:
        assert s["Effect"] == "Allow"
        out += [s["Action"]] if isinstance(s["Action"], str) else s["Action"]
    return out


def test_agent_role_allows_exactly_the_declared_actions():
    declared = declared_by_agent()
    assert declared == sorted(set(declared)), "iam-actions must print a sorted list without duplicates"
    resources = load_template(STACKSET_DIR / "agent.yaml")["Resources"]
    granted = granted_actions(policy_statements(resources))
    assert len(granted) == len(set(granted)), "an action is granted twice"
    assert sorted(granted) == declared, (
        f"missing from the policy: {sorted(set(declared) - set(granted))}; "
        f"granted but not declared: {sorted(set(granted) - set(declared))}"
    )


def test_agent_role_has_no_other_permissions():
    resources = load_template(STACKSET_DIR / "agent.yaml")["Resources"]
    role = resources["AgentRole"]["Properties"]
    assert "Policies" not in role and "ManagedPolicyArns" not in role
    attached = [
        name for name, r in resources.items()
        if r["Type"] in ("AWS::IAM::ManagedPolicy", "AWS::IAM::Policy", "AWS::IAM::RolePolicy")
        and {"Ref": "AgentRole"} in r["Properties"].get("Roles", [r["Properties"].get("RoleName")])
    ]
    assert attached == ["AgentCollectorPolicy"]
    # Read-only: no action beyond the Describe/List/Get families, the SQS
    # consumer actions on its own queue, and the identity call.
    for action in granted_actions(policy_statements(resources)):
        service, name = action.split(":")
        assert "*" not in action, action
        assert name.startswith(("Describe", "List", "Get")) or action in (
            "sqs:ReceiveMessage", "sqs:DeleteMessage"
        ), action
    queue_statement = [s for s in policy_statements(resources) if any("sqs:" in a for a in granted_actions([s]))]
    assert [s["Resource"] for s in queue_statement] == [{"Fn::GetAtt": ["ChangeQueue", "Arn"]}]


def test_agent_role_is_assumable_only_by_the_agent_host():
    resources = load_template(STACKSET_DIR / "agent.yaml")["Resources"]
    (statement,) = resources["AgentRole"]["Properties"]["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Principal"] == {"AWS": {"Fn::GetAtt": ["HostRole", "Arn"]}}


def test_the_config_the_host_writes_is_accepted_by_the_agent(tmp_path):
    """The agent.toml and CANOPY_AGENT_* variables the host passes to the
    container pass `canopy-agent validate` and configure delivery."""
    import os
    import re

    resources = load_template(STACKSET_DIR / "agent.yaml")["Resources"]
    user_data = resources["AgentInstance"]["Properties"]["UserData"]["Fn::Base64"]["Fn::Sub"][0]
    (fmt,) = re.findall(r"printf '(config_version = 1[^']*)'", user_data)
    config = fmt.replace("\\n", "\n") % ("canopy-agent-123456789012-eu-west-1", "eu-west-1")
    (tmp_path / "agent.toml").write_text(config)
    env = dict(os.environ)
    samples = {
        "$CANOPY_REGION": "eu-west-1",
        "$CANOPY_EVENTS_QUEUE_URL": "https://sqs.eu-west-1.amazonaws.com/123456789012/canopy-agent-changes",
        "$CANOPY_AGGREGATOR_ENDPOINT": "canopy.example.com:4433",
        "$CANOPY_AGGREGATOR_SERVER_ID": "canopy-prod",
        "$CANOPY_STS_URL": "https://sts.eu-west-1.amazonaws.com",
    }
    passed = re.findall(r'-e (CANOPY_AGENT_[A-Z_]+)=("?[^ "]+"?)', user_data)
    assert {name for name, _ in passed} >= {
        "CANOPY_AGENT_REGION",
        "CANOPY_AGENT_QUEUE_URL",
        "CANOPY_AGENT_AGGREGATOR_ENDPOINT",
        "CANOPY_AGENT_AGGREGATOR_CA_FILE",
        "CANOPY_AGENT_OUTBOX_PATH",
        "CANOPY_AGENT_AGGREGATOR_SERVER_ID",
        "CANOPY_AGENT_STS_URL",
    }
    # The debugging spool grows without bound: never on the outbox volume.
    assert "CANOPY_AGENT_SPOOL_PATH" not in {name for name, _ in passed}
    for name, value in passed:
        value = value.strip('"')
        env[name] = samples.get(value, value)
    run = subprocess.run(
        agent_command("validate", "--config", str(tmp_path / "agent.toml")),
        capture_output=True, text=True, cwd=REPO, env=env,
    )
    assert run.returncode == 0, run.stderr
    assert "config ok: agent canopy-agent-123456789012-eu-west-1 in eu-west-1" in run.stdout
    # The variables reach the agent's [delivery] section.
    assert (
        "delivery: outbox /var/lib/canopy/outbox (cap 1073741824 bytes) -> aggregator canopy.example.com:4433 "
        "(server name canopy.example.com, CA /etc/canopy/aggregator-ca.pem); "
        "identity proof for server id canopy-prod via https://sts.eu-west-1.amazonaws.com"
    ) in run.stdout, run.stdout


def test_the_aggregators_default_role_pattern_names_only_the_agent_role():
    """Issue 19: the aggregator's default expected role is the exact
    per-region agent role, `canopy-agent-{region}` (`{region}` matches one
    region code; `transport` tests the matcher), never a wildcard that also
    matches the StackSet's host role `canopy-agent-host-<region>`."""
    import re

    main = (REPO / "aggregator" / "src" / "main.rs").read_text()
    default = re.search(r'env = "CANOPY_EXPECTED_ROLE_NAME", default_value = "([^"]+)"', main)
    assert default, "CANOPY_EXPECTED_ROLE_NAME's default not found in aggregator/src/main.rs"
    assert default.group(1) == "canopy-agent-{region}"
    resources = load_template(STACKSET_DIR / "agent.yaml")["Resources"]
    names = {k: r["Properties"]["RoleName"] for k, r in resources.items()
             if r["Type"] == "AWS::IAM::Role" and "RoleName" in r["Properties"]}
    assert names["AgentRole"] == {"Fn::Sub": "canopy-agent-${AWS::Region}"}
    # Every other role of the StackSet is outside the pattern: its name with
    # the region substituted is not `canopy-agent-<region code>`.
    region_role = re.compile(r"^canopy-agent-[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$")
    for key, name in names.items():
        concrete = name["Fn::Sub"].replace("${AWS::Region}", "eu-west-1")
        assert bool(region_role.match(concrete)) == (key == "AgentRole"), (key, concrete)
