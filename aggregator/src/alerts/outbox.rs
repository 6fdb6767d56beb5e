//! The alert outbox sender: delivers the rows the evaluator committed to
//! `alert_outbox`, per route in order, each until its receiver accepts
//! (retrying with exponential backoff and jitter through `backon`), and
//! marks it delivered only then. A restart resumes from the table, so
//! delivery is at-least-once; receivers deduplicate by `dedup_key`. A
//! route's rate limit and quiet hours hold its queue back (nothing is
//! dropped). One sender per database: it holds a session advisory lock.
//! It never decides alerts.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use serde_json::Value;
use sqlx::{Connection, PgPool, Row};

use super::AlertsConfig;
use super::metrics::{AlertMetrics, kind_index};
use super::notify::{NotifyError, Notifiers};
use super::routes::{self, Route};

/// Session advisory lock held by the one active sender of a database.
const SENDER_LOCK: i64 = 0x0063_616e_6f70_794f;

/// The sender.
pub struct Sender {
    /// Pool.
    pub pool: PgPool,
    /// Channels.
    pub notifiers: Arc<Notifiers>,
    /// Configuration (backoff bounds).
    pub config: AlertsConfig,
    /// Counters.
    pub metrics: Arc<AlertMetrics>,
    /// Woken by the evaluator after it enqueued rows.
    pub wake: Arc<tokio::sync::Notify>,
    running: Mutex<HashSet<String>>,
}

struct OutboxRow {
    outbox_id: i64,
    alert_id: i64,
    action: String,
    event: Value,
}

impl Sender {
    /// A sender over `pool`.
    pub fn new(
        pool: PgPool,
        notifiers: Arc<Notifiers>,
        config: AlertsConfig,
        metrics: Arc<AlertMetrics>,
        wake: Arc<tokio::sync::Notify>,
    ) -> Sender {
        Sender { pool, notifiers, config, metrics, wake, running: Mutex::new(HashSet::new()) }
    }

