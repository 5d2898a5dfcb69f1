//! Relative links in the user documentation point at files that exist, and `#anchors` into
//! our own markdown files at headings that exist (GitHub's heading anchors), so that moving
//! a section cannot leave a dead link behind.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The pages checked: the README, the changelog, every page under docs/, and the other
/// READMEs that link into them.
fn pages() -> Vec<PathBuf> {
    let root = repo_root();
    let mut pages = vec![
        root.join("README.md"),
        root.join("CHANGELOG.md"),
        root.join("charts/clear-operator/README.md"),
        root.join("examples/consumers/README.md"),
    ];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "md"))
        .collect();
    docs.sort();
    pages.extend(docs);
    pages
}

/// Markdown text outside fenced code blocks, line by line.
fn prose_lines(text: &str) -> Vec<&str> {
    let mut fenced = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            lines.push(line);
        }
    }
    lines
}

/// Removes inline code spans, so that text such as `a](b)` in backticks is not a link.
fn without_code_spans(line: &str) -> String {
    let mut out = String::new();
    let mut in_code = false;
    for c in line.chars() {
        if c == '`' {
            in_code = !in_code;
        } else if !in_code {
            out.push(c);
        }
    }
    out
}

/// Targets of inline links `[text](target)` in a page.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    for line in prose_lines(text) {
        let line = without_code_spans(line);
        let mut rest = line.as_str();
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            let target = after[..end].split_whitespace().next().unwrap_or("");
            targets.push(target.to_string());
            rest = &after[end..];
        }
    }
    targets
}

/// GitHub's anchor for a heading: lower case, punctuation other than `-` and `_` dropped,
/// spaces turned into `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == ' ' || *c == '-' || *c == '_')
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a page offers (repeated headings get `-1`, `-2`, ... as on GitHub).
fn anchors(text: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for line in prose_lines(text) {
        let trimmed = line.trim_start();
        if !trimmed.starts_with('#') {
            continue;
        }
        let heading = trimmed.trim_start_matches('#');
        if !heading.starts_with(' ') {
            continue;
        }
        let base = slug(heading);
        let mut anchor = base.clone();
        let mut n = 0;
        while seen.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        seen.insert(anchor);
    }
    seen
}

fn is_external(target: &str) -> bool {
    target.contains("://") || target.starts_with("mailto:")
}

#[test]
fn relative_links_and_anchors_in_the_docs_resolve() {
    let mut dead = Vec::new();
    for page in pages() {
        let text =
            std::fs::read_to_string(&page).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
        let dir = page.parent().unwrap();
        for target in link_targets(&text) {
            if target.is_empty() || is_external(&target) {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let file = if path.is_empty() {
                page.clone()
            } else {
                dir.join(path)
            };
            let shown = page.strip_prefix(repo_root()).unwrap_or(&page).display();
            if !file.exists() {
                dead.push(format!("{shown}: {target} (no such file)"));
                continue;
            }
            if let Some(anchor) = anchor
                && file.extension().is_some_and(|e| e == "md")
            {
                let linked = std::fs::read_to_string(&file).unwrap();
                if !anchors(&linked).contains(anchor) {
                    dead.push(format!("{shown}: {target} (no such heading)"));
                }
            }
        }
    }
    assert!(dead.is_empty(), "dead links:\n{}", dead.join("\n"));
}

#[test]
fn the_readme_stays_at_most_15_kb() {
    let size = std::fs::metadata(repo_root().join("README.md"))
        .unwrap()
        .len();
    assert!(
        size <= 15_000,
        "README.md is {size} bytes: keep it the user's entry (at most 15 KB) and move the rest to docs/"
    );
}

#[test]
fn slugs_follow_githubs_rule() {
    assert_eq!(
        slug("Which hosts get client secrets (allow-list)"),
        "which-hosts-get-client-secrets-allow-list"
    );
    assert_eq!(
        slug("Dashboard (`grafanaDashboard.enabled`)"),
        "dashboard-grafanadashboardenabled"
    );
    assert_eq!(
        slug("Pick windows that fit the token's life"),
        "pick-windows-that-fit-the-tokens-life"
    );
    assert_eq!(
        link_targets("see [a](docs/a.md#x) and `[b](c.md)` [d](https://e)"),
        vec!["docs/a.md#x".to_string(), "https://e".to_string()]
    );
    let anchors = anchors("# A\n## A\n```\n# not a heading\n```\n");
    assert_eq!(
        anchors,
        BTreeSet::from(["a".to_string(), "a-1".to_string()])
    );
}
