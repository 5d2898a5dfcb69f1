//! Failover with two real processes of the binary (leader election on the emulator's
//! Lease, the Clear simulator answering slowly): stopping the leader with SIGTERM or SIGKILL
//! while its call to Clear is in flight must leave the Secret holding a live token, with
//! the exact number of calls once everything settled.

mod process_kit;

use std::time::Duration;

use clear_operator::resource::REGENERATE_ANNOTATION;
use clear_sandbox::{Fault, FaultScope};
use process_kit::{Replica, World};

const LEASE_SECS: &str = "3";
const CLEAR_TIMEOUT_SECS: &str = "5";
/// The simulator mints at once, then holds its answer back this long.
const SLOW_ANSWER: Duration = Duration::from_secs(3);

/// A replica as these tests run it: a short Lease and Clear timeout, a grace period long
/// enough for the slow call.
fn replica(world: &World, name: &str) -> Replica {
    Replica::start(
        world,
        name,
        &[
            "--lease-duration-secs",
            LEASE_SECS,
            "--clear-timeout-secs",
            CLEAR_TIMEOUT_SECS,
            "--shutdown-grace-secs",
            "20",
        ],
    )
}

/// The token in the Secret, if it is the simulator's current, live token.
async fn live_token_in_secret(world: &World) -> bool {
    let Some(secret) = world.secrets.get_opt("billing").await.unwrap() else {
        return false;
    };
    let Some(token) = secret.data.and_then(|d| d.get("accessToken").cloned()) else {
        return false;
    };
    let token = String::from_utf8(token.0).unwrap();
    world.sandbox.is_token_valid(&token)
        && world
            .sandbox
            .current_token(world.secret)
            .is_some_and(|t| t.token.expose() == token)
}

/// Ready=True, no call marked in flight, and the Secret's token live.
async fn settled(world: &World) -> bool {
    let cac = world.cacs.get("billing").await.unwrap();
    let status = cac.status.unwrap_or_default();
    let ready = status
        .conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True" && c.reason == "Issued");
    ready && status.mint_started_at.is_none() && live_token_in_secret(world).await
}

/// Leader `a` (issued the first token) and standby `b`, then a regeneration whose call to
/// Clear is slow: returns once Clear has minted (the answer is still held back).
async fn leader_in_a_slow_call(world: &World) -> (Replica, Replica) {
    let a = replica(world, "replica-a");
    world
        .wait_until("the first token", Duration::from_secs(60), &[&a], || {
            settled(world)
        })
        .await;
    assert_eq!(world.calls(), 1);
    world.wait_for_leader("replica-a", &[&a]).await;
    let b = replica(world, "replica-b");
    world
        .wait_until("replica-b runs", Duration::from_secs(30), &[&b], || async {
            b.logged("clear-operator starting")
        })
        .await;

    world.sandbox.inject_fault(
        FaultScope::Secret(world.secret.into()),
        Fault::Delay(SLOW_ANSWER),
        1,
    );
    world.annotate(REGENERATE_ANNOTATION, "rotate-1").await;
    world
        .wait_until(
            "the slow call reached Clear",
            Duration::from_secs(30),
            &[&a, &b],
            || async { world.calls() == 2 },
        )
        .await;
    (a, b)
}

/// Pokes the resource (a spurious event) and gives the leader time to act on it.
async fn poke_and_settle(world: &World) {
    world.annotate("example.com/poke", "1").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_slow_call_finishes_the_call_then_hands_over_without_minting() {
    let world = World::start("cs-failover-term-0001").await;
    let (mut a, b) = leader_in_a_slow_call(&world).await;

    a.signal_term();
    assert!(
        a.wait_exit(Duration::from_secs(30)).await,
        "SIGTERM ends the leader cleanly; output:\n{}",
        a.output()
    );
    world.wait_for_leader("replica-b", &[&b]).await;
    world
        .wait_until(
            "a live token is Ready",
            Duration::from_secs(30),
            &[&a, &b],
            || settled(&world),
        )
        .await;
    poke_and_settle(&world).await;

    assert_eq!(
        world.calls(),
        2,
        "the first token and the regeneration, nothing more; replica-b:\n{}",
        b.output()
    );
    assert!(
        settled(&world).await,
        "the Secret still holds the live token"
    );
    assert!(
        a.logged("new token written"),
        "the old leader wrote the answer of its call before releasing the Lease"
    );
    drop(b);
    world.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_slow_call_lets_the_standby_replace_the_token_exactly_once() {
    let world = World::start("cs-failover-kill-0001").await;
    let (mut a, b) = leader_in_a_slow_call(&world).await;

    // The token in the Secret was revoked by the call that is now lost with its process.
    a.kill();
    world
        .wait_until(
            "replica-b waits out the lost call, then replaces the token",
            Duration::from_secs(90),
            &[&b],
            || settled(&world),
        )
        .await;
    poke_and_settle(&world).await;

    assert_eq!(
        world.calls(),
        3,
        "first token, the lost call, one replacement; replica-b:\n{}",
        b.output()
    );
    assert!(settled(&world).await, "the Secret holds the live token");
    assert!(
        b.logged("MintInFlight") || b.logged("may still be in flight"),
        "the standby waited for the lost call's deadline before minting; replica-b:\n{}",
        b.output()
    );
    drop(b);
    world.shutdown().await;
}
