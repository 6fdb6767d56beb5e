# Smallest useful Canopy: one aggregator task on a single-AZ RDS instance in an
# existing VPC, agents in one OU and one region. For evaluation, not production.

terraform {
  required_version = ">= 1.6.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40.0, < 7.0.0"
    }
  }
}

provider "aws" {
  region = var.region
}

module "aggregator" {
  source = "../../modules/aggregator"
  #checkov:skip=CKV_AWS_150: an evaluation setup must be removable with one `terraform destroy`; the production example keeps deletion protection on

  name                = "canopy-eval"
  image               = var.aggregator_image
  vpc_id              = var.vpc_id
  private_subnet_ids  = var.private_subnet_ids
  public_subnet_ids   = var.public_subnet_ids
  agent_cidr_blocks   = ["0.0.0.0/0"]
  api_cidr_blocks     = var.admin_cidr_blocks
  api_certificate_arn = var.certificate_arn
  access_logs_bucket  = var.access_logs_bucket

  ca_certificate_pem = file(var.aggregator_ca_certificate_file)
  server_names       = [var.aggregator_dns_name]
  # No management role in the evaluation setup: the agents' account enrols by id.
  allowed_account_ids = var.agent_account_ids

  min_tasks                = 1
  max_tasks                = 2
  db_instance_class        = "db.t4g.micro"
  db_allocated_storage_gb  = 20
  db_multi_az              = false
  db_backup_retention_days = 7
  deletion_protection      = false
  log_retention_days       = 365
}

module "agents" {
  source = "../../modules/agent-stackset"

  organizational_unit_ids   = [var.agent_ou_id]
  regions                   = [var.region]
  aggregator_endpoint       = var.aggregator_dns_name
  aggregator_ca_certificate = file(var.aggregator_ca_certificate_file)
  aggregator_server_id      = module.aggregator.server_id
  sts_url                   = module.aggregator.sts_url
  agent_image               = var.agent_image
}

output "dashboard_url" {
  description = "Open this once the aggregator is healthy."
  value       = module.aggregator.dashboard_url
}

output "load_balancer_dns_name" {
  description = "Point aggregator_dns_name (a CNAME matching the QUIC certificate) here."
  value       = module.aggregator.load_balancer_dns_name
}

output "agent_stack_set" {
  description = "Name of the agents' StackSet."
  value       = module.agents.stack_set_name
}
