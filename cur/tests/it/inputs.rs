//! Folder expansion as AWS delivers a month of CUR files.

use std::path::PathBuf;

use canopy_cur::{CurError, expand_inputs};

use crate::support::temp_dir;

#[test]
fn folders_expand_recursively_sorted_skipping_manifests() {
    let dir = temp_dir("expand");
    let files = [
        "report/20231001-20231101/cur-00002.csv.gz",
        "report/20231001-20231101/cur-00001.csv.gz",
        "report/20231001-20231101/report-Manifest.json",
        "data/BILLING_PERIOD=2023-10/part-0.snappy.parquet",
        "data/BILLING_PERIOD=2023-10/.hidden.csv",
        "notes.txt",
        "top.csv",
    ];
    for f in files {
        let path = dir.join(f);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, b"x").unwrap();
    }
    let single = dir.join("top.csv");
    let found = expand_inputs(&[single.clone(), dir.clone()]).unwrap();
    let expected: Vec<PathBuf> = [
        "top.csv",
        "data/BILLING_PERIOD=2023-10/part-0.snappy.parquet",
        "report/20231001-20231101/cur-00001.csv.gz",
        "report/20231001-20231101/cur-00002.csv.gz",
        "top.csv",
    ]
    .iter()
    .map(|f| dir.join(f))
    .collect();
    assert_eq!(found, expected);
}

#[test]
fn empty_folder_and_unknown_files_are_errors() {
    let dir = temp_dir("expand-empty");
    std::fs::write(dir.join("only-Manifest.json"), b"{}").unwrap();
    let err = expand_inputs(std::slice::from_ref(&dir)).unwrap_err();
    assert!(matches!(err, CurError::NoInputFiles { .. }), "{err:?}");
    let err = expand_inputs(&[dir.join("only-Manifest.json")]).unwrap_err();
    assert!(matches!(err, CurError::UnknownFormat { .. }), "{err:?}");
    let err = expand_inputs(&[dir.join("missing.csv")]).unwrap_err();
    assert!(matches!(err, CurError::Io { .. }), "{err:?}");
}
