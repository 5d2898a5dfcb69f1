//! The CRD exists in three places that must never drift apart: the Rust types
//! (`clear_operator::resource::crd_yaml()`), the committed `crds/` directory users apply,
//! and the Helm chart's `files/crds/` copy that `templates/crds.yaml` renders (templated,
//! not in the chart's `crds/`, so that `helm upgrade` upgrades it).

use std::{fs, path::Path};

const CRD_FILE: &str = "clearapiclients.clear-operator.io.yaml";
/// How to bring both copies up to date with the code.
const REGENERATE: &str = "cargo run -q -- crd | tee crds/clearapiclients.clear-operator.io.yaml > charts/clear-operator/files/crds/clearapiclients.clear-operator.io.yaml";

fn read(relative: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    fs::read_to_string(&path).unwrap_or_else(|e| panic!("failed to read {}: {e}", path.display()))
}

fn yaml_files_in(relative_dir: &str) -> Vec<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(relative_dir);
    let mut names: Vec<String> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("failed to list {}: {e}", dir.display()))
        .map(|entry| {
            entry
                .expect("a readable directory entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    names.sort();
    names
}

#[test]
fn committed_crd_matches_the_rust_types() {
    let generated = clear_operator::resource::crd_yaml();
    assert!(
        read(&format!("crds/{CRD_FILE}")) == generated,
        "crds/{CRD_FILE} is stale; regenerate both copies: {REGENERATE}"
    );
}

#[test]
fn chart_crd_matches_the_rust_types() {
    let generated = clear_operator::resource::crd_yaml();
    assert!(
        read(&format!("charts/clear-operator/files/crds/{CRD_FILE}")) == generated,
        "charts/clear-operator/files/crds/{CRD_FILE} is stale; regenerate both copies: {REGENERATE}"
    );
}

#[test]
fn chart_ships_exactly_the_committed_crds() {
    let committed = yaml_files_in("crds");
    let charted = yaml_files_in("charts/clear-operator/files/crds");
    assert_eq!(
        charted, committed,
        "the chart's files/crds/ and crds/ hold different files"
    );
    for name in &committed {
        assert!(
            read(&format!("crds/{name}"))
                == read(&format!("charts/clear-operator/files/crds/{name}")),
            "charts/clear-operator/files/crds/{name} differs from crds/{name}; copy crds/{name} over it"
        );
    }
}
