# The aggregator service: Fargate on ARM64 (Graviton), read-only root
# filesystem, secrets injected by ECS, rolled back automatically when a
# deployment does not become healthy.

resource "aws_ecs_cluster" "this" {
  name = "${var.name}-aggregator"
  setting {
    name  = "containerInsights"
    value = "enabled"
  }
  tags = local.tags
}

locals {
  container_secrets = concat(
    [
      { name = "CANOPY_DATABASE_URL", valueFrom = local.database_url_secret_arn },
      { name = "CANOPY_CA_KEY_PEM", valueFrom = local.ca_key_secret_arn },
    ],
    var.management_role_external_id_secret_arn == null ? [] : [
      { name = "CANOPY_MANAGEMENT_EXTERNAL_ID", valueFrom = var.management_role_external_id_secret_arn },
    ],
  )
  container_environment = concat(
    [
      { name = "CANOPY_QUIC_LISTEN", value = "0.0.0.0:${var.quic_port}" },
      { name = "CANOPY_HTTP_LISTEN", value = "0.0.0.0:${var.http_port}" },
      { name = "CANOPY_CA_CERT_PEM", value = var.ca_certificate_pem },
      { name = "CANOPY_SERVER_NAMES", value = join(",", concat(var.server_names, [aws_lb.this.dns_name])) },
      { name = "CANOPY_GRPC_LISTEN", value = "0.0.0.0:${var.grpc_port}" },
      { name = "CANOPY_METRICS_LISTEN", value = "0.0.0.0:${var.metrics_port}" },
      { name = "CANOPY_SERVER_ID", value = var.server_id },
      { name = "CANOPY_STS_URL", value = var.sts_url },
      { name = "RUST_LOG", value = "info" },
    ],
    var.management_role_arn == null ? [] : [
      { name = "CANOPY_MANAGEMENT_ROLE_ARN", value = var.management_role_arn },
    ],
    length(var.allowed_account_ids) == 0 ? [] : [
      { name = "CANOPY_ALLOWED_ACCOUNTS", value = join(",", var.allowed_account_ids) },
    ],
    # Access control (issue 19): OIDC when an issuer is given, else API tokens only.
    var.oidc_issuer == null ? [
      { name = "CANOPY_API_TOKENS_ONLY", value = "true" },
      ] : [
      { name = "CANOPY_OIDC_ISSUER", value = var.oidc_issuer },
      { name = "CANOPY_OIDC_AUDIENCE", value = var.oidc_audience },
    ],
    var.oidc_client_id == null ? [] : [
      { name = "CANOPY_OIDC_CLIENT_ID", value = var.oidc_client_id },
      { name = "CANOPY_OIDC_REDIRECT_URL", value = var.oidc_redirect_url },
    ],
    # Billing sync (issue 15): off unless the Data Exports bucket is given.
    var.billing_bucket == null ? [] : [
      { name = "CANOPY_BILLING_BUCKET", value = var.billing_bucket },
      { name = "CANOPY_BILLING_PREFIX", value = var.billing_prefix },
      { name = "CANOPY_BILLING_SYNC_INTERVAL_MINUTES", value = tostring(var.billing_sync_interval_minutes) },
    ],
  )
}

resource "aws_ecs_task_definition" "this" {
  family                   = "${var.name}-aggregator"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.cpu
  memory                   = var.memory_mib
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.task.arn
  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = "ARM64"
  }
  volume {
    name = "tmp"
  }
  container_definitions = jsonencode([
    {
      name                   = "aggregator"
      image                  = var.image
      essential              = true
      readonlyRootFilesystem = true
      user                   = "65532:65532"
      command                = ["serve"]
      portMappings = [
        { containerPort = var.quic_port, protocol = "udp" },
        { containerPort = var.http_port, protocol = "tcp" },
        { containerPort = var.grpc_port, protocol = "tcp" },
        { containerPort = var.metrics_port, protocol = "tcp" },
      ]
      environment = local.container_environment
      secrets     = local.container_secrets
      mountPoints = [{ sourceVolume = "tmp", containerPath = "/tmp", readOnly = false }]
      linuxParameters = {
        capabilities = { drop = ["ALL"] }
        initProcessEnabled = true
      }
      stopTimeout = 60
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          "awslogs-group"         = aws_cloudwatch_log_group.this.name
          "awslogs-region"        = local.region
          "awslogs-stream-prefix" = "aggregator"
        }
      }
    }
  ])
  tags = local.tags
}

resource "aws_ecs_service" "this" {
  name                              = "${var.name}-aggregator"
  cluster                           = aws_ecs_cluster.this.id
  task_definition                   = aws_ecs_task_definition.this.arn
  desired_count                     = var.min_tasks
  launch_type                       = "FARGATE"
  platform_version                  = "LATEST"
  health_check_grace_period_seconds = 60
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  propagate_tags                    = "SERVICE"
  enable_execute_command            = false
  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }
  network_configuration {
    subnets          = var.private_subnet_ids
    security_groups  = [aws_security_group.tasks.id]
    assign_public_ip = false
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.quic.arn
    container_name   = "aggregator"
    container_port   = var.quic_port
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.http.arn
    container_name   = "aggregator"
    container_port   = var.http_port
  }
  load_balancer {
    target_group_arn = aws_lb_target_group.grpc.arn
    container_name   = "aggregator"
    container_port   = var.grpc_port
  }
  lifecycle {
    ignore_changes = [desired_count]
  }
  depends_on = [aws_lb_listener.quic, aws_lb_listener.https, aws_lb_listener.grpc]
  tags       = local.tags
}
