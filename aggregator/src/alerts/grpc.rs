//! gRPC CRUD of budgets (`proto/canopy_budgets.proto`). Each message is
//! turned into the HTTP API's JSON body and checked by the same
//! [`budgets::parse_spec`] and store validation, so both APIs accept and
//! refuse alike. Kept apart from the query service so an auth layer can
//! wrap it.

use serde_json::{Map, Value, json};
use sqlx::PgPool;
use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use super::AlertError;
use super::budgets::{self, Budget};

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
}

impl GrpcBudgets {
    /// A service over the alerting pool.
    pub fn new(pool: PgPool) -> GrpcBudgets {
        GrpcBudgets { pool }
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
        AlertError::Sql(e) => Status::internal(e.to_string()),
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
            pagerduty_routing_key: text(&s.pagerduty_routing_key),
        }),
    }
}

fn parse(spec: Option<&pb::BudgetSpec>) -> Result<budgets::BudgetSpec, Status> {
    let spec = spec.ok_or_else(|| status(super::FieldError::new("spec", "required").into()))?;
    budgets::parse_spec(&spec_json(spec)).map_err(|e| status(e.into()))
}

#[tonic::async_trait]
impl pb::canopy_budgets_server::CanopyBudgets for GrpcBudgets {
    async fn list_budgets(&self, _: Request<pb::ListBudgetsRequest>) -> Result<Response<pb::ListBudgetsResponse>, Status> {
        let all = budgets::list(&self.pool).await.map_err(|e| status(e.into()))?;
        Ok(Response::new(pb::ListBudgetsResponse { budgets: all.iter().map(message).collect() }))
    }

    async fn get_budget(&self, r: Request<pb::GetBudgetRequest>) -> Result<Response<pb::Budget>, Status> {
        let b = budgets::get(&self.pool, r.into_inner().budget_id).await.map_err(status)?;
        Ok(Response::new(message(&b)))
    }

    async fn create_budget(&self, r: Request<pb::CreateBudgetRequest>) -> Result<Response<pb::Budget>, Status> {
        let spec = parse(r.get_ref().spec.as_ref())?;
        let b = budgets::create(&self.pool, &spec).await.map_err(status)?;
        Ok(Response::new(message(&b)))
    }

    async fn update_budget(&self, r: Request<pb::UpdateBudgetRequest>) -> Result<Response<pb::Budget>, Status> {
        let m = r.into_inner();
        let spec = parse(m.spec.as_ref())?;
        let b = budgets::update(&self.pool, m.budget_id, &spec).await.map_err(status)?;
        Ok(Response::new(message(&b)))
    }

    async fn delete_budget(&self, r: Request<pb::DeleteBudgetRequest>) -> Result<Response<pb::DeleteBudgetResponse>, Status> {
        budgets::delete(&self.pool, r.into_inner().budget_id).await.map_err(status)?;
        Ok(Response::new(pb::DeleteBudgetResponse {}))
    }
}
