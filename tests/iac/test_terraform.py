"""Terraform: every file parses with HashiCorp's HCL parser, and every
reference, module source, module argument and output resolves."""

from __future__ import annotations

from pathlib import Path

import hcl_check
from conftest import STACKSET_DIR, TERRAFORM_DIR, load_template

EXPECTED_DIRS = {
    "modules/aggregator",
    "modules/agent-stackset",
    "examples/minimal",
    "examples/production",
}


def test_every_configuration_resolves():
    modules, problems = hcl_check.check_tree(TERRAFORM_DIR)
    assert {str(d.relative_to(TERRAFORM_DIR.resolve())) for d in modules} == EXPECTED_DIRS
    assert problems == []
    # The parse found real content, not empty files.
    aggregator = modules[(TERRAFORM_DIR / "modules/aggregator").resolve()]
    assert "aws_ecs_service.this" in aggregator.resources
    assert "aws_lb_listener.quic" in aggregator.resources
    assert len(aggregator.refs) > 200


def test_the_checker_catches_each_kind_of_mistake(tmp_path: Path):
    child = tmp_path / "modules" / "child"
    child.mkdir(parents=True)
    (child / "main.tf").write_text(
        'variable "needed" {\n  type = string\n}\n'
        'resource "aws_s3_bucket" "b" {\n  bucket = var.needed\n}\n'
        'output "bucket" {\n  value = aws_s3_bucket.b.id\n}\n'
    )
    root = tmp_path / "root"
    root.mkdir()
    (root / "main.tf").write_text(
        'variable "unused" {\n  type = string\n}\n'
        'locals {\n  a = var.missing\n}\n'
        'module "c" {\n  source = "../modules/child"\n  extra = 1\n}\n'
        'module "gone" {\n  source = "./nowhere"\n}\n'
        'resource "aws_sqs_queue" "q" {\n  name = "${local.b}-${aws_sns_topic.t.name}"\n'
        '  tags = { k = each.key }\n}\n'
        'output "o" {\n  value = module.c.not_an_output\n}\n'
        'output "d" {\n  value = data.aws_region.r.name\n}\n'
        'output "empty" {\n  value = "constant"\n}\n'
    )
    (root / "broken.tf").write_text('resource "aws_s3_bucket" "x" {\n  bucket = \n')
    _, problems = hcl_check.check_tree(tmp_path)
    text = "\n".join(problems)
    for expected in [
        "broken.tf: parse error",
        "var.missing is used but no variable 'missing' is declared",
        "local.b is used but not declared",
        "resource aws_sns_topic.t is referenced but not declared",
        "each.key is used outside a block with for_each",
        "module.c.not_an_output is not an output of child",
        "data.aws_region.r is referenced but not declared",
        "variable 'unused' is declared but never used",
        "output 'empty' references nothing",
        "module 'c' sets 'extra', which child does not declare",
        "module 'c' does not set required variable 'needed'",
        "module 'gone' source './nowhere' is not a directory of .tf files",
    ]:
        assert expected in text, f"not reported: {expected}\nreported:\n{text}"
    assert len(problems) == 12, text


def test_stackset_module_passes_only_agent_template_parameters():
    modules, _ = hcl_check.check_tree(TERRAFORM_DIR / "modules" / "agent-stackset")
    (module,) = modules.values()
    stack_set = module.resources["aws_cloudformation_stack_set.agent"]
    passed = set(stack_set["parameters"])
    declared = load_template(STACKSET_DIR / "agent.yaml")["Parameters"]
    required = {k for k, v in declared.items() if "Default" not in v}
    assert passed <= set(declared), passed - set(declared)
    assert required <= passed, required - passed
    # The module's default template path is this repository's agent template.
    default_path = module.directory / "../../../deploy-stackset/agent.yaml"
    assert default_path.resolve() == (STACKSET_DIR / "agent.yaml").resolve()
    assert stack_set["permission_model"] == "SERVICE_MANAGED"
    assert stack_set["auto_deployment"][0]["enabled"] is True


def test_ports_agree_between_agent_template_and_aggregator_module():
    modules, _ = hcl_check.check_tree(TERRAFORM_DIR / "modules" / "aggregator")
    (module,) = modules.values()
    defaults = {name: module.variables[name].get("default") for name in ("quic_port", "http_port", "grpc_port", "metrics_port")}
    assert defaults == {"quic_port": 4433, "http_port": 8080, "grpc_port": 50051, "metrics_port": 9090}
    agent = load_template(STACKSET_DIR / "agent.yaml")
    assert agent["Parameters"]["AggregatorPort"]["Default"] == defaults["quic_port"]
    quic_listener = module.resources["aws_lb_listener.quic"]
    assert quic_listener["protocol"] == "UDP"
    assert module.resources["aws_lb_target_group.quic"]["protocol"] == "UDP"
    task = module.resources["aws_ecs_task_definition.this"]
    assert task["runtime_platform"][0]["cpu_architecture"] == "ARM64"


