//! Shared helpers: owned copies of rows, temp folders, expected rows.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use canopy_cur::generate::{GeneratedRow, Generator, GeneratorConfig};
use canopy_cur::{CurError, FileStats, ReadOptions, read_file, read_reader};
use canopy_emissions::cur::CurLine;

/// A `CurLine` copied out of the reader's buffers.
#[derive(Debug, Clone, PartialEq)]
pub struct Owned {
    pub start: i64,
    pub account: String,
    pub region: String,
    pub product_code: String,
    pub usage_type: String,
    pub pricing_unit: String,
    pub line_item_type: String,
    pub instance_type: String,
    pub vcpu: Option<f64>,
    pub amount: f64,
    pub blended: f64,
    pub unblended: f64,
    pub tag: Option<String>,
}

impl Owned {
    pub fn of(line: &CurLine<'_>) -> Owned {
        Owned {
            start: line.usage_start_unix_s,
            account: line.account_id.to_owned(),
            region: line.region.to_owned(),
            product_code: line.product_code.to_owned(),
            usage_type: line.usage_type.to_owned(),
            pricing_unit: line.pricing_unit.to_owned(),
            line_item_type: line.line_item_type.to_owned(),
            instance_type: line.instance_type.to_owned(),
            vcpu: line.product_vcpu,
            amount: line.usage_amount,
            blended: line.blended_cost,
            unblended: line.unblended_cost,
            tag: line.tag.map(str::to_owned),
        }
    }

    /// What a reader must produce for a generated row, with `tag` chosen.
    pub fn expected(row: &GeneratedRow, tag: fn(&GeneratedRow) -> Option<&'static str>) -> Owned {
        Owned {
            start: row.usage_start_unix_s,
            account: row.usage_account_id.clone(),
            region: row.region.to_owned(),
            product_code: row.product_code.to_owned(),
            usage_type: row.usage_type.clone(),
            pricing_unit: row.pricing_unit.to_owned(),
            line_item_type: row.line_item_type.to_owned(),
            instance_type: row.instance_type.to_owned(),
            vcpu: row.vcpu.map(f64::from),
            amount: row.usage_amount,
            blended: row.blended_cost,
            unblended: row.unblended_cost,
            tag: tag(row).map(str::to_owned),
        }
    }
}

pub fn team(row: &GeneratedRow) -> Option<&'static str> {
    row.team.as_line_tag()
}

pub fn cost_center(row: &GeneratedRow) -> Option<&'static str> {
    row.cost_center.as_line_tag()
}

pub fn generated(
    config: &GeneratorConfig,
    tag: fn(&GeneratedRow) -> Option<&'static str>,
) -> Vec<Owned> {
    Generator::new(config)
        .map(|row| Owned::expected(&row, tag))
        .collect()
}

pub fn opts(tag: Option<&str>) -> ReadOptions {
    ReadOptions {
        tag_key: tag.map(str::to_owned),
        skip_bad_rows: false,
    }
}

pub fn read_path(path: &Path, opts: &ReadOptions) -> Result<(Vec<Owned>, FileStats), CurError> {
    let mut rows = Vec::new();
    let stats = read_file(path, opts, &mut |line| rows.push(Owned::of(line)))?;
    Ok((rows, stats))
}

pub fn read_text(text: &str, opts: &ReadOptions) -> Result<(Vec<Owned>, FileStats), CurError> {
    let mut rows = Vec::new();
    let stats = read_reader(text.as_bytes(), Path::new("t.csv"), opts, &mut |line| {
        rows.push(Owned::of(line))
    })?;
    Ok((rows, stats))
}

/// A fresh, empty folder for one test.
pub fn temp_dir(name: &str) -> PathBuf {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "canopy-cur-it-{}-{}-{name}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}
