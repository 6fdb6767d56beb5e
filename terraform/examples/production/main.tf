# Production Canopy: autoscaled aggregator across availability zones with a
# Multi-AZ database (or an external TimescaleDB), deletion protection, a DNS
# name for the agents, the management-account read role wired in, and agents
# in every account of the given OUs and regions from a delegated administrator.

terraform {
  required_version = ">= 1.6.0"
  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.40.0, < 7.0.0"
    }
  }
  backend "s3" {}
}

provider "aws" {
  region = var.region
  default_tags {
    tags = var.tags
  }
}

module "aggregator" {
  source = "../../modules/aggregator"

  name                = "canopy"
  image               = var.aggregator_image
  vpc_id              = var.vpc_id
  private_subnet_ids  = var.private_subnet_ids
  public_subnet_ids   = var.public_subnet_ids
  agent_cidr_blocks   = var.agent_cidr_blocks
  api_cidr_blocks     = var.api_cidr_blocks
  metrics_cidr_blocks = var.metrics_cidr_blocks
  api_certificate_arn = var.certificate_arn
  access_logs_bucket  = var.access_logs_bucket

  ca_certificate_pem = file(var.aggregator_ca_certificate_file)
  server_names       = [var.aggregator_dns_name]

  cpu                = 1024
  memory_mib         = 2048
  min_tasks          = 2
  max_tasks          = 8
  cpu_target_percent = 55

  external_database_url_secret_arn = var.external_database_url_secret_arn
  db_instance_class                = "db.r7g.large"
  db_allocated_storage_gb          = 200
  db_multi_az                      = true
  db_backup_retention_days         = 35
  deletion_protection              = true

  ca_key_secret_arn                      = var.ca_key_secret_arn
  management_role_arn                    = var.management_role_arn
  management_role_external_id_secret_arn = var.management_role_external_id_secret_arn
  alarm_topic_arn                        = var.alarm_topic_arn
  log_retention_days                     = 731
  tags                                   = var.tags
}

resource "aws_route53_record" "aggregator" {
  zone_id = var.route53_zone_id
  name    = var.aggregator_dns_name
  type    = "CNAME"
  ttl     = 300
  records = [module.aggregator.load_balancer_dns_name]
}

module "agents" {
  source = "../../modules/agent-stackset"

  call_as                    = "DELEGATED_ADMIN"
  organizational_unit_ids    = var.agent_ou_ids
  regions                    = var.agent_regions
  aggregator_endpoint        = aws_route53_record.aggregator.fqdn
  aggregator_ca_certificate  = file(var.aggregator_ca_certificate_file)
  aggregator_server_id       = module.aggregator.server_id
  sts_url                    = module.aggregator.sts_url
  agent_image                = var.agent_image
  agent_image_repository_arn = var.agent_image_repository_arn
  permissions_boundary_arn   = var.permissions_boundary_arn
  log_retention_days         = 365
  max_concurrent_percentage  = 10
  failure_tolerance_percentage = 5
}

output "dashboard_url" {
  description = "Dashboard and HTTP API."
  value       = "https://${aws_route53_record.aggregator.fqdn}/"
}

output "quic_endpoint" {
  description = "What the agents connect to."
  value       = "${aws_route53_record.aggregator.fqdn}:4433"
}

output "aggregator_task_role_arn" {
  description = "Give this to deploy-stackset/management-account.yaml as AggregatorRoleArn."
  value       = module.aggregator.task_role_arn
}

output "ca_key_secret_arn" {
  description = "Secret holding the CA key."
  value       = module.aggregator.ca_key_secret_arn
}

output "agent_regions" {
  description = "Regions with agents."
  value       = module.agents.regions
}
