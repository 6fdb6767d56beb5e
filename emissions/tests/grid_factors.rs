//! Grid tests: annual and market factors, region → zone map, and the
//! Electricity Maps hourly importer against the 2023 fixtures (summary
//! figures from the reference SOURCE.md).

use canopy_emissions::grid::{
    CarbonIntensitySource, GridError, GridFactor, HourlyIntensityTable, MarketConfig, MarketRegion, location_factor,
    zone_for_region,
};
use canopy_emissions::time::unix_seconds;

const ES_2023: &str = include_str!("fixtures/grid-hourly/ES_2023_hourly.csv");
const CISO_2023: &str = include_str!("fixtures/grid-hourly/US-CAL-CISO_2023_hourly.csv");
const HEADER_2023: &str = "Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,Data Estimated,Data Estimation Method";
const HEADER_2024: &str = "Datetime (UTC),Country,Zone name,Zone id,Carbon intensity gCO₂eq/kWh (direct),Carbon intensity gCO₂eq/kWh (Life cycle),Carbon-free energy percentage (CFE%),Renewable energy percentage (RE%),Data source,Data estimated,Data estimation method";

struct Summary {
    hours: usize,
    direct_mean: f64,
    direct_min: f64,
    direct_max: f64,
    lca_mean: f64,
    estimated: usize,
}

