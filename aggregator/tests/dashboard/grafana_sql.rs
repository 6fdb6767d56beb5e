//! Runs every panel query and every template-variable query of the Grafana
//! dashboards in `grafana/dashboards/` against a migrated database filled
//! with the synthetic organisation, with Grafana's PostgreSQL macros and the
//! template variables ("All" selected) expanded as Grafana expands them.

use std::collections::BTreeMap;
use std::path::PathBuf;

use canopy_aggregator::time::civil_from_days;
use serde_json::Value;
use sqlx::{PgPool, Row, ValueRef};

use crate::org::{self, NOW};
use crate::support::TestDb;

fn dashboards_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../grafana/dashboards")
}

/// `YYYY-MM-DDTHH:MM:SSZ`, as Grafana writes instants into SQL.
fn rfc3339(t_unix_s: i64) -> String {
    let (y, m, d) = civil_from_days(t_unix_s.div_euclid(86_400));
    let s = t_unix_s.rem_euclid(86_400);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", s / 3_600, s / 60 % 60, s % 60)
}

/// Seconds of a Grafana interval such as `5m`, `1h` or `30d`.
fn interval_s(text: &str) -> i64 {
    let text = text.trim().trim_matches('\'');
    let (n, unit) = text.split_at(text.len() - 1);
    let n: i64 = n.parse().unwrap_or_else(|_| panic!("expected an interval like 5m, found {text:?}"));
    n * match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => panic!("expected an interval unit s, m, h or d, found {text:?}"),
    }
}

/// A dashboard's relative range (`now-7d` to `now`) at `now_unix_s`.
fn time_range(dashboard: &Value, now_unix_s: i64) -> (i64, i64) {
    let from = dashboard["time"]["from"].as_str().expect("time.from");
    assert_eq!(dashboard["time"]["to"], "now");
    let back = from.strip_prefix("now-").unwrap_or_else(|| panic!("expected now-<interval>, found {from:?}"));
    (now_unix_s - interval_s(back), now_unix_s)
}

/// The text between the parentheses of the macro call starting at `at`, and
/// the index after the closing parenthesis.
fn macro_args(sql: &str, at: usize) -> (String, usize) {
    let open = at + sql[at..].find('(').expect("macro has arguments");
    let mut depth = 0;
    for (i, c) in sql[open..].char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    return (sql[open + 1..open + i].to_owned(), open + i + 1);
                }
            }
            _ => {}
        }
    }
    panic!("unbalanced macro call in {sql}");
}

/// Expands Grafana's PostgreSQL macros the way its data source does.
fn expand_macros(sql: &str, from_unix_s: i64, to_unix_s: i64, interval: &str) -> String {
    let from = format!("'{}'", rfc3339(from_unix_s));
    let to = format!("'{}'", rfc3339(to_unix_s));
    let mut out = sql.replace("$__timeFrom()", &from).replace("$__timeTo()", &to);
    for name in ["$__timeGroupAlias", "$__timeGroup", "$__timeFilter"] {
        while let Some(at) = out.find(&format!("{name}(")) {
            let (args, end) = macro_args(&out, at);
            let parts: Vec<&str> = args.split(',').map(str::trim).collect();
            let replacement = match name {
                "$__timeFilter" => format!("{} BETWEEN {from} AND {to}", parts[0]),
                _ => {
                    let iv = if parts[1] == "$__interval" { interval } else { parts[1] };
                    let s = interval_s(iv);
                    let group = format!("floor(extract(epoch from {})/{s})*{s}", parts[0]);
                    if name == "$__timeGroupAlias" { format!("{group} AS \"time\"") } else { group }
                }
            };
            out.replace_range(at..end, &replacement);
        }
    }
    out.replace("$__interval", interval)
}

/// Replaces `$name` by every value of the variable, quoted, comma-separated
/// (Grafana's "All" for a multi-value variable without a custom all value).
fn expand_variables(sql: &str, values: &BTreeMap<String, Vec<String>>) -> String {
    let mut out = sql.to_owned();
    // Longest names first so `$team` does not eat into `$teams`.
    let mut names: Vec<&String> = values.keys().collect();
    names.sort_by_key(|n| std::cmp::Reverse(n.len()));
    for name in names {
        let list = values[name].iter().map(|v| format!("'{}'", v.replace('\'', "''"))).collect::<Vec<_>>().join(",");
        out = out.replace(&format!("${{{name}}}"), &list).replace(&format!("${name}"), &list);
    }
    out
}

