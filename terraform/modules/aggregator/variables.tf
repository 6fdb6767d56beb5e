variable "name" {
  description = "Prefix of every resource name."
  type        = string
  default     = "canopy"
}

variable "image" {
  description = "Aggregator container image pinned to a version tag or digest (ARM64 or multi-arch)."
  type        = string
}

variable "vpc_id" {
  description = "VPC the aggregator runs in."
  type        = string
}

variable "private_subnet_ids" {
  description = "Subnets of the ECS tasks and the database (at least two availability zones)."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Subnets of the Network Load Balancer (public for agents reaching it over the internet)."
  type        = list(string)
}

variable "internal" {
  description = "Make the load balancer internal (agents reach it over Transit Gateway, peering or PrivateLink)."
  type        = bool
  default     = false
}

variable "quic_port" {
  description = "UDP port of the QUIC listener the agents send batches to."
  type        = number
  default     = 4433
}

variable "http_port" {
  description = "TCP port of the HTTP API and dashboard."
  type        = number
  default     = 8080
}

variable "grpc_port" {
  description = "TCP port of the gRPC API."
  type        = number
  default     = 50051
}

variable "metrics_port" {
  description = "TCP port of the Prometheus metrics endpoint (not behind the load balancer)."
  type        = number
  default     = 9090
}

variable "agent_cidr_blocks" {
  description = "Source CIDRs allowed to reach the QUIC port (agents' egress addresses, or 0.0.0.0/0: agents are authenticated in QUIC)."
  type        = list(string)
}

variable "api_cidr_blocks" {
  description = "Source CIDRs allowed to reach the HTTP and gRPC APIs."
  type        = list(string)
}

variable "metrics_cidr_blocks" {
  description = "Source CIDRs allowed to scrape the metrics port inside the VPC."
  type        = list(string)
  default     = []
}

variable "api_certificate_arn" {
  description = "ACM certificate for TLS on the HTTP and gRPC listeners."
  type        = string
}

variable "access_logs_bucket" {
  description = "S3 bucket receiving the load balancer's access logs."
  type        = string
}

variable "cpu" {
  description = "Task CPU units (1024 = 1 vCPU)."
  type        = number
  default     = 512
}

variable "memory_mib" {
  description = "Task memory in MiB."
  type        = number
  default     = 1024
}

variable "min_tasks" {
  description = "Minimum number of aggregator tasks."
  type        = number
  default     = 2
}

variable "max_tasks" {
  description = "Maximum number of aggregator tasks."
  type        = number
  default     = 6
}

variable "cpu_target_percent" {
  description = "Average CPU utilisation the autoscaling policy keeps the service at."
  type        = number
  default     = 60
}

variable "external_database_url_secret_arn" {
  description = "Secrets Manager secret holding a postgres:// URL of an external PostgreSQL/TimescaleDB; null creates an RDS instance."
  type        = string
  default     = null
}

variable "db_instance_class" {
  description = "RDS instance class (Graviton)."
  type        = string
  default     = "db.t4g.medium"
}

variable "db_allocated_storage_gb" {
  description = "Initial RDS storage in GB (grows automatically up to 10x)."
  type        = number
  default     = 50
}

variable "db_multi_az" {
  description = "Run RDS in two availability zones."
  type        = bool
  default     = true
}

variable "db_backup_retention_days" {
  description = "Days of automated RDS backups."
  type        = number
  default     = 14
}

variable "deletion_protection" {
  description = "Protect the load balancer and database against deletion (set false before `terraform destroy`)."
  type        = bool
  default     = true
}

variable "ca_key_secret_arn" {
  description = "Existing secret holding the PEM private key of the CA that signs agent certificates; null creates an empty secret to fill."
  type        = string
  default     = null
}

variable "ca_certificate_pem" {
  description = "PEM certificate of the CA that signs agent certificates (public; the same one the agent StackSet gets as aggregator_ca_certificate)."
  type        = string
}

variable "server_names" {
  description = "DNS names agents reach the aggregator by (the CNAME pointed at the load balancer); written into the QUIC server certificate together with the load balancer's own name."
  type        = list(string)
  default     = []
}

variable "server_id" {
  description = "This deployment's id (CANOPY_SERVER_ID): agents sign their identity proof for it, so a proof made for another Canopy deployment (staging, another organisation) is refused here. Give the agents the same value (the agent-stackset module's aggregator_server_id; the module's server_id output)."
  type        = string
  default     = "canopy-aggregator"
  validation {
    condition     = can(regex("^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$", var.server_id))
    error_message = "server_id: letters, digits, '.', '_' and '-', 1 to 128 characters, starting with a letter or digit."
  }
}

