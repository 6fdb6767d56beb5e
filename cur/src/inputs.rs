//! Finding CUR data files among the paths a user gives, and telling their
//! format from the file name.

use std::path::{Path, PathBuf};

use crate::error::CurError;

/// Container format of a CUR file, from its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// `*.csv`
    Csv,
    /// `*.csv.gz` or `*.gz`
    CsvGz,
    /// `*.parquet` (including AWS's `*.snappy.parquet`)
    Parquet,
}

impl FileKind {
    /// Format implied by the file name (case-insensitive), `None` if unknown.
    pub fn of(path: &Path) -> Option<FileKind> {
        let name = path.file_name()?.to_string_lossy().to_ascii_lowercase();
        if name.ends_with(".parquet") {
            Some(FileKind::Parquet)
        } else if name.ends_with(".gz") {
            Some(FileKind::CsvGz)
        } else if name.ends_with(".csv") {
            Some(FileKind::Csv)
        } else {
            None
        }
    }
}

/// Expands files and folders into the list of CUR data files to read.
///
/// Files are kept in the order given and must have a known extension.
/// Folders are walked recursively; every `*.csv`, `*.csv.gz`, `*.gz` and
/// `*.parquet` file is taken in sorted path order and anything else (AWS's
/// `*-Manifest.json`, `*.sql`, `*.yml`, hidden files) is skipped. A folder
/// without data files is an error, so a wrong path never yields an empty report.
pub fn expand_inputs(paths: &[PathBuf]) -> Result<Vec<PathBuf>, CurError> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| CurError::io(path, e))?;
        if meta.is_dir() {
            let mut found = Vec::new();
            walk(path, &mut found)?;
            if found.is_empty() {
                return Err(CurError::NoInputFiles { path: path.clone() });
            }
            found.sort();
            files.extend(found);
        } else if FileKind::of(path).is_some() {
            files.push(path.clone());
        } else {
            return Err(CurError::UnknownFormat { path: path.clone() });
        }
    }
    Ok(files)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), CurError> {
    let entries = std::fs::read_dir(dir).map_err(|e| CurError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| CurError::io(dir, e))?;
        let path = entry.path();
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let file_type = entry.file_type().map_err(|e| CurError::io(&path, e))?;
        if file_type.is_dir() {
            walk(&path, found)?;
        } else if FileKind::of(&path).is_some() {
            found.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_from_names() {
        assert_eq!(
            FileKind::of(Path::new("a/cur-00001.csv.gz")),
            Some(FileKind::CsvGz)
        );
        assert_eq!(
            FileKind::of(Path::new("x.snappy.parquet")),
            Some(FileKind::Parquet)
        );
        assert_eq!(FileKind::of(Path::new("X.CSV")), Some(FileKind::Csv));
        assert_eq!(FileKind::of(Path::new("cur-Manifest.json")), None);
        assert_eq!(FileKind::of(Path::new("data.csv.zip")), None);
    }
}