fn summary(table: &HourlyIntensityTable, zone: &str) -> Summary {
    let values: Vec<_> = table.hours(zone).map(|(_, h)| h).collect();
    let n = values.len() as f64;
    Summary {
        hours: values.len(),
        direct_mean: values.iter().map(|h| h.direct_g_co2e_per_kwh).sum::<f64>() / n,
        direct_min: values.iter().map(|h| h.direct_g_co2e_per_kwh).fold(f64::INFINITY, f64::min),
        direct_max: values.iter().map(|h| h.direct_g_co2e_per_kwh).fold(f64::NEG_INFINITY, f64::max),
        lca_mean: values.iter().map(|h| h.lca_g_co2e_per_kwh).sum::<f64>() / n,
        estimated: values.iter().filter(|h| h.estimated).count(),
    }
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[test]
fn spain_2023_matches_published_summary() {
    let table = HourlyIntensityTable::from_electricity_maps_csv(ES_2023).unwrap();
    assert_eq!(table.zones().collect::<Vec<_>>(), ["ES"]);
    let s = summary(&table, "ES");
    assert_eq!(s.hours, 8760);
    assert_eq!(round2(s.direct_mean), 117.83);
    assert_eq!(s.direct_min, 31.05);
    assert_eq!(s.direct_max, 280.58);
    assert_eq!(round2(s.lca_mean), 160.12);
    assert_eq!(s.estimated, 14);
    // first row: 2023-01-01 00:00:00, direct 82.99, LCA 114.42
    let first = table.get("ES", unix_seconds(2023, 1, 1, 0, 0, 0)).unwrap();
    assert_eq!(first.direct_g_co2e_per_kwh, 82.99);
    assert_eq!(first.lca_g_co2e_per_kwh, 114.42);
    assert!(!first.estimated);
}

#[test]
fn california_2023_matches_published_summary_and_edge_rows() {
    let table = HourlyIntensityTable::from_electricity_maps_csv(CISO_2023).unwrap();
    let s = summary(&table, "US-CAL-CISO");
    assert_eq!(s.hours, 8760);
    assert_eq!(round2(s.direct_mean), 193.46);
    assert_eq!(s.direct_min, 54.89);
    assert_eq!(s.direct_max, 330.82);
    assert_eq!(round2(s.lca_mean), 261.16);
    assert_eq!(s.estimated, 3);
    // two-source row (`Electricity Maps Estimation; caiso.com`) flagged not estimated
    let two_source = table.get("US-CAL-CISO", unix_seconds(2023, 8, 18, 0, 0, 0)).unwrap();
    assert!(!two_source.estimated);
    // the trait returns the direct value at an exact hour, None for a missing hour or zone
    let jan1 = table.intensity("US-CAL-CISO", unix_seconds(2023, 1, 1, 0, 0, 0)).unwrap();
    assert_eq!(jan1.g_co2e_per_kwh, 218.3);
    // a timestamp inside the hour is floored to the hour start
    assert_eq!(table.intensity("US-CAL-CISO", unix_seconds(2023, 1, 1, 0, 59, 59)).unwrap().g_co2e_per_kwh, 218.3);
    assert!(table.intensity("US-CAL-CISO", unix_seconds(2024, 1, 1, 0, 0, 0)).is_none());
    assert!(table.intensity("ES", unix_seconds(2023, 1, 1, 0, 0, 0)).is_none());
}

#[test]
fn estimated_row_with_method_is_read() {
    let text = format!(
        "{HEADER_2023}\r\n2023-03-26 01:00:00,Spain,Spain,ES,100.5,140.25,80,50,Electricity Maps Estimation,true,ESTIMATED_TIME_SLICER_AVERAGE\r\n"
    );
    let table = HourlyIntensityTable::from_electricity_maps_csv(&text).unwrap();
    let h = table.get("ES", unix_seconds(2023, 3, 26, 1, 0, 0)).unwrap();
    assert!(h.estimated);
    assert_eq!(h.direct_g_co2e_per_kwh, 100.5);
}

#[test]
fn header_2024_spelling_and_lf_line_ends() {
    let text = format!("{HEADER_2024}\n2024-05-01 13:00:00,France,France,FR,21.5,40.75,95,30,rte-france.com,false,\n");
    let table = HourlyIntensityTable::from_electricity_maps_csv(&text).unwrap();
    let h = table.get("FR", unix_seconds(2024, 5, 1, 13, 0, 0)).unwrap();
    assert_eq!(h.direct_g_co2e_per_kwh, 21.5);
    assert_eq!(h.lca_g_co2e_per_kwh, 40.75);
}

#[test]
fn unknown_header_names_fall_back_to_positions() {
    let text = "Zeit,Land,Name,Zone,Direkt,LCA,a,b,Quelle,Geschaetzt,Methode\n2023-01-01 00:00:00,DE,DE,DE,380,420,,,x,FALSE,\n";
    let table = HourlyIntensityTable::from_electricity_maps_csv(text).unwrap();
    assert_eq!(table.get("DE", unix_seconds(2023, 1, 1, 0, 0, 0)).unwrap().direct_g_co2e_per_kwh, 380.0);
}

#[test]
fn malformed_lines_name_line_and_column() {
    let text = format!("{HEADER_2023}\r\n2023-01-01 00:00:00,Spain,Spain,ES,82.99,114.42,84,50,entsoe.eu,false,\r\n2023-01-01 01:00:00,Spain,Spain,ES,n/a,117.69,83,49,entsoe.eu,false,\r\n");
    let err = HourlyIntensityTable::from_electricity_maps_csv(&text).unwrap_err();
    assert_eq!(
        err,
        GridError::BadField {
            line: 3,
            column: 5,
            expected: "a non-negative intensity in gCO2e/kWh",
            found: "n/a".into()
        }
    );
    assert!(err.to_string().starts_with("line 3, column 5: expected"));

    let bad_time = format!("{HEADER_2023}\n2023-01-01 00:30:00,Spain,Spain,ES,1,2,3,4,x,false,\n");
    let err = HourlyIntensityTable::from_electricity_maps_csv(&bad_time).unwrap_err();
    assert!(matches!(err, GridError::BadField { line: 2, column: 1, .. }), "{err}");

    let bad_flag = format!("{HEADER_2023}\n2023-01-01 00:00:00,Spain,Spain,ES,1,2,3,4,x,maybe,\n");
    let err = HourlyIntensityTable::from_electricity_maps_csv(&bad_flag).unwrap_err();
    assert!(matches!(err, GridError::BadField { line: 2, column: 10, .. }), "{err}");

    let short = format!("{HEADER_2023}\n2023-01-01 00:00:00,Spain,Spain,ES,1\n");
    let err = HourlyIntensityTable::from_electricity_maps_csv(&short).unwrap_err();
    assert_eq!(err, GridError::ShortLine { line: 2, expected: 10, found: 5 });

    assert_eq!(HourlyIntensityTable::from_electricity_maps_csv("").unwrap_err(), GridError::EmptyInput);
    let narrow = HourlyIntensityTable::from_electricity_maps_csv("a,b\n1,2\n").unwrap_err();
    assert!(matches!(narrow, GridError::MissingColumn { position: 4, .. }), "{narrow}");
}

#[test]
fn merge_combines_zones_and_later_values_win() {
    let mut a = HourlyIntensityTable::from_electricity_maps_csv(ES_2023).unwrap();
    let b = HourlyIntensityTable::from_electricity_maps_csv(CISO_2023).unwrap();
    a.merge(b);
    assert_eq!(a.len(), 2 * 8760);
    assert_eq!(a.zones().collect::<Vec<_>>(), ["ES", "US-CAL-CISO"]);
    let update = format!("{HEADER_2023}\n2023-01-01 00:00:00,Spain,Spain,ES,1.5,2.5,0,0,x,false,\n");
    a.merge(HourlyIntensityTable::from_electricity_maps_csv(&update).unwrap());
    assert_eq!(a.len(), 2 * 8760);
    assert_eq!(a.get("ES", unix_seconds(2023, 1, 1, 0, 0, 0)).unwrap().direct_g_co2e_per_kwh, 1.5);
}

#[test]
fn location_factors_from_ccf_table_with_unknown_fallback() {
    let check = |region: &str, g: f64| {
        let GridFactor { g_co2e_per_kwh, provenance } = location_factor(region);
        assert_eq!(g_co2e_per_kwh, g, "{region}");
        assert!(!provenance.source.is_empty() && !provenance.vintage.is_empty());
    };
    check("us-east-1", 379.069);
    check("us-west-1", 322.167);
    check("eu-north-1", 8.8);
    check("eu-west-3", 51.1);
    check("af-south-1", 900.6);
    // Not in CCF's table → CCF's Unknown mean 392.78188
    check("eu-south-2", 392.781_88);
    check("xx-moon-1", 392.781_88);
    assert_eq!(location_factor("us-east-1").provenance.vintage, "eGRID2020");
}

#[test]
fn market_factor_formula_and_validation() {
    let location = location_factor("eu-west-1"); // 278.6
    let mut market = MarketConfig::new();
    assert!(market.is_empty());
    assert_eq!(market.market_factor("eu-west-1", &location), location);
    market
        .set_region("eu-west-1", MarketRegion { renewable_share: 0.25, residual_mix_g_co2e_per_kwh: None })
        .unwrap();
    // (1 − 0.25) × 278.6 = 208.95
    assert!((market.market_factor("eu-west-1", &location).g_co2e_per_kwh - 208.95).abs() < 1e-9);
    market
        .set_region("eu-west-1", MarketRegion { renewable_share: 1.0, residual_mix_g_co2e_per_kwh: Some(400.0) })
        .unwrap();
    assert_eq!(market.market_factor("eu-west-1", &location).g_co2e_per_kwh, 0.0);
    let err = market
        .set_region("eu-west-2", MarketRegion { renewable_share: 1.2, residual_mix_g_co2e_per_kwh: None })
        .unwrap_err();
    assert_eq!(err.to_string(), "region eu-west-2: expected a renewable share between 0 and 1, found 1.2");
    assert!(
        market
            .set_region("eu-west-2", MarketRegion { renewable_share: 0.5, residual_mix_g_co2e_per_kwh: Some(-1.0) })
            .is_err()
    );
}

#[test]
fn regions_map_to_electricity_maps_zones() {
    let cases = [
        ("us-west-1", Some("US-CAL-CISO")),
        ("eu-south-2", Some("ES")),
        ("us-east-2", Some("US-MIDA-PJM")),
        ("us-west-2", Some("US-NW-PACW")),
        ("eu-north-1", Some("SE-SE3")),
        // Electricity Maps does not list it; CCF's zone is used
        ("us-gov-west-1", Some("US-NW-PACW")),
        ("cn-north-1", None),
        ("cn-northwest-1", None),
        ("xx-moon-1", None),
    ];
    for (region, zone) in cases {
        assert_eq!(zone_for_region(region), zone, "{region}");
    }
}
