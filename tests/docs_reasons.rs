//! Every reason the operator can set (conditions, Events, log and metric labels: the enum
//! `Reason`) has a row in docs/troubleshooting.md: its cause, what the operator does next
//! and what the user should do. A reason added to the enum without a row fails here, naming
//! it.

use std::{collections::BTreeSet, path::Path};

use clear_operator::reason::Reason;
use strum::IntoEnumIterator;

const PAGE: &str = "docs/troubleshooting.md";

/// The reasons that have a row: lines of a markdown table whose first cell is the reason in
/// backticks, e.g. "| `Issued` | ...".
fn documented_reasons(page: &str) -> BTreeSet<String> {
    page.lines()
        .filter_map(|line| line.trim_start().strip_prefix("| `"))
        .filter_map(|rest| rest.split_once("` |"))
        .map(|(name, _)| name.to_string())
        .collect()
}

fn page() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(PAGE);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_reason_has_a_row_in_the_troubleshooting_page() {
    let documented = documented_reasons(&page());
    let missing: Vec<&str> = Reason::iter()
        .map(Reason::as_str)
        .filter(|reason| !documented.contains(*reason))
        .collect();
    assert!(
        missing.is_empty(),
        "{PAGE} has no row starting with \"| `Reason` |\" for: {}. Add one per reason: \
         | `Reason` | cause | what the operator does next | what the user should do |",
        missing.join(", ")
    );
}

#[test]
fn every_row_names_a_reason_the_operator_can_set() {
    // A row for a reason that was renamed or removed would send users looking for a word
    // the operator never writes.
    let known: BTreeSet<&str> = Reason::iter().map(Reason::as_str).collect();
    let stale: Vec<String> = documented_reasons(&page())
        .into_iter()
        .filter(|name| !known.contains(name.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "{PAGE} has rows for reasons the operator does not have: {}",
        stale.join(", ")
    );
}

#[test]
fn every_row_has_the_four_columns_filled() {
    for line in page().lines().filter(|l| l.trim_start().starts_with("| `")) {
        let cells: Vec<&str> = line
            .trim()
            .trim_start_matches('|')
            .trim_end_matches('|')
            .split(" | ")
            .map(str::trim)
            .collect();
        assert!(
            cells.len() >= 4 && cells.iter().all(|c| !c.is_empty()),
            "a row needs reason, cause, what the operator does next and what the user should do: {line}"
        );
    }
}

#[test]
fn the_row_parser_finds_reasons_and_nothing_else() {
    let sample = "| Reason | Cause |\n| --- | --- |\n| `Issued` | a | b | c |\n\
                  text with `Renewed` in it\n  | `Conflict` | a | b | c |\n";
    assert_eq!(
        documented_reasons(sample),
        BTreeSet::from(["Issued".to_string(), "Conflict".to_string()])
    );
}
