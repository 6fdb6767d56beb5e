//! gRPC (tonic) over the query layer, with the HTTP API's semantics: each
//! request is turned into the same named parameters and validated by
//! [`crate::query::params`], so both APIs accept and reject alike.

use tonic::metadata::MetadataValue;
use tonic::{Request, Response, Status};

use crate::auth::Auth;
use crate::http::Clock;
use crate::query::params::{self, ParamError};
use crate::query::{
    Dimension, Metrics, QueryEngine, QueryError, Segment, SeriesResponse, TopResourcesResponse, TotalsResponse,
};

/// Generated protobuf types and the service trait of `proto/canopy_query.proto`.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("canopy.query.v1");
}

pub use pb::canopy_query_client::CanopyQueryClient;
pub use pb::canopy_query_server::CanopyQueryServer;

/// The gRPC service.
#[derive(Debug, Clone)]
pub struct GrpcQuery {
    engine: QueryEngine,
    clock: Clock,
    auth: Auth,
}

impl GrpcQuery {
    /// A service over `engine`; `clock` gives "now"; every method
    /// authenticates its caller with `auth` (UNAUTHENTICATED without
    /// credentials) and answers within the caller's scope
    /// (PERMISSION_DENIED for a filter outside it).
    pub fn new(engine: QueryEngine, clock: Clock, auth: Auth) -> Self {
        GrpcQuery { engine, clock, auth }
    }

    /// The development mode's marker on a reply.
    fn reply<T>(&self, message: T) -> Response<T> {
        let mut resp = Response::new(message);
        if self.auth.is_open() {
            resp.metadata_mut().insert(crate::auth::OPEN_ACCESS_HEADER, MetadataValue::from_static("true"));
        }
        resp
    }

    /// Wrapped as a tonic server.
    pub fn into_server(self) -> CanopyQueryServer<GrpcQuery> {
        CanopyQueryServer::new(self)
    }
}

/// Named parameters built from a message; empty fields are left out.
#[derive(Default)]
struct Pairs(Vec<(String, String)>);

impl Pairs {
    fn text(&mut self, name: &str, value: &str) {
        if !value.is_empty() {
            self.0.push((name.to_owned(), value.to_owned()));
        }
    }
    fn list(&mut self, name: &str, values: &[String]) {
        if !values.is_empty() {
            self.0.push((name.to_owned(), values.join(",")));
        }
    }
    fn number(&mut self, name: &str, value: u64) {
        if value != 0 {
            self.0.push((name.to_owned(), value.to_string()));
        }
    }
    fn filters(&mut self, f: Option<&pb::Filters>) {
        let Some(f) = f else { return };
        self.list("account", &f.account);
        self.list("ou", &f.ou);
        self.list("region", &f.region);
        self.list("service", &f.service);
        self.list("resource_type", &f.resource_type);
        self.list("team", &f.team);
        self.list("quality", &f.quality);
    }
}

fn invalid(e: ParamError) -> Status {
    let mut status = Status::invalid_argument(e.to_string());
    if let Ok(value) = MetadataValue::try_from(e.parameter.as_str()) {
        status.metadata_mut().insert("canopy-parameter", value);
    }
    status
}

/// A failed query: INVALID_ARGUMENT (with the HTTP API's message and the
/// parameter in `canopy-parameter`) for a range retention no longer
/// answers, PERMISSION_DENIED outside the caller's scope, INTERNAL (with a
/// request id, never the database's message) otherwise.
fn internal(e: QueryError) -> Status {
    if let QueryError::OutsideRetention(e) = e {
        return invalid(ParamError { parameter: e.parameter.to_owned(), message: e.message });
    }
    if let QueryError::Forbidden(f) = &e {
        return Status::permission_denied(f.to_string());
    }
    if let QueryError::Sql(sql) = &e
        && crate::query_limits::is_statement_timeout(sql)
    {
        return crate::query_limits::statement_timeout_status();
    }
    // Never the database's message: logged under a request id.
    crate::error_reply::internal_status("gRPC query", &e)
}

