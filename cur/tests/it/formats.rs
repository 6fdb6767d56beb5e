//! Every format and header style yields the same rows.

use canopy_cur::HeaderStyle;
use canopy_cur::generate::{CsvStyle, GeneratorConfig, SampleFormat, write_format};

use crate::support::{Owned, cost_center, generated, opts, read_path, read_text, team, temp_dir};

fn config() -> GeneratorConfig {
    GeneratorConfig {
        seed: 7,
        rows: 3_000,
        accounts: 3,
        days: 2,
        ..GeneratorConfig::default()
    }
}

const FORMATS: &[(&str, SampleFormat, HeaderStyle)] = &[
    (
        "legacy.csv",
        SampleFormat::Csv(CsvStyle::Legacy),
        HeaderStyle::Legacy,
    ),
    (
        "legacy.csv.gz",
        SampleFormat::CsvGz(CsvStyle::Legacy),
        HeaderStyle::Legacy,
    ),
    (
        "athena.csv",
        SampleFormat::Csv(CsvStyle::Athena),
        HeaderStyle::Athena,
    ),
    (
        "athena.gz",
        SampleFormat::CsvGz(CsvStyle::Athena),
        HeaderStyle::Athena,
    ),
    (
        "cur2.csv",
        SampleFormat::Csv(CsvStyle::Cur2),
        HeaderStyle::Cur2,
    ),
    ("cur2.parquet", SampleFormat::Cur2Parquet, HeaderStyle::Cur2),
];

#[test]
fn every_format_yields_the_generated_rows() {
    let config = config();
    let dir = temp_dir("formats");
    for (tag, pick) in [
        ("Team", team as fn(&_) -> _),
        ("user:CostCenter", cost_center),
    ] {
        let expected = generated(&config, pick);
        assert_eq!(expected.len(), 3_000);
        assert!(
            expected.iter().any(|r| r.tag.is_some()) && expected.iter().any(|r| r.tag.is_none())
        );
        for (name, format, style) in FORMATS {
            let path = dir.join(name);
            if !path.exists() {
                write_format(&config, *format, std::fs::File::create(&path).unwrap()).unwrap();
            }
            let (rows, stats) = read_path(&path, &opts(Some(tag))).unwrap();
            assert_eq!(stats.rows_read, 3_000, "{name}");
            assert_eq!(stats.header_style, Some(*style), "{name}");
            assert_eq!(stats.bad_rows_skipped, 0, "{name}");
            for (i, (got, want)) in rows.iter().zip(&expected).enumerate() {
                assert_eq!(got, want, "{name} [{tag}] row {i}");
            }
        }
    }
}

#[test]
fn without_a_tag_key_every_tag_is_none() {
    let config = GeneratorConfig {
        rows: 200,
        ..config()
    };
    let dir = temp_dir("no-tag");
    for (name, format, _) in FORMATS {
        let path = dir.join(name);
        write_format(&config, *format, std::fs::File::create(&path).unwrap()).unwrap();
        let (rows, _) = read_path(&path, &opts(None)).unwrap();
        assert_eq!(rows.len(), 200);
        assert!(rows.iter().all(|r| r.tag.is_none()), "{name}");
    }
}

#[allow(clippy::too_many_arguments)]
fn row(
    start: i64,
    region: &str,
    instance: &str,
    vcpu: Option<f64>,
    amount: f64,
    blended: f64,
    unblended: f64,
    tag: Option<&str>,
) -> Owned {
    Owned {
        start,
        account: "111122223333".to_owned(),
        region: region.to_owned(),
        product_code: "AmazonEC2".to_owned(),
        usage_type: "USE2-BoxUsage:m5.large".to_owned(),
        pricing_unit: "Hrs".to_owned(),
        line_item_type: "Usage".to_owned(),
        instance_type: instance.to_owned(),
        vcpu,
        amount,
        blended,
        unblended,
        tag: tag.map(str::to_owned),
    }
}

// 2023-10-01T00:00:00Z.
const OCT1: i64 = 1_696_118_400;

