//! The operator's wall clock moved under it, as on a node whose clock is stepped: the real
//! binary runs under libfaketime (wall clock shifted by an offset read from a file, monotonic
//! clock untouched) while the API emulator and the Clear simulator run on the real clock in
//! this process. Short tokens, so that renewals happen within the test. The promise checked
//! all along: a `Ready=True` resource holds a token Clear says is live; and no step costs a
//! call.

mod kit_common;
mod process_kit;

use std::time::{Duration, Instant};

use kube::{
    ResourceExt,
    api::{Patch, PatchParams},
};
use process_kit::{Replica, World, faketime::FakeClock};
use serde_json::json;

/// Tokens live two minutes: renewed 80 s after issue (a third of the lifetime before).
const LIFETIME: Duration = Duration::from_secs(120);
/// How long the wall clock stays stepped.
const STEP: Duration = Duration::from_secs(20);
/// Generous bound for one renewal of every resource (80 s after issue, on a loaded machine).
const RENEWAL_WITHIN: Duration = Duration::from_secs(240);

/// The resources and their client secrets (the first is the world's own `billing`).
fn resources(prefix: &'static str) -> [(&'static str, String); 3] {
    [
        ("billing", format!("{prefix}-0")),
        ("payroll", format!("{prefix}-1")),
        ("ledger", format!("{prefix}-2")),
    ]
}

async fn world(secret: &'static str, prefix: &'static str) -> World {
    let world = World::start_with_lifetime(secret, LIFETIME).await;
    for (name, secret) in resources(prefix).iter().skip(1) {
        world.add_resource(name, secret, LIFETIME).await;
    }
    world
}

async fn token_in_secret(world: &World, name: &str) -> Option<String> {
    let secret = world.secrets.get_opt(name).await.unwrap()?;
    kit_common::data(&secret, "accessToken")
}

/// What one look at a resource found.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    /// Ready=True with a token Clear holds valid.
    ReadyLive,
    /// Not Ready=True, or a call in flight (the token may be revoked until the Secret is
    /// written: the documented revoke gap), or status moved while looking: nothing to check.
    NothingPromised,
    /// Ready=True on a token Clear does not hold valid: the promise broken.
    ReadyDead,
}

async fn look(world: &World, name: &str) -> Seen {
    let before = world.cacs.get(name).await.unwrap();
    let in_flight = before
        .status
        .as_ref()
        .is_some_and(|s| s.mint_started_at.is_some());
    if !kit_common::is_ready(&before, "True") || in_flight {
        return Seen::NothingPromised;
    }
    let live = token_in_secret(world, name)
        .await
        .is_some_and(|token| world.sandbox.is_token_valid(&token));
    // NB: a call starts with a status write (mintStartedAt); an unchanged resourceVersion
    // means none started while the Secret was read.
    let after = world.cacs.get(name).await.unwrap();
    if after.resource_version() != before.resource_version() {
        return Seen::NothingPromised;
    }
    if live {
        Seen::ReadyLive
    } else {
        Seen::ReadyDead
    }
}