fn metrics(m: &Metrics) -> pb::Metrics {
    pb::Metrics {
        energy_kwh: m.energy_kwh,
        location_kg_co2e: m.location_kg_co2e,
        market_kg_co2e: m.market_kg_co2e,
        low_kg_co2e: m.low_kg_co2e,
        high_kg_co2e: m.high_kg_co2e,
        fact_count: m.fact_count,
        it_energy_kwh: m.it_energy_kwh,
        operational_location_kg_co2e: m.operational_location_kg_co2e,
        operational_location_low_kg_co2e: m.operational_location_low_kg_co2e,
        operational_location_high_kg_co2e: m.operational_location_high_kg_co2e,
        operational_market_kg_co2e: m.operational_market_kg_co2e,
        operational_market_low_kg_co2e: m.operational_market_low_kg_co2e,
        operational_market_high_kg_co2e: m.operational_market_high_kg_co2e,
        embodied_kg_co2e: m.embodied_kg_co2e,
        embodied_low_kg_co2e: m.embodied_low_kg_co2e,
        embodied_high_kg_co2e: m.embodied_high_kg_co2e,
    }
}

fn factor_sets(sets: &[crate::lineage::FactorSet]) -> Vec<pb::FactorSet> {
    sets.iter()
        .map(|f| pb::FactorSet {
            methodology_version: f.methodology_version.clone(),
            location_factor_source: f.location_factor_source.clone(),
            location_factor_vintage: f.location_factor_vintage.clone(),
            market_factor_source: f.market_factor_source.clone(),
            market_factor_vintage: f.market_factor_vintage.clone(),
            parts: f.parts.clone(),
            first_month_unix_s: f.first_month_unix_s,
            last_month_unix_s: f.last_month_unix_s,
        })
        .collect()
}

fn dims(d: &[(Dimension, String)]) -> Vec<pb::DimValue> {
    d.iter().map(|(k, v)| pb::DimValue { dimension: k.name().to_owned(), value: v.clone() }).collect()
}

fn sources(s: &[Segment]) -> Vec<pb::Source> {
    s.iter()
        .map(|s| pb::Source {
            source: s.source.name().to_owned(),
            from_unix_s: s.from_unix_s,
            to_unix_s: s.to_unix_s,
            subtract: s.subtract,
        })
        .collect()
}

fn totals_message(r: &TotalsResponse) -> pb::TotalsResponse {
    pb::TotalsResponse {
        sources: sources(&r.segments),
        total: Some(metrics(&r.total)),
        by_quality: r
            .by_quality
            .iter()
            .map(|q| pb::QualityShare {
                quality: q.quality.clone(),
                metrics: Some(metrics(&q.metrics)),
                share_of_location_co2e: q.share_of_location_co2e,
            })
            .collect(),
        rows: r.rows.iter().map(|g| pb::GroupRow { dims: dims(&g.dims), metrics: Some(metrics(&g.metrics)) }).collect(),
        next_offset: r.next_offset,
        factor_sets: factor_sets(&r.factor_sets),
    }
}

fn series_message(step: &str, from: i64, to: i64, r: &SeriesResponse) -> pb::SeriesResponse {
    pb::SeriesResponse {
        step: step.to_owned(),
        from_unix_s: from,
        to_unix_s: to,
        sources: sources(&r.segments),
        rows: r
            .rows
            .iter()
            .map(|s| pb::SeriesRow {
                bucket_start_unix_s: s.bucket_start_unix_s,
                dims: dims(&s.dims),
                metrics: Some(metrics(&s.metrics)),
            })
            .collect(),
        next_offset: r.next_offset,
        factor_sets: factor_sets(&r.factor_sets),
    }
}

fn top_message(r: &TopResourcesResponse) -> pb::TopResourcesResponse {
    pb::TopResourcesResponse {
        rows: r
            .rows
            .iter()
            .map(|x| pb::ResourceRow {
                account_id: x.account_id.clone(),
                region: x.region.clone(),
                resource_id: x.resource_id.clone(),
                service: x.service.clone(),
                resource_type: x.resource_type.clone(),
                team: x.team.clone(),
                metrics: Some(metrics(&x.metrics)),
            })
            .collect(),
        next_offset: r.next_offset,
        factor_sets: factor_sets(&r.factor_sets),
    }
}

#[tonic::async_trait]
impl pb::canopy_query_server::CanopyQuery for GrpcQuery {
    async fn totals(&self, request: Request<pb::TotalsRequest>) -> Result<Response<pb::TotalsResponse>, Status> {
        let principal = self.auth.authenticate_grpc(request.metadata()).await?;
        let m = request.into_inner();
        let mut p = Pairs::default();
        p.text("from", &m.from);
        p.text("to", &m.to);
        p.list("group_by", &m.group_by);
        p.filters(m.filters.as_ref());
        p.number("limit", u64::from(m.limit));
        p.number("offset", m.offset);
        let req = params::parse_totals(&p.0).map_err(invalid)?;
        let resp = self.engine.totals_for(&principal, &req, (self.clock)()).await.map_err(internal)?;
        Ok(self.reply(totals_message(&resp)))
    }

