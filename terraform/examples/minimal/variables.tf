variable "region" {
  description = "Region of the aggregator (and the only agent region in this example)."
  type        = string
}

variable "aggregator_image" {
  description = "Aggregator image, pinned (for example 123456789012.dkr.ecr.eu-west-1.amazonaws.com/canopy-aggregator:0.1.0)."
  type        = string
}

variable "agent_image" {
  description = "Agent image, pinned; must be pullable from every member account."
  type        = string
}

variable "vpc_id" {
  description = "Existing VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets with NAT (two availability zones)."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Public subnets for the load balancer."
  type        = list(string)
}

variable "admin_cidr_blocks" {
  description = "Who may open the dashboard and APIs."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate of the dashboard/API host name."
  type        = string
}

variable "access_logs_bucket" {
  description = "S3 bucket for load balancer access logs."
  type        = string
}

variable "agent_ou_id" {
  description = "The one OU whose accounts get agents."
  type        = string
}

variable "aggregator_dns_name" {
  description = "Host name of the QUIC endpoint, as in the aggregator's server certificate."
  type        = string
}

variable "aggregator_ca_certificate_file" {
  description = "Path of the PEM file of the CA that signed the aggregator's certificate."
  type        = string
}

variable "agent_account_ids" {
  description = "Accounts in agent_ou_id whose agents may enrol (the minimal setup has no management role to list the organisation)."
  type        = list(string)
}
