# The agents' service-managed StackSet (deploy-stackset/agent.yaml) and its
# instances: every account of the target OUs, in every listed region.

locals {
  template_path = coalesce(var.template_path, "${path.module}/../../../deploy-stackset/agent.yaml")
  operation_preferences = {
    region_concurrency_type      = "PARALLEL"
    max_concurrent_percentage    = var.max_concurrent_percentage
    failure_tolerance_percentage = var.failure_tolerance_percentage
  }
}

resource "aws_cloudformation_stack_set" "agent" {
  name             = var.name
  description      = "Canopy carbon-footprint agent in every member account and region"
  permission_model = "SERVICE_MANAGED"
  call_as          = var.call_as
  capabilities     = ["CAPABILITY_NAMED_IAM"]
  template_body    = file(local.template_path)

  auto_deployment {
    enabled                          = true
    retain_stacks_on_account_removal = false
  }

  managed_execution {
    active = true
  }

  operation_preferences {
    region_concurrency_type      = local.operation_preferences.region_concurrency_type
    max_concurrent_percentage    = local.operation_preferences.max_concurrent_percentage
    failure_tolerance_percentage = local.operation_preferences.failure_tolerance_percentage
  }

  parameters = {
    AggregatorEndpoint      = var.aggregator_endpoint
    AggregatorPort          = tostring(var.aggregator_port)
    AggregatorCaCertificate = var.aggregator_ca_certificate
    AggregatorServerId      = var.aggregator_server_id
    StsUrl                  = var.sts_url
    AgentImage              = var.agent_image
    AgentImageRepositoryArn = var.agent_image_repository_arn
    InstanceType            = var.instance_type
    PermissionsBoundaryArn  = var.permissions_boundary_arn
    LogRetentionDays        = tostring(var.log_retention_days)
  }
}

resource "aws_cloudformation_stack_set_instance" "agent" {
  for_each       = toset(var.regions)
  stack_set_name = aws_cloudformation_stack_set.agent.name
  call_as        = var.call_as
  region         = each.value

  deployment_targets {
    organizational_unit_ids = var.organizational_unit_ids
  }

  operation_preferences {
    region_concurrency_type      = local.operation_preferences.region_concurrency_type
    max_concurrent_percentage    = local.operation_preferences.max_concurrent_percentage
    failure_tolerance_percentage = local.operation_preferences.failure_tolerance_percentage
  }

  retain_stack = false
}