def test_agents_and_aggregator_share_one_server_id_and_sts_endpoint():
    """The agents sign their identity proof for the aggregator's server id
    and STS endpoint: both are settable in the deployment, have the same
    defaults everywhere (agent template, both modules, both binaries) and
    the examples hand the aggregator module's values to the agents."""
    import re

    from conftest import REPO

    agent = load_template(STACKSET_DIR / "agent.yaml")["Parameters"]
    stackset = load_template(STACKSET_DIR / "stackset.yaml")["Parameters"]
    modules, _ = hcl_check.check_tree(TERRAFORM_DIR)
    aggregator = modules[(TERRAFORM_DIR / "modules/aggregator").resolve()]
    agents = modules[(TERRAFORM_DIR / "modules/agent-stackset").resolve()]
    aggregator_main = (REPO / "aggregator" / "src" / "main.rs").read_text()
    agent_config = (REPO / "agent" / "src" / "config.rs").read_text()

    def binary_default(env: str) -> str:
        found = re.search(r'env = "' + env + r'", default_value = "([^"]+)"', aggregator_main)
        assert found, f"{env}'s default not found in aggregator/src/main.rs"
        return found.group(1)

    for template_key, module_var, aggregator_var, env, agent_field in [
        ("AggregatorServerId", "aggregator_server_id", "server_id", "CANOPY_SERVER_ID", "server_id"),
        ("StsUrl", "sts_url", "sts_url", "CANOPY_STS_URL", "sts_url"),
    ]:
        default = binary_default(env)
        assert f'{agent_field}: "{default}".into()' in agent_config, (agent_field, default)
        assert agent[template_key]["Default"] == default, template_key
        assert stackset[template_key]["Default"] == default, template_key
        assert agents.variables[module_var]["default"] == default, module_var
        assert aggregator.variables[aggregator_var]["default"] == default, aggregator_var
        assert re.fullmatch(agent[template_key]["AllowedPattern"], default), template_key
        # The module passes it to the StackSet, the StackSet to each stack.
        stack_set = agents.resources["aws_cloudformation_stack_set.agent"]
        assert stack_set["parameters"][template_key] == "${var." + module_var + "}"
        assert aggregator.outputs[aggregator_var]["value"] == "${var." + aggregator_var + "}"
        for example in ("examples/minimal", "examples/production"):
            call = modules[(TERRAFORM_DIR / example).resolve()].modules["agents"]
            assert call[module_var] == "${module.aggregator." + aggregator_var + "}", (example, call.get(module_var))
    ecs = (TERRAFORM_DIR / "modules" / "aggregator" / "ecs.tf").read_text()
    assert '{ name = "CANOPY_SERVER_ID", value = var.server_id }' in ecs
    assert '{ name = "CANOPY_STS_URL", value = var.sts_url }' in ecs
    params = {p["ParameterKey"]: p["ParameterValue"] for p in load_template(STACKSET_DIR / "stackset.yaml")["Resources"]["AgentStackSet"]["Properties"]["Parameters"]}
    assert params["AggregatorServerId"] == {"Ref": "AggregatorServerId"} and params["StsUrl"] == {"Ref": "StsUrl"}


def test_billing_sync_reads_only_its_prefix_and_is_off_without_a_bucket():
    """Issue 15: the aggregator module passes the Data Exports bucket to
    `serve` (variables it reads, only when a bucket is given) and lets the
    task role list and read that prefix and nothing else."""
    modules, _ = hcl_check.check_tree(TERRAFORM_DIR / "modules" / "aggregator")
    (module,) = modules.values()
    assert module.variables["billing_bucket"]["default"] is None
    doc = module.data["aws_iam_policy_document.billing"]
    assert doc["count"] == "${var.billing_bucket == null ? 0 : 1}"
    statements = {s["sid"]: s for s in doc["statement"]}
    assert set(statements) == {"ListDataExports", "ReadDataExports"}
    assert statements["ListDataExports"]["actions"] == ["s3:ListBucket"]
    assert statements["ListDataExports"]["resources"] == ["arn:${local.partition}:s3:::${var.billing_bucket}"]
    (cond,) = statements["ListDataExports"]["condition"]
    assert (cond["test"], cond["variable"], cond["values"]) == ("StringLike", "s3:prefix", ["${local.billing_key_prefix}*"])
    assert statements["ReadDataExports"]["actions"] == ["s3:GetObject"]
    assert statements["ReadDataExports"]["resources"] == ["arn:${local.partition}:s3:::${var.billing_bucket}/${local.billing_key_prefix}*"]
    policy = module.resources["aws_iam_role_policy.billing"]
    assert policy["role"] == "${aws_iam_role.task.id}" and policy["count"] == "${var.billing_bucket == null ? 0 : 1}"
    ecs = (TERRAFORM_DIR / "modules" / "aggregator" / "ecs.tf").read_text()
    block = ecs[ecs.index("var.billing_bucket == null ? [] : ["):]
    block = block[: block.index("],")]
    for name in ("CANOPY_BILLING_BUCKET", "CANOPY_BILLING_PREFIX", "CANOPY_BILLING_SYNC_INTERVAL_MINUTES"):
        assert f'name = "{name}"' in block, name
