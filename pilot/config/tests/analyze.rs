//! `weft analyze`'s checks on fixtures: each file of `tests/analyze/` is a
//! mesh with one problem, its header naming the findings it must yield
//! (`# expect: CODE Kind ns/name field`), no more and no fewer; and the
//! repository's `examples/` yield no Error or Warning.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use weft_config::analyze::{Analysis, Severity, analyze};
use weft_config::{Document, parse_mesh_config, split_documents};
use weft_model::MeshConfig;

fn documents(path: &Path) -> Vec<Document> {
    let files: Vec<PathBuf> = if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        files
    } else {
        vec![path.to_path_buf()]
    };
    files
        .iter()
        .flat_map(|f| {
            split_documents(
                &f.display().to_string(),
                &std::fs::read_to_string(f).unwrap(),
            )
        })
        .collect()
}

fn found(analysis: &Analysis) -> Vec<String> {
    let mut found: Vec<String> = analysis
        .findings
        .iter()
        .map(|f| format!("{} {} {}", f.code, f.resource, f.field))
        .collect();
    found.sort();
    found
}

#[test]
fn each_fixture_yields_exactly_its_findings() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/analyze");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    fixtures.sort();
    assert!(fixtures.len() >= 21, "{fixtures:?}");
    let mut failures = Vec::new();
    for fixture in &fixtures {
        let text = std::fs::read_to_string(fixture).unwrap();
        let mut expected: Vec<String> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# expect: "))
            .map(str::to_string)
            .collect();
        expected.sort();
        assert!(
            !expected.is_empty(),
            "{} names no expectation",
            fixture.display()
        );
        let analysis = analyze(documents(fixture), Arc::new(MeshConfig::default()));
        let found = found(&analysis);
        if found != expected {
            let lines: Vec<String> = analysis.findings.iter().map(ToString::to_string).collect();
            failures.push(format!(
                "{}:\n  expected {expected:?}\n  found    {found:?}\n  {}",
                fixture.display(),
                lines.join("\n  ")
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Every example, alone or with `bookinfo/` (the mesh the policy examples
/// are written for), under `mesh-config.yaml` (which defines the providers
/// the Telemetry examples name): no Error, no Warning.
#[test]
fn the_examples_are_clean() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples");
    let mesh_config = Arc::new(
        parse_mesh_config(&std::fs::read_to_string(examples.join("mesh-config.yaml")).unwrap())
            .unwrap(),
    );
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&examples)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir() || p.extension().is_some_and(|e| e == "yaml"))
        .filter(|p| !p.ends_with("mesh-config.yaml"))
        .collect();
    entries.sort();
    assert!(entries.len() >= 4, "{entries:?}");
    for entry in entries {
        let mut docs = documents(&entry);
        if !entry.ends_with("bookinfo") {
            docs.extend(documents(&examples.join("bookinfo")));
        }
        let analysis = analyze(docs, mesh_config.clone());
        let bad: Vec<String> = analysis
            .findings
            .iter()
            .filter(|f| f.severity <= Severity::Warning)
            .map(ToString::to_string)
            .collect();
        assert!(bad.is_empty(), "{}:\n{}", entry.display(), bad.join("\n"));
        assert!(analysis.resources > 0, "{}", entry.display());
    }
}