variable "sts_url" {
  description = "The STS endpoint the aggregator sends agents' signed GetCallerIdentity requests to (CANOPY_STS_URL); agents must sign for the same endpoint (the agent-stackset module's sts_url)."
  type        = string
  default     = "https://sts.amazonaws.com"
  validation {
    condition     = can(regex("^https://sts(\\.[a-z0-9-]+)?\\.amazonaws\\.com(\\.cn)?$", var.sts_url))
    error_message = "sts_url: an AWS STS endpoint such as https://sts.amazonaws.com or https://sts.eu-west-1.amazonaws.com."
  }
}

variable "billing_bucket" {
  description = "S3 bucket of the organisation's Data Exports (CUR 2.0) deliveries; null leaves the billing sync off. The task role gets read access to billing_prefix in it (a bucket in another account, usually the management account, also needs a bucket policy allowing this module's task_role_arn)."
  type        = string
  default     = null
  validation {
    condition     = var.billing_bucket == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.billing_bucket))
    error_message = "billing_bucket: an S3 bucket name (3-63 lower-case letters, digits, '.' and '-')."
  }
}

variable "billing_prefix" {
  description = "Key prefix of the Data Exports under billing_bucket (<prefix>/<export-name>/metadata/...); empty for the bucket's root."
  type        = string
  default     = ""
  validation {
    condition     = !startswith(var.billing_prefix, "/") && !endswith(var.billing_prefix, "/")
    error_message = "billing_prefix: without a leading or trailing '/'."
  }
}

variable "billing_sync_interval_minutes" {
  description = "Minutes between billing syncs."
  type        = number
  default     = 60
  validation {
    condition     = var.billing_sync_interval_minutes >= 5 && var.billing_sync_interval_minutes <= 1440
    error_message = "billing_sync_interval_minutes: between 5 and 1440."
  }
}

variable "allowed_account_ids" {
  description = "Accounts allowed to enrol in addition to the organisation's active accounts (which need management_role_arn); with neither, agents cannot enrol."
  type        = list(string)
  default     = []
  validation {
    condition     = alltrue([for a in var.allowed_account_ids : can(regex("^[0-9]{12}$", a))])
    error_message = "allowed_account_ids must be 12-digit AWS account ids."
  }
}

variable "management_role_arn" {
  description = "Role created by deploy-stackset/management-account.yaml, assumed for Organizations, CUR and Sustainability API reads; null disables those reads."
  type        = string
  default     = null
}

variable "management_role_external_id_secret_arn" {
  description = "Secret holding the external ID of management_role_arn."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "Days the aggregator's logs are kept."
  type        = number
  default     = 365
}

variable "alarm_topic_arn" {
  description = "SNS topic for alarms; null creates an encrypted topic."
  type        = string
  default     = null
}

variable "tags" {
  description = "Tags added to every resource."
  type        = map(string)
  default     = {}
}

variable "https_listener_port" {
  description = "TLS port of the load balancer in front of the HTTP API and dashboard."
  type        = number
  default     = 443
}

variable "database_port" {
  description = "TCP port of the database (RDS or external)."
  type        = number
  default     = 5432
}

variable "database_cidr_blocks" {
  description = "Where an external database lives, for the tasks' egress rule; empty means inside the VPC."
  type        = list(string)
  default     = []
}

variable "oidc_issuer" {
  description = "OIDC issuer URL (https) for the HTTP/gRPC APIs and the dashboard; null: API tokens only (canopy-aggregator tokens create)."
  type        = string
  default     = null
}

variable "oidc_audience" {
  description = "Audience bearer JWTs must name; required with oidc_issuer."
  type        = string
  default     = null
  validation {
    condition     = var.oidc_audience == null || try(length(var.oidc_audience) > 0, false)
    error_message = "oidc_audience must be a non-empty string when set."
  }
}

variable "oidc_client_id" {
  description = "OIDC client id of the dashboard login (authorization code + PKCE); null: no dashboard login."
  type        = string
  default     = null
}

variable "oidc_redirect_url" {
  description = "The dashboard's https://…/auth/callback URL registered at the issuer; required with oidc_client_id."
  type        = string
  default     = null
}