/// Runs `sql` and returns, per row, whether each column is non-NULL.
async fn run(pool: &PgPool, sql: &str) -> Vec<Vec<bool>> {
    let rows = sqlx::query(sql).fetch_all(pool).await.unwrap_or_else(|e| panic!("{e}\n{sql}"));
    rows.iter()
        .map(|r| (0..r.columns().len()).map(|i| !r.try_get_raw(i).expect("column").is_null()).collect())
        .collect()
}

fn panels(dashboard: &Value) -> Vec<&Value> {
    let mut out = Vec::new();
    for p in dashboard["panels"].as_array().expect("panels") {
        out.push(p);
        if let Some(nested) = p["panels"].as_array() {
            out.extend(nested.iter());
        }
    }
    out
}

#[tokio::test]
async fn every_grafana_panel_query_returns_rows() {
    let t = TestDb::migrated().await;
    org::load(&t.pool).await;

    let mut files: Vec<PathBuf> = std::fs::read_dir(dashboards_dir())
        .expect("grafana/dashboards exists")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let uids: Vec<String> = files
        .iter()
        .map(|f| {
            let d: Value = serde_json::from_str(&std::fs::read_to_string(f).unwrap()).unwrap();
            d["uid"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        uids,
        ["canopy-accounts", "canopy-overview", "canopy-realtime", "canopy-regions", "canopy-services", "canopy-teams"]
    );

    let mut queries_run = 0;
    for file in &files {
        let dashboard: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
        let title = dashboard["title"].as_str().unwrap().to_owned();
        let (from, to) = time_range(&dashboard, NOW);

        // Template variables: run each query; "All" is every value it returns.
        let mut values = BTreeMap::new();
        for v in dashboard["templating"]["list"].as_array().unwrap() {
            let name = v["name"].as_str().unwrap().to_owned();
            let sql = v["query"].as_str().unwrap();
            let rows = sqlx::query(sql).fetch_all(&t.pool).await.unwrap_or_else(|e| panic!("{title} ${name}: {e}"));
            let list: Vec<String> = rows.iter().map(|r| r.get::<String, _>(0)).collect();
            assert!(!list.is_empty(), "{title}: variable ${name} has no values");
            values.insert(name, list);
            queries_run += 1;
        }
        assert_eq!(values["team"], ["data", "ml", "untagged", "web"], "{title}: teams after attribution");
        assert_eq!(values["account"].len(), org::ACCOUNTS.len());

        let all = panels(&dashboard);
        assert!(all.len() >= 3, "{title}: expected at least 3 panels, found {}", all.len());
        for panel in all {
            let panel_title = panel["title"].as_str().unwrap();
            let interval = panel["interval"].as_str().unwrap_or("5m");
            for target in panel["targets"].as_array().unwrap_or(&Vec::new()) {
                let raw = target["rawSql"].as_str().unwrap_or_else(|| panic!("{title} / {panel_title}: rawSql"));
                let sql = expand_variables(&expand_macros(raw, from, to, interval), &values);
                assert!(!sql.contains('$'), "{title} / {panel_title}: unexpanded macro or variable in\n{sql}");
                let rows = run(&t.pool, &sql).await;
                assert!(!rows.is_empty(), "{title} / {panel_title}: no rows from\n{sql}");
                assert!(
                    rows[0].iter().all(|present| *present),
                    "{title} / {panel_title}: NULL in the first row of\n{sql}"
                );
                queries_run += 1;
            }
        }
    }
    // 6 dashboards × 4 variables, plus 8 + 3 + 3 + 3 + 3 + 6 panels.
    assert_eq!(queries_run, 24 + 26);
}

#[test]
fn macros_expand_like_grafana() {
    // 2026-11-20T12:00:00Z minus one hour.
    let sql = expand_macros(
        "SELECT $__timeGroupAlias(bucket_start, $__interval), v FROM t WHERE $__timeFilter(bucket_start) AND x < $__timeTo()",
        org::NOW - 3_600,
        org::NOW,
        "1h",
    );
    assert_eq!(
        sql,
        "SELECT floor(extract(epoch from bucket_start)/3600)*3600 AS \"time\", v FROM t \
         WHERE bucket_start BETWEEN '2026-11-20T11:00:00Z' AND '2026-11-20T12:00:00Z' AND x < '2026-11-20T12:00:00Z'"
    );
    let mut values = BTreeMap::new();
    values.insert("team".to_owned(), vec!["web".to_owned(), "o'brien".to_owned()]);
    assert_eq!(
        expand_variables("team IN ($team) OR t = ${team}", &values),
        "team IN ('web','o''brien') OR t = 'web','o''brien'"
    );
}
