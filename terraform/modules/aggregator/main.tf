# Canopy aggregator on ECS Fargate (ARM64) behind a Network Load Balancer:
# UDP for QUIC (TLS inside QUIC, end to end), TLS for the HTTP and gRPC APIs.

data "aws_region" "current" {}
data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

data "aws_vpc" "this" {
  id = var.vpc_id
}

locals {
  account_id      = data.aws_caller_identity.current.account_id
  region          = data.aws_region.current.name
  partition       = data.aws_partition.current.partition
  create_database = var.external_database_url_secret_arn == null
  create_ca_key   = var.ca_key_secret_arn == null
  create_topic    = var.alarm_topic_arn == null
  log_group_name  = "/canopy/${var.name}/aggregator"
  alarm_topic_arn = local.create_topic ? aws_sns_topic.alarms[0].arn : var.alarm_topic_arn
  database_url_secret_arn = (
    local.create_database ? aws_secretsmanager_secret.database_url[0].arn : var.external_database_url_secret_arn
  )
  # The RDS CA bundle baked into the aggregator image (docker/aggregator.Dockerfile).
  rds_ca_bundle_path = "/etc/ssl/certs/rds-global-bundle.pem"
  ca_key_secret_arn  = local.create_ca_key ? aws_secretsmanager_secret.ca_key[0].arn : var.ca_key_secret_arn
  tags               = merge({ "app" = "canopy", "canopy:component" = "aggregator" }, var.tags)
}

resource "aws_kms_key" "this" {
  description             = "${var.name} aggregator: logs, secrets, database, alarms topic"
  enable_key_rotation     = true
  deletion_window_in_days = 30
  policy                  = data.aws_iam_policy_document.kms.json
  tags                    = local.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/${var.name}-aggregator"
  target_key_id = aws_kms_key.this.key_id
}

data "aws_iam_policy_document" "kms" {
  # In a key policy, "*" as resource means this key only, and kms:* for the
  # account root is what delegates key access to IAM (AWS's default key policy).
  #checkov:skip=CKV_AWS_111: key policy; resource "*" is this key, write access is the account root's (AWS default key policy)
  #checkov:skip=CKV_AWS_356: key policy; resource "*" is this key and cannot be narrowed further
  #checkov:skip=CKV_AWS_109: key policy; permissions management is delegated to the account root only (AWS default key policy)
  statement {
    sid       = "AccountAdministration"
    actions   = ["kms:*"]
    resources = ["*"]
    principals {
      type        = "AWS"
      identifiers = ["arn:${local.partition}:iam::${local.account_id}:root"]
    }
  }
  statement {
    sid       = "CloudWatchLogs"
    actions   = ["kms:Encrypt*", "kms:Decrypt*", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:Describe*"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["logs.${local.region}.amazonaws.com"]
    }
    condition {
      test     = "ArnEquals"
      variable = "kms:EncryptionContext:aws:logs:arn"
      values   = ["arn:${local.partition}:logs:${local.region}:${local.account_id}:log-group:${local.log_group_name}"]
    }
  }
  statement {
    sid       = "CloudWatchAlarmsPublish"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = ["*"]
    principals {
      type        = "Service"
      identifiers = ["cloudwatch.amazonaws.com"]
    }
  }
}

resource "aws_cloudwatch_log_group" "this" {
  name              = local.log_group_name
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
  tags              = local.tags
}
