# One Network Load Balancer: UDP for QUIC (passed through: QUIC carries its
# own TLS), TLS terminated here for the HTTP API/dashboard and gRPC.

resource "aws_lb" "this" {
  name                             = "${var.name}-aggregator"
  load_balancer_type               = "network"
  internal                         = var.internal
  subnets                          = var.public_subnet_ids
  security_groups                  = [aws_security_group.load_balancer.id]
  enable_cross_zone_load_balancing = true
  enable_deletion_protection       = var.deletion_protection
  access_logs {
    bucket  = var.access_logs_bucket
    prefix  = "${var.name}-aggregator"
    enabled = true
  }
  tags = local.tags
}

resource "aws_lb_target_group" "quic" {
  name                 = "${var.name}-quic"
  port                 = var.quic_port
  protocol             = "UDP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 60
  # UDP has no handshake to probe: the HTTP health endpoint of the same task stands in.
  health_check {
    protocol = "HTTP"
    port     = tostring(var.http_port)
    path     = "/healthz"
  }
  # An agent's QUIC connection stays on one task for its lifetime.
  stickiness {
    enabled = true
    type    = "source_ip"
  }
  tags = local.tags
}

resource "aws_lb_target_group" "http" {
  name                 = "${var.name}-http"
  port                 = var.http_port
  protocol             = "TCP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  health_check {
    protocol = "HTTP"
    port     = "traffic-port"
    path     = "/healthz"
  }
  tags = local.tags
}

resource "aws_lb_target_group" "grpc" {
  name                 = "${var.name}-grpc"
  port                 = var.grpc_port
  protocol             = "TCP"
  target_type          = "ip"
  vpc_id               = var.vpc_id
  deregistration_delay = 30
  health_check {
    protocol = "HTTP"
    port     = tostring(var.http_port)
    path     = "/healthz"
  }
  tags = local.tags
}

resource "aws_lb_listener" "quic" {
  load_balancer_arn = aws_lb.this.arn
  port              = var.quic_port
  protocol          = "UDP"
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.quic.arn
  }
  #checkov:skip=CKV_AWS_2: QUIC is TLS 1.3 end to end between agent and aggregator; a UDP listener cannot (and must not) terminate it
  #checkov:skip=CKV_AWS_103: the TLS 1.3 version and ciphers are negotiated inside QUIC by the aggregator, not by a UDP listener
}

resource "aws_lb_listener" "https" {
  load_balancer_arn = aws_lb.this.arn
  port              = var.https_listener_port
  protocol          = "TLS"
  certificate_arn   = var.api_certificate_arn
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  alpn_policy       = "HTTP2Optional"
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.http.arn
  }
}

resource "aws_lb_listener" "grpc" {
  load_balancer_arn = aws_lb.this.arn
  port              = var.grpc_port
  protocol          = "TLS"
  certificate_arn   = var.api_certificate_arn
  ssl_policy        = "ELBSecurityPolicy-TLS13-1-2-2021-06"
  alpn_policy       = "HTTP2Only"
  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.grpc.arn
  }
}
