//! `GET /v1/fleet`: fleet health for the platform team rolling agents out.
//!
//! One row per (account, region, agent) seen in the directory, the inventory
//! or the facts of the last `window_hours` (default 2, at most 168; the
//! facts scan grows with it), with the agent's last batch
//! and lag; accounts of the directory with no agent at all come first.
//! Agent version, outbox backlog and error counts come from the newest
//! status the agent sent (protocol v2, table `agent_status`); they are null
//! for an agent that never sent one (a v1 agent).

use axum::Json;
use axum::extract::{Extension, Query, State};
use serde_json::{Value, json};
use sqlx::Row;

use super::{DashboardError, DashboardState, bad};
use crate::auth::Principal;
use crate::query::params::parse_instant;
use crate::time::HOUR_S;

const FLEET_SQL: &str = r#"
WITH cells AS (
    SELECT account_id, region, agent_id, max(t) AS last_data_at
    FROM (SELECT account_id, region, agent_id, period_start AS t FROM emission_facts
          WHERE period_start >= to_timestamp($1) AND period_start < to_timestamp($2)
          UNION ALL
          -- Segments carry account, region, agent and start themselves: no unnesting.
          SELECT account_id, region, agent_id, period_start FROM emission_fact_segments
          WHERE period_start >= to_timestamp($1) AND period_start < to_timestamp($2)
            AND cardinality(superseded) < record_count
          UNION ALL
          SELECT account_id, region, agent_id, last_seen FROM resources) x
    GROUP BY account_id, region, agent_id
), known AS (
    SELECT account_id FROM accounts UNION SELECT account_id FROM cells
)
SELECT k.account_id, COALESCE(acc.name, '') AS name, COALESCE(acc.ou_path, '') AS ou_path,
       c.region, c.agent_id,
       extract(epoch FROM c.last_data_at)::bigint AS last_data_unix_s,
       extract(epoch FROM ag.last_batch_at)::bigint AS last_batch_unix_s,
       ag.last_sequence, ag.batches,
       st.agent_version, st.outbox_backlog_frames, st.outbox_backlog_bytes, st.records_shed_total,
       st.collection_errors_total, st.send_failures_total,
       (extract(epoch FROM st.taken_at) * 1000)::bigint AS status_taken_at_unix_ms
FROM known k
LEFT JOIN accounts acc ON acc.account_id = k.account_id
LEFT JOIN cells c ON c.account_id = k.account_id
-- One row per (account, agent), kept by a trigger on the batch log
-- (migration 0018): this read does not grow with the log's history.
-- Batches stored outside QUIC ingest (tests, benches) are logged under
-- account ''; the cell's own account wins when both exist.
LEFT JOIN LATERAL (
    SELECT f.last_batch_at, f.last_sequence, f.batches FROM agent_fleet f
    WHERE f.agent_id = c.agent_id AND f.account_id IN (c.account_id, '')
    ORDER BY f.account_id DESC LIMIT 1
) ag ON true
LEFT JOIN agent_status st ON st.account_id = c.account_id AND st.agent_id = c.agent_id
-- The caller's scope (NULL: not restricted): accounts, OU subtrees, and
-- for teams the accounts holding a resource of one of them.
WHERE ($3::text[] IS NULL OR k.account_id = ANY($3::text[]))
  AND ($4::text[] IS NULL OR EXISTS (SELECT 1 FROM unnest($4::text[]) o
                                     WHERE acc.ou_path = o OR starts_with(acc.ou_path, o || '/')))
  AND ($5::text[] IS NULL OR EXISTS (SELECT 1 FROM resources r
                                     WHERE r.account_id = k.account_id AND r.team = ANY($5::text[])))
ORDER BY (c.agent_id IS NULL) DESC, k.account_id, c.region, c.agent_id
"#;

fn non_empty(values: &[String]) -> Option<Vec<String>> {
    (!values.is_empty()).then(|| values.to_vec())
}

/// The handler: only the cells inside the caller's scope. Parameters: `now` (default the server clock), `window_hours`.
pub async fn handler(
    State(s): State<DashboardState>,
    Extension(principal): Extension<Principal>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> Result<Json<Value>, DashboardError> {
    let mut now = (s.clock)();
    let mut window_hours = 2_i64;
    for (key, value) in pairs {
        match key.as_str() {
            "now" => now = parse_instant(&value).map_err(|m| bad("now", m))?,
            "window_hours" => {
                window_hours = value.parse::<i64>().ok().filter(|h| (1..=168).contains(h)).ok_or_else(|| {
                    bad("window_hours", format!("expected a whole number from 1 to 168, found {value:?}"))
                })?;
            }
            _ => return Err(bad(&key, "unknown parameter; expected now or window_hours")),
        }
    }
    let rows = sqlx::query(FLEET_SQL)
        .bind((now - window_hours * HOUR_S) as f64)
        .bind(now as f64)
        .bind(non_empty(&principal.scope.accounts))
        .bind(non_empty(&principal.scope.ous))
        .bind(non_empty(&principal.scope.teams))
        .fetch_all(s.engine.pool())
        .await?;
    let mut without_agent = 0_u64;
    let cells: Vec<Value> = rows
        .iter()
        .map(|r| {
            let agent: Option<String> = r.get("agent_id");
            if agent.is_none() {
                without_agent += 1;
            }
            let last_batch: Option<i64> = r.get("last_batch_unix_s");
            let collection_errors: Option<i64> = r.get("collection_errors_total");
            let send_failures: Option<i64> = r.get("send_failures_total");
            json!({
                "account_id": r.get::<String, _>("account_id"),
                "account_name": r.get::<String, _>("name"),
                "ou_path": r.get::<String, _>("ou_path"),
                "region": r.get::<Option<String>, _>("region"),
                "agent_id": agent,
                "last_data_unix_s": r.get::<Option<i64>, _>("last_data_unix_s"),
                "last_batch_unix_s": last_batch,
                "lag_s": last_batch.map(|t| (now - t).max(0)),
                "last_sequence": r.get::<Option<i64>, _>("last_sequence"),
                "batches": r.get::<Option<i64>, _>("batches"),
                "agent_version": r.get::<Option<String>, _>("agent_version"),
                "outbox_backlog": r.get::<Option<i64>, _>("outbox_backlog_frames"),
                "outbox_backlog_bytes": r.get::<Option<i64>, _>("outbox_backlog_bytes"),
                "records_shed": r.get::<Option<i64>, _>("records_shed_total"),
                "collection_errors": collection_errors,
                "send_failures": send_failures,
                "error_count": collection_errors.zip(send_failures).map(|(c, f)| c.saturating_add(f)),
                "status_taken_at_unix_ms": r.get::<Option<i64>, _>("status_taken_at_unix_ms"),
            })
        })
        .collect();
    Ok(Json(json!({
        "now_unix_s": now,
        "window_hours": window_hours,
        "accounts_without_agent": without_agent,
        "cells": cells,
    })))
}
