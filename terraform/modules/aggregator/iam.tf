# Execution role (ECS pulls the image, reads the secrets, writes logs) and
# task role (the aggregator itself: only assumes the management-account read role).

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
