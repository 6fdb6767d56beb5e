output "load_balancer_dns_name" {
  description = "DNS name of the Network Load Balancer (the agents' AggregatorEndpoint, via a CNAME matching the QUIC certificate)."
  value       = aws_lb.this.dns_name
}

output "quic_endpoint" {
  description = "host:port the agents send batches to."
  value       = "${aws_lb.this.dns_name}:${var.quic_port}"
}

output "dashboard_url" {
  description = "HTTP API and dashboard."
  value       = "https://${aws_lb.this.dns_name}:${var.https_listener_port}/"
}

output "task_role_arn" {
  description = "Aggregator task role: the principal the management-account read role trusts."
  value       = aws_iam_role.task.arn
}

output "database_url_secret_arn" {
  description = "Secret holding the database URL."
  value       = local.database_url_secret_arn
}

output "ca_key_secret_arn" {
  description = "Secret holding the CA private key (fill it when the module created it)."
  value       = local.ca_key_secret_arn
}

output "database_endpoint" {
  description = "RDS endpoint, or null with an external database."
  value       = local.create_database ? aws_db_instance.this[0].endpoint : null
}

output "log_group_name" {
  description = "Aggregator log group."
  value       = aws_cloudwatch_log_group.this.name
}

output "alarm_topic_arn" {
  description = "SNS topic the alarms notify."
  value       = local.alarm_topic_arn
}

output "cluster_name" {
  description = "ECS cluster of the aggregator."
  value       = aws_ecs_cluster.this.name
}

output "service_name" {
  description = "ECS service of the aggregator."
  value       = aws_ecs_service.this.name
}

output "server_id" {
  description = "This deployment's id: the agents' aggregator_server_id."
  value       = var.server_id
}

output "sts_url" {
  description = "The STS endpoint agents must sign their identity proof for: the agents' sts_url."
  value       = var.sts_url
}
