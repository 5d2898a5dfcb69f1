//! The Dockerfile against the workspace, without building an image (scripts/build-image.sh
//! does that): the dependency stage builds from the skeleton `scripts/cargo-skeleton.sh`
//! writes, and cargo loads that skeleton with exactly the workspace's targets, so adding a
//! bench, test, example or member cannot break the image build again (a forgotten
//! `benches/scale.rs` once did).

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
    process::Command,
};

use serde_json::Value;

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn dockerfile() -> String {
    std::fs::read_to_string(repo_root().join("Dockerfile")).expect("Dockerfile")
}

fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// `cargo metadata --no-deps` of the workspace whose root manifest is in `dir`.
fn metadata(dir: &Path) -> Value {
    let output = cargo()
        .args([
            "metadata",
            "--no-deps",
            "--format-version",
            "1",
            "--offline",
        ])
        .current_dir(dir)
        .output()
        .expect("failed to run cargo metadata");
    assert!(
        output.status.success(),
        "cargo metadata in {} failed:\n{}",
        dir.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata JSON")
}

/// Every target as (package, target, kinds, path relative to the workspace root).
fn targets(metadata: &Value) -> BTreeSet<(String, String, String, String)> {
    let root = metadata["workspace_root"].as_str().unwrap();
    let mut out = BTreeSet::new();
    for package in metadata["packages"].as_array().unwrap() {
        for target in package["targets"].as_array().unwrap() {
            let path = target["src_path"].as_str().unwrap();
            let relative = path
                .strip_prefix(root)
                .unwrap_or_else(|| panic!("{path} is outside {root}"));
            out.insert((
                package["name"].as_str().unwrap().to_string(),
                target["name"].as_str().unwrap().to_string(),
                target["kind"].to_string(),
                relative.to_string(),
            ));
        }
    }
    out
}

fn write_skeleton(name: &str) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new("bash")
        .arg(repo_root().join("scripts/cargo-skeleton.sh"))
        .arg(repo_root())
        .arg(&out)
        .env(
            "CARGO",
            std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()),
        )
        .status()
        .expect("failed to run scripts/cargo-skeleton.sh");
    assert!(status.success(), "scripts/cargo-skeleton.sh failed");
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn the_skeleton_has_every_target_of_the_workspace_and_no_source() {
    let skeleton = write_skeleton("dockerfile-skeleton");
    let workspace = targets(&metadata(repo_root()));
    assert!(
        workspace
            .iter()
            .any(|(p, t, _, _)| p == "clear-operator" && t == "scale"),
        "the workspace lists the scale bench: {workspace:?}"
    );
    // Cargo loads the skeleton (a missing stand-in fails right here, as it failed the image
    // build), and finds the same targets at the same paths.
    assert_eq!(targets(&metadata(&skeleton)), workspace);
    for manifest in ["Cargo.toml", "Cargo.lock"] {
        assert_eq!(
            std::fs::read(skeleton.join(manifest)).unwrap(),
            std::fs::read(repo_root().join(manifest)).unwrap(),
            "{manifest} is copied as is"
        );
    }
    // Only stand-ins: a source edit must not change the dependency layer's input.
    let mut files = Vec::new();
    rust_files(&skeleton, &mut files);
    let stand_ins: BTreeSet<String> = files
        .iter()
        .map(|f| {
            f.strip_prefix(&skeleton)
                .unwrap()
                .to_string_lossy()
                .into_owned()
        })
        .collect();
    let target_paths: BTreeSet<String> = workspace
        .iter()
        .map(|(_, _, _, path)| path.trim_start_matches('/').to_string())
        .collect();
    assert_eq!(
        stand_ins, target_paths,
        "one stand-in per target file, nothing else"
    );
    for file in files {
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "#![allow(dead_code)]\nfn main() {}\n",
            "{} is not a stand-in",
            file.display()
        );
    }
}

#[test]
fn the_skeleton_is_the_same_bytes_and_times_every_time() {
    // The image builder's layer cache keys on the copied files, headers included.
    let stamp = |dir: &Path| {
        let mut files = Vec::new();
        rust_files(dir, &mut files);
        files.push(dir.join("Cargo.toml"));
        files
            .iter()
            .map(|f| {
                let meta = std::fs::metadata(f).unwrap();
                (
                    f.strip_prefix(dir).unwrap().to_path_buf(),
                    meta.modified().unwrap(),
                    std::fs::read(f).unwrap(),
                )
            })
            .collect::<BTreeSet<_>>()
    };
    let first = stamp(&write_skeleton("dockerfile-skeleton-a"));
    let second = stamp(&write_skeleton("dockerfile-skeleton-b"));
    assert_eq!(first, second);
}

#[test]
fn the_dependency_stage_builds_from_the_skeleton_before_the_sources() {
    let dockerfile = dockerfile();
    let lines: Vec<&str> = dockerfile.lines().collect();
    let from: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.starts_with("FROM "))
        .collect();
    assert_eq!(
        from,
        [
            "FROM ${RUST_IMAGE} AS skeleton",
            "FROM ${RUST_IMAGE} AS builder",
            "FROM ${RUNTIME_IMAGE}"
        ],
        "base images come from build arguments, so they can be pinned by digest"
    );
    for expected in [
        "ARG RUST_IMAGE=rust:1.95-slim-bookworm",
        // Distroless, non-root: no shell, no package manager, CA roots included.
        "ARG RUNTIME_IMAGE=gcr.io/distroless/cc-debian12:nonroot",
        "RUN bash scripts/cargo-skeleton.sh /src /skeleton",
        "cargo build --profile dist --locked -p clear-operator --no-default-features",
        "USER 65532:65532",
        "ENTRYPOINT [\"/usr/local/bin/clear-operator\"]",
        "CMD [\"run\"]",
        "org.opencontainers.image.title",
        "org.opencontainers.image.licenses",
        "org.opencontainers.image.version",
        "org.opencontainers.image.revision",
    ] {
        assert!(
            dockerfile.contains(expected),
            "Dockerfile lacks {expected:?}"
        );
    }
    let position = |needle: &str| {
        lines
            .iter()
            .position(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("Dockerfile lacks {needle:?}"))
    };
    let builder = position("AS builder");
    // All sources go only into the skeleton stage; the builder gets the skeleton, builds
    // the dependencies, and only then the operator's sources.
    let copy_all: Vec<usize> = (0..lines.len())
        .filter(|&i| matches!(lines[i].trim(), "COPY . ." | "COPY . ./"))
        .collect();
    assert_eq!(copy_all.len(), 1, "one COPY . . (the skeleton stage's)");
    assert!(copy_all[0] < builder);
    let skeleton = position("COPY --from=skeleton /skeleton/ ./");
    let first_build = position("cargo build --profile dist");
    let sources = position("COPY src ./src");
    assert!(builder < skeleton && skeleton < first_build && first_build < sources);
    assert!(
        !lines[builder..].iter().any(|l| l.contains("Cargo.toml")),
        "the builder takes its manifests from the skeleton only"
    );
}
