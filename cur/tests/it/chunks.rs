//! Chunked parallel reading gives the same rows as sequential reading.

use std::path::Path;

use canopy_cur::generate::{CsvStyle, GeneratorConfig, SampleFormat, write_format};
use canopy_cur::{CsvChunk, CurError, ReadOptions, RowPosition, plan_csv_chunks, read_csv_chunk};

use crate::support::{Owned, opts, read_path, temp_dir};

fn read_chunks(chunks: &[CsvChunk], opts: &ReadOptions) -> Result<Vec<Owned>, CurError> {
    let results: Vec<Result<Vec<Owned>, CurError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                scope.spawn(move || {
                    let mut rows = Vec::new();
                    read_csv_chunk(chunk, opts, &mut |line| rows.push(Owned::of(line)))
                        .map(|_| rows)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut all = Vec::new();
    for r in results {
        all.extend(r?);
    }
    Ok(all)
}

fn write_legacy(path: &Path, rows: u64) {
    let config = GeneratorConfig {
        seed: 11,
        rows,
        ..GeneratorConfig::default()
    };
    write_format(
        &config,
        SampleFormat::Csv(CsvStyle::Legacy),
        std::fs::File::create(path).unwrap(),
    )
    .unwrap();
}

#[test]
fn chunks_cover_the_file_and_match_sequential_reading() {
    let dir = temp_dir("chunks");
    let path = dir.join("big.csv");
    // ~210 bytes a row: ~8 MB, enough for 4 chunks of at least 1 MiB.
    write_legacy(&path, 40_000);
    let bytes = std::fs::read(&path).unwrap();
    let chunks = plan_csv_chunks(&path, 4).unwrap();
    assert_eq!(chunks.len(), 4);
    assert_eq!(chunks.last().unwrap().end_byte, bytes.len() as u64);
    for pair in chunks.windows(2) {
        assert_eq!(pair[0].end_byte, pair[1].start_byte);
        assert_eq!(bytes[pair[1].start_byte as usize - 1], b'\n');
    }
    let options = opts(Some("Team"));
    let (sequential, _) = read_path(&path, &options).unwrap();
    assert_eq!(sequential.len(), 40_000);
    assert_eq!(read_chunks(&chunks, &options).unwrap(), sequential);
}

#[test]
fn small_files_are_one_chunk() {
    let dir = temp_dir("chunks-small");
    let path = dir.join("small.csv");
    write_legacy(&path, 100);
    let chunks = plan_csv_chunks(&path, 8).unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(read_chunks(&chunks, &opts(None)).unwrap().len(), 100);
}

#[test]
fn errors_in_chunks_carry_whole_file_line_numbers() {
    let dir = temp_dir("chunks-bad");
    let path = dir.join("bad.csv");
    write_legacy(&path, 30_000);
    let text = std::fs::read_to_string(&path).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
    // Line 25_001 (1-based, header = 1) sits in the last of 3 chunks.
    for line_number in [25_001usize, 28_000] {
        let mut fields: Vec<&str> = lines[line_number - 1].split(',').collect();
        fields[10] = "abc";
        lines[line_number - 1] = fields.join(",");
    }
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let chunks = plan_csv_chunks(&path, 3).unwrap();
    assert_eq!(chunks.len(), 3);
    let err = read_chunks(&chunks, &opts(None)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{}: line 25001: lineItem/UsageAmount: expected a number, found \"abc\"",
            path.display()
        )
    );
    let skipping = ReadOptions {
        skip_bad_rows: true,
        ..ReadOptions::default()
    };
    let mut positions = Vec::new();
    for chunk in &chunks {
        let stats = read_csv_chunk(chunk, &skipping, &mut |_| {}).unwrap();
        positions.extend(stats.bad_row_examples.iter().map(|b| b.position));
    }
    assert_eq!(
        positions,
        vec![RowPosition::Line(25_001), RowPosition::Line(28_000)]
    );
}

#[test]
fn quoted_newlines_fall_back_to_one_chunk() {
    let dir = temp_dir("chunks-quoted");
    let path = dir.join("quoted.csv");
    let mut text = String::from(
        "lineItem/UsageStartDate,lineItem/UsageAccountId,lineItem/LineItemType,lineItem/ProductCode,lineItem/UsageType,lineItem/UsageAmount,lineItem/UnblendedCost,product/region,lineItem/LineItemDescription\n",
    );
    for i in 0..40_000 {
        text.push_str(&format!(
            "2023-10-01T00:00:00Z,1,Usage,AmazonEC2,BoxUsage:m5.large,1,0.096,us-east-1,\"row {i}\nsecond line\nthird line, padded to make the file larger\"\n"
        ));
    }
    std::fs::write(&path, text).unwrap();
    let chunks = plan_csv_chunks(&path, 2).unwrap();
    assert_eq!(chunks.len(), 1);
    assert_eq!(read_chunks(&chunks, &opts(None)).unwrap().len(), 40_000);
}