    async fn series(&self, request: Request<pb::SeriesRequest>) -> Result<Response<pb::SeriesResponse>, Status> {
        let principal = self.auth.authenticate_grpc(request.metadata()).await?;
        let m = request.into_inner();
        let mut p = Pairs::default();
        p.text("from", &m.from);
        p.text("to", &m.to);
        p.text("step", &m.step);
        p.list("group_by", &m.group_by);
        p.filters(m.filters.as_ref());
        p.number("limit", u64::from(m.limit));
        p.number("offset", m.offset);
        let req = params::parse_series(&p.0).map_err(invalid)?;
        let resp = self.engine.series_for(&principal, &req, (self.clock)()).await.map_err(internal)?;
        Ok(self.reply(series_message(req.step.name(), req.from_unix_s, req.to_unix_s, &resp)))
    }

    async fn realtime(&self, request: Request<pb::RealtimeRequest>) -> Result<Response<pb::SeriesResponse>, Status> {
        let principal = self.auth.authenticate_grpc(request.metadata()).await?;
        let m = request.into_inner();
        let mut p = Pairs::default();
        p.text("now", &m.now);
        p.list("group_by", &m.group_by);
        p.filters(m.filters.as_ref());
        p.number("limit", u64::from(m.limit));
        p.number("offset", m.offset);
        let now = (self.clock)();
        let req = params::parse_realtime(&p.0, now).map_err(invalid)?;
        let resp = self.engine.realtime_for(&principal, &req, now).await.map_err(internal)?;
        Ok(self.reply(series_message(req.step.name(), req.from_unix_s, req.to_unix_s, &resp)))
    }

    async fn top_resources(
        &self,
        request: Request<pb::TopResourcesRequest>,
    ) -> Result<Response<pb::TopResourcesResponse>, Status> {
        let principal = self.auth.authenticate_grpc(request.metadata()).await?;
        let m = request.into_inner();
        let mut p = Pairs::default();
        p.text("from", &m.from);
        p.text("to", &m.to);
        p.filters(m.filters.as_ref());
        p.number("limit", u64::from(m.limit));
        p.number("offset", m.offset);
        let req = params::parse_top_resources(&p.0).map_err(invalid)?;
        let resp = self.engine.top_resources_for(&principal, &req, (self.clock)()).await.map_err(internal)?;
        Ok(self.reply(top_message(&resp)))
    }

    async fn restatements(
        &self,
        request: Request<pb::RestatementsRequest>,
    ) -> Result<Response<pb::RestatementsResponse>, Status> {
        // Org-wide records (every touched account's monthly totals): only an
        // unrestricted org viewer or admin reads them, as over HTTP.
        let principal = self.auth.authenticate_grpc(request.metadata()).await?;
        if !principal.scope.is_unrestricted()
            || !matches!(principal.role, crate::auth::Role::Admin | crate::auth::Role::OrgViewer)
        {
            return Err(Status::permission_denied("restatements are org-wide: they need the org_viewer or admin role"));
        }
        let limit = match request.into_inner().limit {
            0 => 20,
            n @ 1..=200 => i64::from(n),
            n => {
                return Err(invalid(ParamError { parameter: "limit".into(), message: format!("expected an integer 1..200, found {n}") }));
            }
        };
        let list = crate::restatement::list(self.engine.pool(), limit).await
            .map_err(|e| crate::error_reply::internal_status("listing restatements", &e))?;
        Ok(self.reply(pb::RestatementsResponse {
            restatements: list
                .into_iter()
                .map(|r| pb::Restatement {
                    id: r.id,
                    factor_set: r.factor_set,
                    old_version: r.old_version,
                    new_version: r.new_version,
                    state: r.state,
                    created_unix_s: r.created_unix_s,
                    finished_unix_s: r.finished_unix_s,
                    facts_restated: r.facts_restated,
                    days_unix_s: r.days_unix_s,
                    months: r
                        .months
                        .into_iter()
                        .map(|m| pb::RestatementMonth {
                            account_id: m.account_id,
                            month_start_unix_s: m.month_start_unix_s,
                            before_location_g_co2e: m.before_location_g_co2e,
                            before_market_g_co2e: m.before_market_g_co2e,
                            after_location_g_co2e: m.after_location_g_co2e,
                            after_market_g_co2e: m.after_market_g_co2e,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }
}
