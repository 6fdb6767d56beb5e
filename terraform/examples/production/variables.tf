variable "region" {
  description = "Region of the aggregator."
  type        = string
}

variable "tags" {
  description = "Tags on every resource (cost allocation)."
  type        = map(string)
  default     = { app = "canopy" }
}

variable "aggregator_image" {
  description = "Aggregator image, pinned to a version tag or digest."
  type        = string
}

variable "agent_image" {
  description = "Agent image, pinned to a version tag or digest."
  type        = string
}

variable "agent_image_repository_arn" {
  description = "Private ECR repository of the agent image (its repository policy must allow the organisation to pull)."
  type        = string
}

variable "vpc_id" {
  description = "VPC of the aggregator."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets in at least two availability zones."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Public subnets for the load balancer."
  type        = list(string)
}

variable "agent_cidr_blocks" {
  description = "Egress addresses of the agents (or 0.0.0.0/0)."
  type        = list(string)
  default     = ["0.0.0.0/0"]
}

variable "api_cidr_blocks" {
  description = "Corporate networks allowed to reach the dashboard and APIs."
  type        = list(string)
}

variable "metrics_cidr_blocks" {
  description = "Prometheus scrapers inside the VPC."
  type        = list(string)
  default     = []
}

variable "certificate_arn" {
  description = "ACM certificate for aggregator_dns_name."
  type        = string
}

variable "access_logs_bucket" {
  description = "S3 bucket for load balancer access logs."
  type        = string
}

variable "external_database_url_secret_arn" {
  description = "Secret with the URL of an external TimescaleDB; null for RDS PostgreSQL."
  type        = string
  default     = null
}

variable "ca_key_secret_arn" {
  description = "Existing secret with the agent CA key; null to create an empty one."
  type        = string
  default     = null
}

variable "management_role_arn" {
  description = "Output AggregatorReadRoleArn of deploy-stackset/management-account.yaml."
  type        = string
}

variable "management_role_external_id_secret_arn" {
  description = "Secret holding the ExternalId given to management-account.yaml."
  type        = string
}

variable "alarm_topic_arn" {
  description = "SNS topic of the on-call rotation."
  type        = string
}

variable "route53_zone_id" {
  description = "Hosted zone of aggregator_dns_name."
  type        = string
}

variable "aggregator_dns_name" {
  description = "Host name of the aggregator (QUIC and dashboard)."
  type        = string
}

variable "aggregator_ca_certificate_file" {
  description = "PEM of the CA that signed the aggregator's QUIC certificate."
  type        = string
}

variable "agent_ou_ids" {
  description = "OUs whose accounts get agents."
  type        = list(string)
}

variable "agent_regions" {
  description = "Regions agents run in."
  type        = list(string)
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary required by the organisation for new roles."
  type        = string
  default     = ""
}