#[test]
fn legacy_headers_map_and_unknown_columns_are_ignored() {
    let text = "\
identity/LineItemId,lineItem/UsageStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/ProductCode,lineItem/UsageType,lineItem/UsageAmount,lineItem/BlendedCost,lineItem/UnblendedCost,product/region,product/instanceType,product/vcpu,pricing/unit,resourceTags/user:Team,product/ProductName,foo/Bar
a,2023-10-01T00:00:00Z,111122223333,Usage,AmazonEC2,USE2-BoxUsage:m5.large,1,0.096,0.096,us-east-2,m5.large,2,Hrs,web,\"Amazon Elastic Compute Cloud, EC2\",x
b,2023-10-01T01:00:00Z,111122223333,Usage,AmazonEC2,USE2-BoxUsage:m5.large,0.5,,1E-2,us-east-2,m5.large,,Hrs,,,
";
    let (rows, stats) = read_text(text, &opts(Some("Team"))).unwrap();
    assert_eq!(stats.header_style, Some(HeaderStyle::Legacy));
    assert_eq!(
        rows,
        vec![
            row(
                OCT1,
                "us-east-2",
                "m5.large",
                Some(2.0),
                1.0,
                0.096,
                0.096,
                Some("web")
            ),
            // Empty blended cost reads as 0, empty vcpu as unknown, empty tag as untagged.
            row(
                OCT1 + 3_600,
                "us-east-2",
                "m5.large",
                None,
                0.5,
                0.0,
                0.01,
                None
            ),
        ]
    );
}

#[test]
fn athena_headers_map_with_camel_case_tag() {
    let text = "\
line_item_usage_start_date,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_usage_amount,line_item_unblended_cost,product_region,product_instance_type,product_vcpu,pricing_unit,resource_tags_user_cost_center,resource_tags_user_team
2023-10-01 00:00:00.000,111122223333,Usage,AmazonEC2,USE2-BoxUsage:m5.large,1,0.096,us-east-2,m5.large,2,Hrs,cc-1,web
";
    let (rows, stats) = read_text(text, &opts(Some("CostCenter"))).unwrap();
    assert_eq!(stats.header_style, Some(HeaderStyle::Athena));
    // No blended column: blended cost is 0.
    assert_eq!(
        rows,
        vec![row(
            OCT1,
            "us-east-2",
            "m5.large",
            Some(2.0),
            1.0,
            0.0,
            0.096,
            Some("cc-1")
        )]
    );
}

#[test]
fn cur2_csv_reads_region_instance_and_vcpu_from_the_product_map() {
    let text = r#"line_item_usage_start_date,line_item_usage_account_id,line_item_line_item_type,line_item_product_code,line_item_usage_type,line_item_usage_amount,line_item_blended_cost,line_item_unblended_cost,pricing_unit,product,resource_tags
2023-10-01T00:00:00.000Z,111122223333,Usage,AmazonEC2,USE2-BoxUsage:m5.large,1,0.096,0.096,Hrs,"{""region"":""us-east-2"",""instance_type"":""m5.large"",""vcpu"":""2""}","{""user_team"":""we\""b""}"
2023-10-01T00:00:00.000Z,111122223333,Usage,AmazonEC2,USE2-BoxUsage:m5.large,1,0.096,0.096,Hrs,,"{""user_team"":""""}"
"#;
    let (rows, stats) = read_text(text, &opts(Some("team"))).unwrap();
    assert_eq!(stats.header_style, Some(HeaderStyle::Cur2));
    assert_eq!(
        rows,
        vec![
            row(
                OCT1,
                "us-east-2",
                "m5.large",
                Some(2.0),
                1.0,
                0.096,
                0.096,
                Some("we\"b")
            ),
            row(OCT1, "", "", None, 1.0, 0.096, 0.096, None),
        ]
    );
}

#[test]
fn header_only_file_has_no_rows() {
    let text = "lineItem/UsageStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/ProductCode,lineItem/UsageType,lineItem/UsageAmount,lineItem/UnblendedCost,product/region\n";
    let (rows, stats) = read_text(text, &opts(None)).unwrap();
    assert!(rows.is_empty());
    assert_eq!(stats.rows_read, 0);
}
