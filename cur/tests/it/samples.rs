//! The committed sample files are exactly what the generator produces.

use std::io::Read;
use std::path::PathBuf;

use canopy_cur::generate::{SAMPLE_FILES, SampleFormat, sample_config, write_format};

use crate::support::{generated, opts, read_path, team, temp_dir};

fn samples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples/cur")
}

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(bytes)
        .read_to_end(&mut out)
        .unwrap();
    out
}

#[test]
fn committed_samples_match_the_generator() {
    let config = sample_config();
    let expected = generated(&config, team);
    let dir = temp_dir("samples");
    let mut total_bytes = 0;
    for (name, format) in SAMPLE_FILES {
        let committed_path = samples_dir().join(name);
        let committed = std::fs::read(&committed_path).unwrap_or_else(|e| {
            panic!("{name}: {e}; run `cargo run -p canopy-cur --example write_samples`")
        });
        total_bytes += committed.len();
        let mut fresh = Vec::new();
        write_format(&config, *format, &mut fresh).unwrap();
        match format {
            SampleFormat::Csv(_) => assert!(
                committed == fresh,
                "{name} differs from the generator output"
            ),
            // Compressed bytes may change with the compressor version; the CSV inside may not.
            SampleFormat::CsvGz(_) => assert!(
                gunzip(&committed) == gunzip(&fresh),
                "{name} content differs"
            ),
            // Parquet bytes may change with the writer version; compare what a reader sees.
            SampleFormat::Cur2Parquet => {
                let fresh_path = dir.join(name);
                std::fs::write(&fresh_path, &fresh).unwrap();
                let (fresh_rows, _) = read_path(&fresh_path, &opts(Some("Team"))).unwrap();
                assert_eq!(fresh_rows, expected);
            }
        }
        let (rows, stats) = read_path(&committed_path, &opts(Some("Team"))).unwrap();
        assert_eq!(stats.rows_read, 2_000, "{name}");
        assert!(rows == expected, "{name}: rows differ from the generator");
    }
    assert!(
        total_bytes < 2 * 1024 * 1024,
        "samples too large: {total_bytes} bytes"
    );
}
