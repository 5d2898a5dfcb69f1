//! Conversion between events.k8s.io/v1 Events and the core/v1 form they are stored in, so
//! `kubectl get events` and `kubectl describe` show what kube-rs's Recorder writes.

use serde_json::{Value, json};

/// (events.k8s.io/v1 field, core/v1 field); every other field has the same name.
const RENAMES: [(&str, &str); 7] = [
    ("regarding", "involvedObject"),
    ("note", "message"),
    ("reportingController", "reportingComponent"),
    ("deprecatedSource", "source"),
    ("deprecatedFirstTimestamp", "firstTimestamp"),
    ("deprecatedLastTimestamp", "lastTimestamp"),
    ("deprecatedCount", "count"),
];

fn rename(obj: &mut Value, from_new: bool) {
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    for (new, core) in RENAMES {
        let (from, to) = if from_new { (new, core) } else { (core, new) };
        if let Some(v) = map.remove(from) {
            map.insert(to.to_string(), v);
        }
    }
}

/// An events.k8s.io/v1 Event (or one already in core form) into core/v1 form.
pub fn to_core(obj: &mut Value) {
    rename(obj, true);
    obj["apiVersion"] = json!("v1");
    obj["kind"] = json!("Event");
}

/// A stored core/v1 Event as events.k8s.io/v1 presents it.
pub fn from_core(obj: &Value) -> Value {
    let mut out = obj.clone();
    rename(&mut out, false);
    out["apiVersion"] = json!("events.k8s.io/v1");
    out
}

/// A field selector written against events.k8s.io names, for the stored core form.
pub fn field_selector_to_core(sel: &str) -> String {
    let mut out = sel.to_string();
    for (new, core) in RENAMES {
        out = out.replace(&format!("{new}."), &format!("{core}."));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversion_round_trips_renamed_fields() {
        let new = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event", "metadata": {"name": "e"},
            "regarding": {"kind": "Pod", "name": "p"}, "note": "hi", "reason": "R",
            "reportingController": "c", "deprecatedCount": 2});
        let mut core = new.clone();
        to_core(&mut core);
        assert_eq!(core["involvedObject"]["name"], "p");
        assert_eq!(core["message"], "hi");
        assert_eq!(core["reportingComponent"], "c");
        assert_eq!(core["count"], 2);
        assert_eq!(core["apiVersion"], "v1");
        assert_eq!(from_core(&core), new);
    }
}