    /// Runs forever: takes the sender lock, then starts a worker for every
    /// route with pending rows whenever woken (or every 2 s).
    pub async fn run_forever(self: Arc<Self>) {
        loop {
            let mut conn = match self.pool.acquire().await {
                Ok(c) => c.detach(),
                Err(e) => {
                    tracing::warn!(error = %e, "alert sender cannot connect; retrying");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            let locked: bool = match sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                .bind(SENDER_LOCK)
                .fetch_one(&mut conn)
                .await
            {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "alert sender lock failed; retrying");
                    false
                }
            };
            if !locked {
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            tracing::info!("alert sender active");
            loop {
                if let Err(e) = self.clone().start_workers().await {
                    tracing::warn!(error = %e, "alert sender could not list pending notifications");
                }
                let _ = tokio::time::timeout(Duration::from_secs(2), self.wake.notified()).await;
                if let Err(e) = conn.ping().await {
                    tracing::warn!(error = %e, "alert sender lost its lock connection; taking the lock again");
                    break;
                }
            }
        }
    }

    async fn start_workers(self: Arc<Self>) -> Result<(), sqlx::Error> {
        let pending: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT route FROM alert_outbox WHERE delivered_at IS NULL AND failed_at IS NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        for route in pending {
            let fresh = self.running.lock().map(|mut r| r.insert(route.clone())).unwrap_or(false);
            if fresh {
                let me = self.clone();
                tokio::spawn(async move {
                    if let Err(e) = me.drain_route(&route).await {
                        tracing::warn!(route, error = %e, "alert route worker stopped; restarted on the next wake");
                    }
                    if let Ok(mut r) = me.running.lock() {
                        r.remove(&route);
                    }
                });
            }
        }
        Ok(())
    }

    /// Delivers `route`'s pending rows in order until none is left.
    async fn drain_route(&self, name: &str) -> Result<(), sqlx::Error> {
        loop {
            let row = sqlx::query(
                "SELECT outbox_id, alert_id, action, event FROM alert_outbox
                 WHERE route = $1 AND delivered_at IS NULL AND failed_at IS NULL ORDER BY outbox_id LIMIT 1",
            )
            .bind(name)
            .fetch_optional(&self.pool)
            .await?;
            let Some(row) = row else { return Ok(()) };
            let row = OutboxRow {
                outbox_id: row.try_get("outbox_id")?,
                alert_id: row.try_get("alert_id")?,
                action: row.try_get("action")?,
                event: row.try_get("event")?,
            };
            let Some(route) = routes::get(&self.pool, name).await? else {
                self.finish(&row, name, "pagerduty", Err(NotifyError::Rejected(format!("route {name:?} no longer exists"))), 0)
                    .await?;
                continue;
            };
            if let Some(wait) = self.hold(&route, &row).await? {
                self.metrics.held_total.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(route = name, wait_s = wait.as_secs(), "alert notification held by rate limit or quiet hours");
                tokio::time::sleep(wait).await;
                continue;
            }
            let attempts = AtomicU32::new(0);
            let kind = route.kind();
            let backoff = ExponentialBuilder::default()
                .with_min_delay(self.config.retry_min)
                .with_max_delay(self.config.retry_max)
                .with_jitter()
                .without_max_times();
            let result = (|| async {
                attempts.fetch_add(1, Ordering::Relaxed);
                self.notifiers.send(&route, &row.event).await
            })
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(NotifyError::is_retryable)
            .notify(|e, wait| {
                self.metrics.delivery_failures_total[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
                tracing::warn!(route = name, outbox_id = row.outbox_id, error = %e, retry_in_ms = wait.as_millis() as u64,
                    "alert delivery failed; retrying");
                let (pool, id, err) = (self.pool.clone(), row.outbox_id, e.to_string());
                tokio::spawn(async move {
                    let _ = sqlx::query("UPDATE alert_outbox SET attempts = attempts + 1, last_error = $2 WHERE outbox_id = $1")
                        .bind(id)
                        .bind(err)
                        .execute(&pool)
                        .await;
                });
            })
            .await;
            self.finish(&row, name, kind, result, attempts.load(Ordering::Relaxed)).await?;
        }
    }

    /// How long `route` must wait before delivering `row`, if at all (at
    /// most 5 s: the route and its window are checked again after it, so a
    /// changed route takes effect quickly).
    async fn hold(&self, route: &Route, row: &OutboxRow) -> Result<Option<Duration>, sqlx::Error> {
        let now = crate::http::system_clock();
        let urgent = row.action == "resolve" || row.event.get("severity").and_then(Value::as_str) == Some("critical");
        if !urgent && route.is_quiet(now) {
            return Ok(Some(Duration::from_secs(route.quiet_remaining_s(now).clamp(1, 5) as u64)));
        }
        if let Some(max) = route.max_per_hour {
            let (count, oldest): (i64, Option<f64>) = sqlx::query_as(
                "SELECT count(*), min(extract(epoch FROM delivered_at))::float8 FROM alert_outbox
                 WHERE route = $1 AND delivered_at > now() - interval '1 hour'",
            )
            .bind(&route.name)
            .fetch_one(&self.pool)
            .await?;
            if count >= i64::from(max) {
                let free_at = oldest.unwrap_or(now as f64) + 3_600.0;
                return Ok(Some(Duration::from_secs_f64((free_at - now as f64).clamp(1.0, 5.0))));
            }
        }
        Ok(None)
    }

    async fn finish(
        &self,
        row: &OutboxRow,
        route: &str,
        kind: &str,
        result: Result<(), NotifyError>,
        attempts: u32,
    ) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        let (event, detail) = match &result {
            Ok(()) => {
                sqlx::query("UPDATE alert_outbox SET delivered_at = now(), attempts = $2 WHERE outbox_id = $1")
                    .bind(row.outbox_id)
                    .bind(attempts as i32)
                    .execute(&mut *tx)
                    .await?;
                self.metrics.delivered_total[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
                tracing::info!(route, outbox_id = row.outbox_id, action = row.action, attempts, "alert notification delivered");
                ("notified", format!("{} accepted after {attempts} attempt(s)", row.action))
            }
            Err(e) => {
                sqlx::query("UPDATE alert_outbox SET failed_at = now(), attempts = $2, last_error = $3 WHERE outbox_id = $1")
                    .bind(row.outbox_id)
                    .bind(attempts as i32)
                    .bind(e.to_string())
                    .execute(&mut *tx)
                    .await?;
                self.metrics.delivery_rejected_total[kind_index(kind)].fetch_add(1, Ordering::Relaxed);
                tracing::error!(route, outbox_id = row.outbox_id, error = %e, "alert notification refused for good");
                ("delivery_failed", format!("{} refused: {e}", row.action))
            }
        };
        sqlx::query("INSERT INTO alert_events (alert_id, event, route, detail) VALUES ($1, $2, $3, $4)")
            .bind(row.alert_id)
            .bind(event)
            .bind(route)
            .bind(detail)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }
}
