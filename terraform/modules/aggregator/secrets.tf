# Database URL (with credentials) and the CA key live in Secrets Manager and
# reach the task as environment variables injected by ECS at start-up.

resource "random_password" "database" {
  count   = local.create_database ? 1 : 0
  length  = 40
  special = false
}

resource "aws_secretsmanager_secret" "database_url" {
  count                   = local.create_database ? 1 : 0
  name_prefix             = "${var.name}/aggregator/database-url-"
  description             = "postgres:// URL of the Canopy aggregator's RDS database, with credentials"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 7
  tags                    = local.tags
  #checkov:skip=CKV2_AWS_57: rotation needs a task restart to take effect; rotate with `terraform apply -replace=module.aggregator.random_password.database[0]` followed by a service redeployment (docs/deploy.md)
}

resource "aws_secretsmanager_secret_version" "database_url" {
  count     = local.create_database ? 1 : 0
  secret_id = aws_secretsmanager_secret.database_url[0].id
  secret_string = format(
    # verify-full: TLS, the server certificate chains to the RDS CA bundle the
    # image carries (docker/aggregator.Dockerfile) and names this host.
    "postgres://canopy:%s@%s:%d/canopy?sslmode=verify-full&sslrootcert=${local.rds_ca_bundle_path}",
    random_password.database[0].result,
    aws_db_instance.this[0].address,
    aws_db_instance.this[0].port,
  )
}

resource "aws_secretsmanager_secret" "ca_key" {
  count                   = local.create_ca_key ? 1 : 0
  name_prefix             = "${var.name}/aggregator/ca-key-"
  description             = "PEM private key of the CA that signs Canopy agent certificates (value set out of band, never in Terraform state)"
  kms_key_id              = aws_kms_key.this.arn
  recovery_window_in_days = 30
  tags                    = local.tags
  #checkov:skip=CKV2_AWS_57: a CA key is not rotated by a Lambda; a new CA is rolled out with the StackSet's AggregatorCaCertificate parameter (docs/deploy.md)
}
