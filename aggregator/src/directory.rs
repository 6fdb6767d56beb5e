//! The organisation directory: organisations and accounts as refreshed from
//! AWS Organizations (through the management-account agent or a configured
//! role), and the attribution settings (team tag key, per-account default
//! team).

use sqlx::PgExecutor;

use crate::ingest::is_account_id;

/// Errors of directory updates.
#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    /// A value failed validation.
    #[error("{field}: {message}")]
    Invalid {
        /// Field name.
        field: &'static str,
        /// What was expected and what was found.
        message: String,
    },
    /// A statement failed.
    #[error("database error while updating the directory: {0}")]
    Sql(#[from] sqlx::Error),
}

/// One account from AWS Organizations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountRow {
    /// 12-digit account id.
    pub account_id: String,
    /// Organisation id (`o-...`), when known.
    pub organisation_id: Option<String>,
    /// Account name.
    pub name: String,
    /// OU path from the root, `/`-separated ids.
    pub ou_path: String,
    /// Account tags.
    pub tags: Vec<(String, String)>,
    /// `ACTIVE`, `SUSPENDED`, ...
    pub status: String,
}

fn check_account(field: &'static str, id: &str) -> Result<(), DirectoryError> {
    if is_account_id(id) {
        Ok(())
    } else {
        Err(DirectoryError::Invalid { field, message: format!("expected a 12-digit account id, found {id:?}") })
    }
}

/// Inserts or updates an organisation.
pub async fn upsert_organisation<'e>(
    executor: impl PgExecutor<'e>,
    organisation_id: &str,
    management_account_id: &str,
    name: &str,
) -> Result<(), DirectoryError> {
    check_account("management_account_id", management_account_id)?;
    sqlx::query(
        "INSERT INTO organisations (organisation_id, management_account_id, name) VALUES ($1, $2, $3)
         ON CONFLICT (organisation_id) DO UPDATE SET management_account_id = excluded.management_account_id,
             name = excluded.name, updated_at = now()",
    )
    .bind(organisation_id)
    .bind(management_account_id)
    .bind(name)
    .execute(executor)
    .await?;
    Ok(())
}

/// Inserts or updates accounts (a refresh of the organisation's listing).
pub async fn upsert_accounts<'e>(executor: impl PgExecutor<'e>, accounts: &[AccountRow]) -> Result<u64, DirectoryError> {
    for a in accounts {
        check_account("account_id", &a.account_id)?;
    }
    let tags: Vec<String> = accounts
        .iter()
        .map(|a| {
            let map: serde_json::Map<String, serde_json::Value> =
                a.tags.iter().map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone()))).collect();
            serde_json::Value::Object(map).to_string()
        })
        .collect();
    let done = sqlx::query(
        "INSERT INTO accounts (account_id, organisation_id, name, ou_path, tags, status)
         SELECT a, o, n, p, t::jsonb, s
         FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[]) AS x(a, o, n, p, t, s)
         ON CONFLICT (account_id) DO UPDATE SET organisation_id = excluded.organisation_id, name = excluded.name,
             ou_path = excluded.ou_path, tags = excluded.tags, status = excluded.status, updated_at = now()",
    )
    .bind(accounts.iter().map(|a| a.account_id.clone()).collect::<Vec<_>>())
    .bind(accounts.iter().map(|a| a.organisation_id.clone()).collect::<Vec<_>>())
    .bind(accounts.iter().map(|a| a.name.clone()).collect::<Vec<_>>())
    .bind(accounts.iter().map(|a| a.ou_path.clone()).collect::<Vec<_>>())
    .bind(tags)
    .bind(accounts.iter().map(|a| a.status.clone()).collect::<Vec<_>>())
    .execute(executor)
    .await?;
    Ok(done.rows_affected())
}

/// Sets (or with `None` removes) an account's default team, used for its
/// resources without the team tag. Applies to facts stored afterwards.
pub async fn set_account_default_team<'e>(
    executor: impl PgExecutor<'e>,
    account_id: &str,
    team: Option<&str>,
) -> Result<(), DirectoryError> {
    check_account("account_id", account_id)?;
    match team {
        Some("") => {
            return Err(DirectoryError::Invalid { field: "team", message: "expected a non-empty team, found \"\"".into() });
        }
        Some(team) => {
            sqlx::query(
                "INSERT INTO account_team_rules (account_id, default_team) VALUES ($1, $2)
                 ON CONFLICT (account_id) DO UPDATE SET default_team = excluded.default_team",
            )
            .bind(account_id)
            .bind(team)
            .execute(executor)
            .await?;
        }
        None => {
            sqlx::query("DELETE FROM account_team_rules WHERE account_id = $1").bind(account_id).execute(executor).await?;
        }
    }
    Ok(())
}

/// Sets the resource tag key whose value names the team. Applies to facts
/// stored afterwards (stored facts keep their attribution).
pub async fn set_team_tag_key<'e>(executor: impl PgExecutor<'e>, key: &str) -> Result<(), DirectoryError> {
    if key.is_empty() || key.len() > 128 {
        return Err(DirectoryError::Invalid {
            field: "team_tag_key",
            message: format!("expected 1 to 128 bytes, found {} bytes", key.len()),
        });
    }
    sqlx::query("UPDATE canopy_settings SET team_tag_key = $1").bind(key).execute(executor).await?;
    Ok(())
}
