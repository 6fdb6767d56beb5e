variable "name" {
  description = "Name of the StackSet."
  type        = string
  default     = "canopy-agent"
}

variable "template_path" {
  description = "Path of the agent template; defaults to deploy-stackset/agent.yaml of this repository."
  type        = string
  default     = null
}

variable "organizational_unit_ids" {
  description = "OUs (or the root, r-xxxx) whose accounts get an agent; accounts joining them later get one automatically."
  type        = list(string)
}

variable "regions" {
  description = "Regions an agent runs in, in every target account."
  type        = list(string)
}

variable "call_as" {
  description = "SELF in the management account, DELEGATED_ADMIN in a delegated StackSets administrator account."
  type        = string
  default     = "SELF"
  validation {
    condition     = contains(["SELF", "DELEGATED_ADMIN"], var.call_as)
    error_message = "The call_as value must be SELF or DELEGATED_ADMIN."
  }
}

variable "aggregator_endpoint" {
  description = "DNS name of the aggregator's QUIC endpoint (no port)."
  type        = string
}

variable "aggregator_port" {
  description = "UDP port of the aggregator's QUIC listener."
  type        = number
  default     = 4433
}

variable "aggregator_server_id" {
  description = "The aggregator deployment's id (its CANOPY_SERVER_ID; the aggregator module's server_id output): agents sign their identity proof for it."
  type        = string
  default     = "canopy-aggregator"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", var.aggregator_server_id))
    error_message = "aggregator_server_id: letters, digits, '.', '_' and '-', 1 to 128 characters, starting with a letter or digit."
  }
}

variable "sts_url" {
  description = "The STS endpoint agents sign their identity proof for; must equal the aggregator's CANOPY_STS_URL (the aggregator module's sts_url output)."
  type        = string
  default     = "https://sts.amazonaws.com"
  validation {
    condition     = can(regex("^https://sts(\\.[a-z0-9-]+)?\\.amazonaws\\.com(\\.cn)?$", var.sts_url))
    error_message = "sts_url: an AWS STS endpoint such as https://sts.amazonaws.com or https://sts.eu-west-1.amazonaws.com."
  }
}

variable "aggregator_ca_certificate" {
  description = "PEM of the CA that signed the aggregator's QUIC certificate."
  type        = string
}

variable "agent_image" {
  description = "Agent container image pinned to a version tag or digest."
  type        = string
}

variable "agent_image_repository_arn" {
  description = "Private ECR repository of agent_image; empty for a public registry."
  type        = string
  default     = ""
}

variable "instance_type" {
  description = "Agent instance type (t4g.nano, t4g.micro or t4g.small)."
  type        = string
  default     = "t4g.nano"
}

variable "permissions_boundary_arn" {
  description = "Permissions boundary for the agent's roles; empty for none."
  type        = string
  default     = ""
}

variable "log_retention_days" {
  description = "Days the agents' logs are kept."
  type        = number
  default     = 365
}

variable "max_concurrent_percentage" {
  description = "Percentage of accounts updated at once per region."
  type        = number
  default     = 25
}

variable "failure_tolerance_percentage" {
  description = "Percentage of accounts that may fail per region before an operation stops."
  type        = number
  default     = 10
}
