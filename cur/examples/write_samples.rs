//! Regenerates the sample CUR files under `samples/cur/`:
//! `cargo run -p canopy-cur --example write_samples`.

use std::path::PathBuf;

use canopy_cur::generate::{SAMPLE_FILES, sample_config, write_format};

fn main() -> std::io::Result<()> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../samples/cur");
    std::fs::create_dir_all(&dir)?;
    let config = sample_config();
    for (name, format) in SAMPLE_FILES {
        let path = dir.join(name);
        let file = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let rows = write_format(&config, *format, file)?;
        let bytes = std::fs::metadata(&path)?.len();
        println!("{}: {rows} rows, {bytes} bytes", path.display());
    }
    Ok(())
}
