-- Issue 19 §2: who may see what.
--
-- 1. API tokens for machines: only a SHA-256 of the secret is stored (the
--    secret is 32 random bytes, shown once by `canopy-aggregator tokens
--    create`); each token carries its role and scope, an expiry and, once
--    revoked, the instant it was revoked.
CREATE TABLE IF NOT EXISTS api_tokens (
    token_id     text PRIMARY KEY,
    secret_sha256 bytea NOT NULL CHECK (length(secret_sha256) = 32),
    name         text NOT NULL,
    role         text NOT NULL CHECK (role IN ('org_viewer', 'ou_viewer', 'team_viewer', 'admin')),
    scope_ous    text[] NOT NULL DEFAULT '{}',
    scope_accounts text[] NOT NULL DEFAULT '{}',
    scope_teams  text[] NOT NULL DEFAULT '{}',
    created_by   text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);

-- 2. The audit log of admin actions (who, what, when, before/after):
--    append-only. UPDATE, DELETE and TRUNCATE raise an error, whoever runs them
--    (a trigger, so it holds for the table owner too, unlike REVOKE).
CREATE TABLE IF NOT EXISTS audit_log (
    audit_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text NOT NULL,
    action       text NOT NULL,
    target       text NOT NULL,
    before       jsonb,
    after        jsonb
);

CREATE OR REPLACE FUNCTION canopy_audit_log_append_only() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$fn$;
DROP TRIGGER IF EXISTS audit_log_append_only ON audit_log;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION canopy_audit_log_append_only();
DROP TRIGGER IF EXISTS audit_log_no_truncate ON audit_log;
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION canopy_audit_log_append_only();
