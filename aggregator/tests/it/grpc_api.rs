use canopy_aggregator::grpc::{CanopyQueryClient, GrpcQuery, pb};
use canopy_aggregator::maintenance::RetentionPolicy;
use canopy_aggregator::model::Batch;
use canopy_aggregator::query::QueryEngine;
use tonic::transport::server::TcpIncoming;

use crate::support::{T0, TestDb, as_group_record, fact, seed_accounts, store};

fn fixed_now() -> i64 {
    T0 + 3_600
}

#[tokio::test]
async fn grpc_matches_http_semantics() {
    let t = TestDb::migrated().await;
    seed_accounts(&t.pool).await;
    let f1 = fact(1, T0, 300, 1);
    let f2 = fact(2, T0 + 900, 300, 1);
    // With the real-time path's group records of the same energy, which
    // answer /realtime and must not change any total.
    let facts = vec![f1.clone(), f2.clone(), as_group_record(&f1), as_group_record(&f2)];
    store(&t.pool, &Batch { agent_id: "a".into(), sequence: 1, facts, inventory: vec![] }).await;

    let incoming = TcpIncoming::bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = incoming.local_addr().unwrap();
    let service = GrpcQuery::new(QueryEngine::new(t.pool.clone(), RetentionPolicy::default()), fixed_now, canopy_aggregator::auth::Auth::insecure_open_access());
    let server = tokio::spawn(
        tonic::transport::Server::builder().add_service(service.into_server()).serve_with_incoming(incoming),
    );
    let mut client = CanopyQueryClient::connect(format!("http://{addr}")).await.unwrap();

    let resp = client
        .totals(pb::TotalsRequest {
            from: T0.to_string(),
            to: (T0 + 3_600).to_string(),
            group_by: vec!["team".into()],
            filters: Some(pb::Filters { region: vec!["eu-west-1".into()], ..Default::default() }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let total = resp.total.unwrap();
    assert_eq!(total.fact_count, 2);
    assert!((total.location_kg_co2e - (f1.location_g_co2e + f2.location_g_co2e) / 1e3).abs() < 1e-12);
    assert_eq!(resp.rows.len(), 2);
    assert_eq!(resp.sources[0].source, "org_hourly");
    // The parts, apart and adding up to the totals, and the factor sets behind them.
    let embodied_kg = (f1.parts().embodied_g_co2e + f2.parts().embodied_g_co2e) / 1e3;
    assert!(embodied_kg > 0.0 && (total.embodied_kg_co2e - embodied_kg).abs() < 1e-12);
    assert!((total.operational_location_kg_co2e + total.embodied_kg_co2e - total.location_kg_co2e).abs() < 1e-12);
    assert!((total.operational_market_kg_co2e + total.embodied_kg_co2e - total.market_kg_co2e).abs() < 1e-12);
    assert!((total.operational_location_high_kg_co2e + total.embodied_high_kg_co2e - total.high_kg_co2e).abs() < 1e-12);
    let sets: Vec<(&str, &str, &str)> = resp
        .factor_sets
        .iter()
        .map(|f| (f.location_factor_source.as_str(), f.market_factor_source.as_str(), f.parts.as_str()))
        .collect();
    assert_eq!(sets, vec![("ccf", "residual-mix", "split")]);

    let series = client
        .realtime(pb::RealtimeRequest { group_by: vec!["account".into()], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((series.from_unix_s, series.rows.len()), (T0 + 300, 1));
    assert_eq!(series.rows[0].dims[0].value, "333333333333");

    let top = client
        .top_resources(pb::TopResourcesRequest {
            from: "2026-11-02".into(),
            to: "2026-11-03".into(),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(top.rows.len(), 1);
    assert_eq!(top.next_offset, Some(1));

    let err = client
        .series(pb::SeriesRequest { from: T0.to_string(), to: (T0 + 3_600).to_string(), step: "7m".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert_eq!(err.metadata().get("canopy-parameter").unwrap(), "step");
    assert_eq!(err.message(), "parameter step: expected 5m, 1h or 1d, found \"7m\"");
    server.abort();
}
