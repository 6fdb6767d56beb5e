//! gRPC CRUD of budgets (`proto/canopy_budgets.proto`). Each message is
//! turned into the HTTP API's JSON body and checked by the same
//! [`budgets::parse_spec`] and store validation, so both APIs accept and
//! refuse alike. Every method authenticates its caller first
//! ([`Auth::authenticate_grpc`], UNAUTHENTICATED otherwise) and applies the
//! same rules as the HTTP API ([`super::access`]): writes need admin
//! (PERMISSION_DENIED) and are audited, reads see only budgets within the
//! caller's scope (NOT_FOUND for another one). Replies carry no PagerDuty
//! routing key (the field is empty); an update replaces the whole spec, so
//! it must resend the key to keep it.

use serde_json::{Map, Value, json};
use sqlx::PgPool;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use super::AlertError;
use super::access::{BudgetFilter, actor, require_admin};
use super::budgets::{self, Budget};
use crate::auth::Auth;

/// Generated protobuf types and the service trait.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("canopy.budgets.v1");
}

pub use pb::canopy_budgets_client::CanopyBudgetsClient;
pub use pb::canopy_budgets_server::CanopyBudgetsServer;

/// The gRPC budget service.
#[derive(Debug, Clone)]
pub struct GrpcBudgets {
    pool: PgPool,
    auth: Auth,
}

impl GrpcBudgets {
    /// A service over the alerting pool, answering callers `auth` accepts.
    pub fn new(pool: PgPool, auth: Auth) -> GrpcBudgets {
        GrpcBudgets { pool, auth }
    }

    /// Wrapped as a tonic server.
    pub fn into_server(self) -> CanopyBudgetsServer<GrpcBudgets> {
        CanopyBudgetsServer::new(self)
    }
}

fn status(e: AlertError) -> Status {
    match e {
        AlertError::Invalid(f) => {
            let mut s = Status::invalid_argument(f.to_string());
            if let Ok(v) = MetadataValue::try_from(f.field.as_str()) {
                s.metadata_mut().insert("canopy-field", v);
            }
            s
        }
        AlertError::NotFound(what) => Status::not_found(format!("{what} not found")),
        AlertError::Forbidden(message) => Status::permission_denied(message),
        AlertError::Unauthenticated => Status::unauthenticated("authentication required"),
        AlertError::Sql(e) => crate::error_reply::internal_status("budgets gRPC request", &e),
    }
}

fn opt(s: &str) -> Value {
    if s.is_empty() { Value::Null } else { json!(s) }
}

/// The HTTP API's body for a spec message.
fn spec_json(m: &pb::BudgetSpec) -> Value {
    let mut o = Map::new();
    o.insert("name".into(), opt(&m.name));
    if let Some(s) = &m.scope {
        o.insert(
            "scope".into(),
            json!({ "ou_id": opt(&s.ou_id), "account_id": opt(&s.account_id), "team": opt(&s.team), "service": opt(&s.service) }),
        );
    }
    o.insert("period".into(), opt(&m.period));
    if m.fiscal_start_month != 0 {
        o.insert("fiscal_start_month".into(), json!(m.fiscal_start_month));
    }
    o.insert("basis".into(), opt(&m.basis));
    o.insert("amount_kg_co2e".into(), json!(m.amount_kg_co2e));
    if !m.thresholds_pct.is_empty() {
        o.insert("thresholds_pct".into(), json!(m.thresholds_pct));
    }
    if let Some(f) = m.forecast_overshoot {
        o.insert("forecast_overshoot".into(), json!(f));
    }
    if let Some(b) = &m.burn_rate {
        o.insert("burn_rate".into(), json!({ "factor_1h": b.factor_1h, "factor_24h": b.factor_24h }));
    }
    o.insert("routes".into(), json!(m.routes));
    o.insert("pagerduty_routing_key".into(), opt(&m.pagerduty_routing_key));
    Value::Object(o)
}

