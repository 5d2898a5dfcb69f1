//! Test controls: injected failures and delays for the next N matching requests, dropping
//! every open watch, forgetting watch history, and the request log.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::store::State;

/// What to do with a request a fault rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultAction {
    /// Answer with a metav1.Status of this HTTP code.
    Fail(u16),
    /// Hold the request this long, then serve it.
    Delay(Duration),
}

#[derive(Debug, Clone)]
struct Rule {
    verb: String,
    resource: String,
    remaining: usize,
    action: FaultAction,
}

/// Fault injection controls of a running emulator.
pub struct Faults {
    rules: Mutex<Vec<Rule>>,
    state: Arc<Mutex<State>>,
}

fn matches(pattern: &str, value: &str) -> bool {
    pattern == "*" || pattern == value
}

impl Faults {
    pub(crate) fn new(state: Arc<Mutex<State>>) -> Faults {
        Faults {
            rules: Mutex::new(Vec::new()),
            state,
        }
    }

    /// Fail the next `n` requests with this verb ("get", "list", "watch", "create",
    /// "update", "patch", "delete", "deletecollection" or "*") on this resource
    /// ("secrets", "clearapiclients/status" or "*"), answering `code` as a Status.
    pub fn fail_next(&self, verb: &str, resource: &str, n: usize, code: u16) {
        self.push(verb, resource, n, FaultAction::Fail(code));
    }

    /// Delay the next `n` matching requests by `delay`.
    pub fn delay_next(&self, verb: &str, resource: &str, n: usize, delay: Duration) {
        self.push(verb, resource, n, FaultAction::Delay(delay));
    }

    fn push(&self, verb: &str, resource: &str, n: usize, action: FaultAction) {
        if n == 0 {
            return;
        }
        self.rules.lock().expect("faults lock").push(Rule {
            verb: verb.to_string(),
            resource: resource.to_string(),
            remaining: n,
            action,
        });
    }

    /// End every open watch now; clients must resume from their last resourceVersion.
    pub fn close_watches(&self) {
        self.state.lock().expect("store lock").close_watches();
    }

    /// Forget the watch history, as an etcd compaction does: a watch from any
    /// resourceVersion older than the current one then gets 410 Gone.
    pub fn compact_history(&self) {
        self.state.lock().expect("store lock").compact();
    }

    /// Number of watches currently open.
    pub fn open_watches(&self) -> usize {
        self.state.lock().expect("store lock").open_watches()
    }

    /// Drop all pending fault rules.
    pub fn clear(&self) {
        self.rules.lock().expect("faults lock").clear();
    }

    /// Take the action of the first rule matching this request, using one of its N.
    pub(crate) fn take(&self, verb: &str, resource: &str) -> Option<FaultAction> {
        let mut rules = self.rules.lock().expect("faults lock");
        let idx = rules
            .iter()
            .position(|r| matches(&r.verb, verb) && matches(&r.resource, resource))?;
        let action = rules[idx].action;
        rules[idx].remaining -= 1;
        if rules[idx].remaining == 0 {
            rules.remove(idx);
        }
        Some(action)
    }
}

/// One served API request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestEntry {
    pub verb: String,
    /// Plural resource, e.g. "secrets".
    pub resource: String,
    pub subresource: Option<String>,
    pub group: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

impl RequestEntry {
    /// "secrets" or "clearapiclients/status".
    pub fn resource_path(&self) -> String {
        match &self.subresource {
            Some(s) => format!("{}/{}", self.resource, s),
            None => self.resource.clone(),
        }
    }

    pub fn is_write(&self) -> bool {
        matches!(
            self.verb.as_str(),
            "create" | "update" | "patch" | "delete" | "deletecollection"
        )
    }
}

/// The log of API requests served (discovery and OpenAPI are not logged). Cheap to clone;
/// all clones see the same log.
#[derive(Clone, Default)]
pub struct RequestLog {
    entries: Arc<Mutex<Vec<RequestEntry>>>,
}

impl RequestLog {
    pub(crate) fn record(&self, entry: RequestEntry) {
        self.entries.lock().expect("log lock").push(entry);
    }

    /// Every request, in order.
    pub fn entries(&self) -> Vec<RequestEntry> {
        self.entries.lock().expect("log lock").clone()
    }

    /// Only the writes (create, update, patch, delete, deletecollection).
    pub fn writes(&self) -> Vec<RequestEntry> {
        self.entries()
            .into_iter()
            .filter(RequestEntry::is_write)
            .collect()
    }

    /// Count of requests with this verb on this resource path ("secrets",
    /// "clearapiclients/status"); "*" matches any.
    pub fn count(&self, verb: &str, resource: &str) -> usize {
        self.entries
            .lock()
            .expect("log lock")
            .iter()
            .filter(|e| matches(verb, &e.verb) && matches(resource, &e.resource_path()))
            .count()
    }

    /// Counts per (verb, resource path).
    pub fn counts(&self) -> BTreeMap<(String, String), usize> {
        let mut out = BTreeMap::new();
        for e in self.entries.lock().expect("log lock").iter() {
            *out.entry((e.verb.clone(), e.resource_path())).or_insert(0) += 1;
        }
        out
    }

    pub fn reset(&self) {
        self.entries.lock().expect("log lock").clear();
    }
}
