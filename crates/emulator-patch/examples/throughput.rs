//! Prints how long the emulator's per-write calls take (run with `--release`): the Update
//! bookkeeping of a Secret create, a no-op server-side re-apply of a Deployment and a
//! strategic merge patch, each repeated 10,000 times.

use std::time::Instant;

use emulator_patch::{ApplyOptions, apply_strategic_merge_patch, record_update, server_side_apply};
use serde_json::json;

const ROUNDS: u32 = 10_000;

fn report(what: &str, started: Instant) {
    let total = started.elapsed();
    println!(
        "{what}: {ROUNDS} in {:.1} ms, {:.1} µs each",
        total.as_secs_f64() * 1e3,
        total.as_secs_f64() * 1e6 / f64::from(ROUNDS)
    );
}

fn main() {
    let secret = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "token", "namespace": "default", "labels": {"app": "clear-operator"},
                     "annotations": {"clear.example/expires": "2026-11-25T10:00:00Z"}},
        "type": "Opaque",
        "data": {"token": "dG9rZW4=", "expiresAt": "MjAyNg=="}
    });
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let mut created = secret.clone();
        record_update(
            None,
            &mut created,
            "clear-operator",
            None,
            "2026-11-25T10:00:00Z",
        );
        std::hint::black_box(&created);
    }
    report("record_update (Secret create)", started);

    let deployment = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{
                    "name": "app", "image": "nginx:1.27",
                    "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "ports": [{"containerPort": 80, "protocol": "TCP"}]
                }]}
            }
        }
    });
    let opts = ApplyOptions {
        manager: "helm",
        force: true,
        subresource: None,
        now: "2026-11-25T10:00:00Z",
    };
    let live = server_side_apply(None, &deployment, &opts).expect("create");
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let again = server_side_apply(Some(&live), &deployment, &opts).expect("re-apply");
        std::hint::black_box(&again);
    }
    report("server_side_apply (no-op Deployment re-apply)", started);

    let patch = json!({"spec": {"replicas": 3, "template": {"spec": {
        "$setElementOrder/containers": [{"name": "app"}],
        "containers": [{"name": "app", "image": "nginx:1.28"}]
    }}}});
    let started = Instant::now();
    for _ in 0..ROUNDS {
        let mut target = live.clone();
        apply_strategic_merge_patch(&mut target, &patch, "apps/v1", "Deployment").expect("patch");
        std::hint::black_box(&target);
    }
    report("apply_strategic_merge_patch (Deployment)", started);
}
