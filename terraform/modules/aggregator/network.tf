# Security groups: load balancer -> tasks -> database. Nothing else reaches the tasks.

resource "aws_security_group" "load_balancer" {
  name_prefix = "${var.name}-aggregator-nlb-"
  description = "Canopy aggregator load balancer"
  vpc_id      = var.vpc_id
  tags        = local.tags
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "nlb_quic" {
  for_each          = toset(var.agent_cidr_blocks)
  security_group_id = aws_security_group.load_balancer.id
  description       = "QUIC from Canopy agents"
  ip_protocol       = "udp"
  from_port         = var.quic_port
  to_port           = var.quic_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "nlb_https" {
  for_each          = toset(var.api_cidr_blocks)
  security_group_id = aws_security_group.load_balancer.id
  description       = "HTTPS API and dashboard"
  ip_protocol       = "tcp"
  from_port         = var.https_listener_port
  to_port           = var.https_listener_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_ingress_rule" "nlb_grpc" {
  for_each          = toset(var.api_cidr_blocks)
  security_group_id = aws_security_group.load_balancer.id
  description       = "gRPC API over TLS"
  ip_protocol       = "tcp"
  from_port         = var.grpc_port
  to_port           = var.grpc_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "nlb_to_tasks" {
  for_each = {
    quic = { protocol = "udp", port = var.quic_port }
    http = { protocol = "tcp", port = var.http_port }
    grpc = { protocol = "tcp", port = var.grpc_port }
  }
  security_group_id            = aws_security_group.load_balancer.id
  description                  = "to aggregator tasks (${each.key})"
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = aws_security_group.tasks.id
}

resource "aws_security_group" "tasks" {
  name_prefix = "${var.name}-aggregator-tasks-"
  description = "Canopy aggregator tasks"
  vpc_id      = var.vpc_id
  tags        = local.tags
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "tasks_from_nlb" {
  for_each = {
    quic = { protocol = "udp", port = var.quic_port }
    http = { protocol = "tcp", port = var.http_port }
    grpc = { protocol = "tcp", port = var.grpc_port }
  }
  security_group_id            = aws_security_group.tasks.id
  description                  = "from the load balancer (${each.key})"
  ip_protocol                  = each.value.protocol
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = aws_security_group.load_balancer.id
}

resource "aws_vpc_security_group_ingress_rule" "tasks_metrics" {
  for_each          = toset(var.metrics_cidr_blocks)
  security_group_id = aws_security_group.tasks.id
  description       = "Prometheus scrapes"
  ip_protocol       = "tcp"
  from_port         = var.metrics_port
  to_port           = var.metrics_port
  cidr_ipv4         = each.value
}

resource "aws_vpc_security_group_egress_rule" "tasks_https" {
  security_group_id = aws_security_group.tasks.id
  description       = "AWS APIs (Secrets Manager, ECR, CloudWatch Logs, STS, S3, Organizations)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
}

resource "aws_vpc_security_group_egress_rule" "tasks_database" {
  for_each          = toset(length(var.database_cidr_blocks) > 0 ? var.database_cidr_blocks : [data.aws_vpc.this.cidr_block])
  security_group_id = aws_security_group.tasks.id
  description       = "PostgreSQL"
  ip_protocol       = "tcp"
  from_port         = var.database_port
  to_port           = var.database_port
  cidr_ipv4         = each.value
}

resource "aws_security_group" "database" {
  count       = local.create_database ? 1 : 0
  name_prefix = "${var.name}-aggregator-db-"
  description = "Canopy aggregator database"
  vpc_id      = var.vpc_id
  tags        = local.tags
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "database_from_tasks" {
  count                        = local.create_database ? 1 : 0
  security_group_id            = aws_security_group.database[0].id
  description                  = "PostgreSQL from aggregator tasks"
  ip_protocol                  = "tcp"
  from_port                    = var.database_port
  to_port                      = var.database_port
  referenced_security_group_id = aws_security_group.tasks.id
}