/// Looks at every resource every 250 ms until `done` holds (or, with no condition, for
/// `within`); panics at the first Ready resource on a dead token, and when `done` does not
/// hold in time.
async fn watch(
    world: &World,
    prefix: &'static str,
    replica: &Replica,
    what: &str,
    within: Duration,
    done: Option<&dyn Fn(&World) -> bool>,
) {
    let deadline = Instant::now() + within;
    loop {
        let mut all_ready_live = true;
        for (name, _) in resources(prefix) {
            let seen = look(world, name).await;
            assert_ne!(
                seen,
                Seen::ReadyDead,
                "{name} is Ready on a token Clear does not hold valid ({what}); calls {:?}; \
                 operator output:\n{}",
                calls(world, prefix),
                replica.output()
            );
            all_ready_live &= seen == Seen::ReadyLive;
        }
        match done {
            Some(done) if all_ready_live && done(world) => return,
            None if Instant::now() >= deadline => return,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "never reached: {what}; calls {:?}; operator output:\n{}",
            calls(world, prefix),
            replica.output()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// An edit of the resource that asks for no token (an annotation of the test's own), so
/// the operator reconciles it now.
async fn poke(world: &World, name: &str, round: u32) {
    world
        .cacs
        .patch(
            name,
            &PatchParams::default(),
            &Patch::Merge(
                &json!({"metadata": {"annotations": {"clock-step.test/poke": round.to_string()}}}),
            ),
        )
        .await
        .expect("resource annotated");
}

/// Calls to Clear per resource.
fn calls(world: &World, prefix: &'static str) -> Vec<u64> {
    resources(prefix)
        .iter()
        .map(|(_, secret)| kit_common::calls(&world.sandbox, secret))
        .collect()
}

/// Watches until every resource is Ready on a live token; one call each.
async fn every_resource_ready_on_its_first_token(
    world: &World,
    prefix: &'static str,
    replica: &Replica,
) {
    let what = "every resource Ready on a live token";
    let within = Duration::from_secs(60);
    watch(
        world,
        prefix,
        replica,
        what,
        within,
        Some(&|_: &World| true),
    )
    .await;
    assert_eq!(calls(world, prefix), [1, 1, 1], "one token each");
}

/// Watches (every Ready resource on a live token) until every resource was renewed; one
/// renewal each, no more.
async fn every_resource_renewed_once(
    world: &World,
    prefix: &'static str,
    replica: &Replica,
    what: &str,
) {
    let renewed = |world: &World| calls(world, prefix).iter().all(|c| *c >= 2);
    watch(world, prefix, replica, what, RENEWAL_WITHIN, Some(&renewed)).await;
    assert_eq!(calls(world, prefix), [2, 2, 2], "one renewal each, no more");
}

/// The wall clock a day ahead for 20 s, then back: no call while it is ahead, and through
/// the next renewal every Ready resource holds a live token, renewed exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_long_step_of_the_operator_clock_costs_no_call_and_no_dead_token() {
    const PREFIX: &str = "cs-clock-step";
    let world = world("cs-clock-step-0", PREFIX).await;
    let clock = FakeClock::new("step", "+0");
    let mut replica =
        Replica::start_faked(&world, "replica-a", &["--lease-duration-secs", "3"], &clock);
    every_resource_ready_on_its_first_token(&world, PREFIX, &replica).await;

    clock.set("+1d");
    // NB: a decision needs a reconcile: an edit of each resource every 5 s makes sure the
    // operator decides (and would mint, if it believed its node) while the clock is ahead.
    for round in 0..4 {
        for (name, _) in resources(PREFIX) {
            poke(&world, name, round).await;
        }
        watch(&world, PREFIX, &replica, "the step ahead", STEP / 4, None).await;
    }
    assert_eq!(
        calls(&world, PREFIX),
        [1, 1, 1],
        "no call while the clock was a day ahead"
    );
    assert!(
        replica.logged("the node's wall clock is off the API server's time"),
        "the operator saw its node's clock a day ahead (else libfaketime did not apply); \
         output:\n{}",
        replica.output()
    );

    clock.set("+0");
    every_resource_renewed_once(
        &world,
        PREFIX,
        &replica,
        "every resource renewed once after the step",
    )
    .await;
    assert!(replica.stop().await, "the operator exits cleanly");
    world.shutdown().await;
}

/// A process that starts with its wall clock a day ahead, over tokens another replica
/// minted: the API server's clock corrects it before the first decision, so it mints
/// nothing until the tokens are due, then renews each exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_that_starts_a_day_ahead_mints_nothing_before_renewals_are_due() {
    const PREFIX: &str = "cs-clock-start";
    let world = world("cs-clock-start-0", PREFIX).await;
    let mut first = Replica::start(&world, "replica-a", &["--lease-duration-secs", "3"]);
    every_resource_ready_on_its_first_token(&world, PREFIX, &first).await;
    assert!(first.stop().await, "the first replica exits cleanly");

    let clock = FakeClock::new("start", "+1d");
    let mut replica =
        Replica::start_faked(&world, "replica-b", &["--lease-duration-secs", "3"], &clock);
    world.wait_for_leader("replica-b", &[&replica]).await;
    watch(
        &world,
        PREFIX,
        &replica,
        "leading with the clock a day ahead",
        STEP,
        None,
    )
    .await;
    assert_eq!(
        calls(&world, PREFIX),
        [1, 1, 1],
        "no call for tokens that are still valid"
    );
    assert!(
        replica.logged("disagreed with the API server's clock"),
        "the operator corrected its start-up clock (else libfaketime did not apply); \
         output:\n{}",
        replica.output()
    );

    every_resource_renewed_once(
        &world,
        PREFIX,
        &replica,
        "every resource renewed once, with the node's clock still a day ahead",
    )
    .await;
    assert!(replica.stop().await, "the operator exits cleanly");
    world.shutdown().await;
}
