# Execution role (ECS pulls the image, reads the secrets, writes logs) and
# task role (the aggregator itself: assumes the management-account read role
# and, with billing_bucket set, reads the Data Exports prefix).

data "aws_iam_policy_document" "ecs_tasks_trust" {
  statement {
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "execution" {
  name_prefix        = "${var.name}-agg-exec-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
  tags               = local.tags
}

resource "aws_iam_role_policy_attachment" "execution" {
  role       = aws_iam_role.execution.name
  policy_arn = "arn:${local.partition}:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy"
}

data "aws_iam_policy_document" "execution_secrets" {
  statement {
    sid       = "ReadAggregatorSecrets"
    actions   = ["secretsmanager:GetSecretValue"]
    resources = [for s in local.container_secrets : s.valueFrom]
  }
  statement {
    sid       = "DecryptAggregatorSecrets"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role_policy" "execution_secrets" {
  name   = "read-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution_secrets.json
}

resource "aws_iam_role" "task" {
  name_prefix        = "${var.name}-agg-task-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_trust.json
  tags               = local.tags
}

data "aws_iam_policy_document" "task" {
  count = var.management_role_arn == null ? 0 : 1
  statement {
    sid       = "AssumeManagementReadRole"
    actions   = ["sts:AssumeRole"]
    resources = [var.management_role_arn]
  }
}

resource "aws_iam_role_policy" "task" {
  count  = var.management_role_arn == null ? 0 : 1
  name   = "assume-management-read-role"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.task[0].json
}

# Billing sync (issue 15): list and read the Data Exports deliveries under
# the configured prefix of the billing bucket, nothing else.
locals {
  billing_key_prefix = var.billing_prefix == "" ? "" : "${var.billing_prefix}/"
}

data "aws_iam_policy_document" "billing" {
  count = var.billing_bucket == null ? 0 : 1
  statement {
    sid       = "ListDataExports"
    actions   = ["s3:ListBucket"]
    resources = ["arn:${local.partition}:s3:::${var.billing_bucket}"]
    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.billing_key_prefix}*"]
    }
  }
  statement {
    sid       = "ReadDataExports"
    actions   = ["s3:GetObject"]
    resources = ["arn:${local.partition}:s3:::${var.billing_bucket}/${local.billing_key_prefix}*"]
  }
}

resource "aws_iam_role_policy" "billing" {
  count  = var.billing_bucket == null ? 0 : 1
  name   = "read-data-exports"
  role   = aws_iam_role.task.id
  policy = data.aws_iam_policy_document.billing[0].json
}