fn message(b: &Budget) -> pb::Budget {
    let s = &b.spec;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    pb::Budget {
        budget_id: b.budget_id,
        spec: Some(pb::BudgetSpec {
            name: s.name.clone(),
            scope: Some(pb::Scope {
                ou_id: text(&s.scope.ou_id),
                account_id: text(&s.scope.account_id),
                team: text(&s.scope.team),
                service: text(&s.scope.service),
            }),
            period: s.period.name().to_owned(),
            fiscal_start_month: s.fiscal_start_month,
            basis: s.basis.name().to_owned(),
            amount_kg_co2e: s.amount_kg_co2e,
            thresholds_pct: s.thresholds_pct.clone(),
            forecast_overshoot: Some(s.forecast_overshoot),
            burn_rate: s.burn_rate.map(|b| pb::BurnRate { factor_1h: b.factor_1h, factor_24h: b.factor_24h }),
            routes: s.routes.clone(),
            // Never returned (see the module header).
            pagerduty_routing_key: String::new(),
        }),
    }
}

fn parse(spec: Option<&pb::BudgetSpec>) -> Result<budgets::BudgetSpec, Status> {
    let spec = spec.ok_or_else(|| status(super::FieldError::new("spec", "required").into()))?;
    budgets::parse_spec(&spec_json(spec)).map_err(|e| status(e.into()))
}

#[tonic::async_trait]
impl pb::canopy_budgets_server::CanopyBudgets for GrpcBudgets {
    async fn list_budgets(&self, r: Request<pb::ListBudgetsRequest>) -> Result<Response<pb::ListBudgetsResponse>, Status> {
        let p = self.auth.authenticate_grpc(r.metadata()).await?;
        let filter = BudgetFilter::load(&self.pool, &p).await.map_err(|e| status(e.into()))?;
        let all = budgets::list(&self.pool).await.map_err(|e| status(e.into()))?;
        Ok(Response::new(pb::ListBudgetsResponse {
            budgets: all.iter().filter(|b| filter.allows(b)).map(message).collect(),
        }))
    }

    async fn get_budget(&self, r: Request<pb::GetBudgetRequest>) -> Result<Response<pb::Budget>, Status> {
        let p = self.auth.authenticate_grpc(r.metadata()).await?;
        let id = r.into_inner().budget_id;
        let b = budgets::get(&self.pool, id).await.map_err(status)?;
        let filter = BudgetFilter::load(&self.pool, &p).await.map_err(|e| status(e.into()))?;
        if !filter.allows(&b) {
            return Err(status(AlertError::NotFound(format!("budget {id}"))));
        }
        Ok(Response::new(message(&b)))
    }

    async fn create_budget(&self, r: Request<pb::CreateBudgetRequest>) -> Result<Response<pb::Budget>, Status> {
        let p = self.auth.authenticate_grpc(r.metadata()).await?;
        require_admin(&p, "creating a budget").map_err(status)?;
        let spec = parse(r.get_ref().spec.as_ref())?;
        let b = budgets::create(&self.pool, &actor(&p), &spec).await.map_err(status)?;
        Ok(Response::new(message(&b)))
    }

    async fn update_budget(&self, r: Request<pb::UpdateBudgetRequest>) -> Result<Response<pb::Budget>, Status> {
        let p = self.auth.authenticate_grpc(r.metadata()).await?;
        require_admin(&p, "updating a budget").map_err(status)?;
        let m = r.into_inner();
        let spec = parse(m.spec.as_ref())?;
        let b = budgets::update(&self.pool, &actor(&p), m.budget_id, &spec, false).await.map_err(status)?;
        Ok(Response::new(message(&b)))
    }

    async fn delete_budget(&self, r: Request<pb::DeleteBudgetRequest>) -> Result<Response<pb::DeleteBudgetResponse>, Status> {
        let p = self.auth.authenticate_grpc(r.metadata()).await?;
        require_admin(&p, "deleting a budget").map_err(status)?;
        budgets::delete(&self.pool, &actor(&p), r.into_inner().budget_id).await.map_err(status)?;
        Ok(Response::new(pb::DeleteBudgetResponse {}))
    }
}
