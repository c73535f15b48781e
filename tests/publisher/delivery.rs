//! Delivery basics: rows reach the subscriber and are retired only after their PUBACK; outages, lost
//! acknowledgements and cut connections lose nothing; status and live messages are retained.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;

use serde_json::{json, Value};
use shopfloor_agent::publisher::LiveMessage;

use super::{has_all, seqs_received, status_topic, Harness, PATIENCE};
use crate::support::{self, Forwarder, Recorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_committed_rows_when_the_broker_is_up_then_each_is_delivered_with_seq_and_retired() {
    // Given a broker, a subscriber, and rows committed as the publisher starts.
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "pa/#").await;
    let harness = Harness::start(broker.port, "pa", |_| {}).await;
    let mut seqs = harness.enqueue(25).await;
    support::wait_until(PATIENCE, "the first 25 rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &seqs)
    })
    .await;

    // When more cycles commit while it is connected and idle (it learns of them via the notify).
    seqs.extend(harness.enqueue(25).await);
    seqs.extend(harness.enqueue(1).await);

    // Then every row reaches the subscriber with its seq and db_epoch, and the outbox empties.
    support::wait_until(PATIENCE, "all 51 rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &seqs)
    })
    .await;
    harness.wait_for_retired(51).await;
    let received = seqs_received(&recorder, &harness.db_epoch);
    assert_eq!(
        received.keys().copied().collect::<BTreeSet<_>>(),
        seqs.iter().copied().collect::<BTreeSet<_>>()
    );

    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_no_broker_at_start_when_it_becomes_reachable_then_waiting_rows_are_delivered_and_retired(
) {
    // Given a publisher pointed at a port where nothing listens, and committed rows.
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "pb/#").await;
    let port = support::free_port();
    let harness = Harness::start(port, "pb", |_| {}).await;
    let seqs = harness.enqueue(20).await;

    // When it has failed to connect several times, the rows are still in the outbox.
    support::wait_until(PATIENCE, "three failed connection attempts", || {
        harness.stats.reconnects.load(Ordering::Relaxed) >= 3
    })
    .await;
    assert!(!harness.connected());
    assert_eq!(harness.backlog_rows().await, 20);
    assert!(harness.stats.last_error().is_some());

    // Then once the broker is reachable on that port, every row is delivered and retired.
    let _route = Forwarder::start(port, broker.port).await;
    support::wait_until(PATIENCE, "all 20 rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &seqs)
    })
    .await;
    harness.wait_for_empty_outbox().await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_lost_pubacks_when_the_broker_has_the_rows_then_they_stay_in_the_outbox_until_acknowledged(
) {
    // Given a connected publisher whose connection then stops carrying the broker's replies.
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "pe/#").await;
    let route = Forwarder::start(0, broker.port).await;
    let harness = Harness::start(route.port, "pe", |_| {}).await;
    support::wait_until(PATIENCE, "the publisher to connect", || harness.connected()).await;
    route.swallow_replies(true);

    // When rows are published and reach the broker, but no PUBACK comes back.
    let seqs = harness.enqueue(10).await;
    support::wait_until(PATIENCE, "all 10 rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &seqs)
    })
    .await;

    // Then none of them is retired.
    assert_eq!(harness.backlog_rows().await, 10);
    assert_eq!(harness.stats.acked.load(Ordering::Relaxed), 0);

    // And after the connection is rebuilt, all are sent again (at least once) and retired on PUBACK.
    route.swallow_replies(false);
    route.cut();
    harness.wait_for_empty_outbox().await;
    support::wait_until(PATIENCE, "every row delivered twice", || {
        let received = seqs_received(&recorder, &harness.db_epoch);
        seqs.iter()
            .all(|seq| received.get(seq).copied().unwrap_or(0) >= 2)
    })
    .await;
    assert_eq!(seqs_received(&recorder, &harness.db_epoch).len(), 10);
    harness.wait_for_retired(10).await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_connection_cut_mid_drain_when_it_reconnects_then_every_row_arrives_and_is_retired()
{
    // Given a backlog draining at a limited rate through a route we can cut.
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "pf/#").await;
    let route = Forwarder::start(0, broker.port).await;
    let harness = Harness::start(route.port, "pf", |cfg| cfg.drain_rate = Some(40)).await;
    let seqs = harness.enqueue(80).await;

    // When the connection is cut after part of the backlog arrived.
    support::wait_until(PATIENCE, "the first rows at the subscriber", || {
        seqs_received(&recorder, &harness.db_epoch).len() >= 20
    })
    .await;
    route.cut();

    // Then the publisher reconnects and every row arrives and is retired.
    support::wait_until(PATIENCE, "all 80 rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &seqs)
    })
    .await;
    harness.wait_for_empty_outbox().await;
    assert!(harness.stats.reconnects.load(Ordering::Relaxed) >= 1);
    assert!(
        route.accepted() >= 2,
        "the publisher came back through the route"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_connected_publisher_when_a_subscriber_arrives_later_then_status_is_online_retained_and_offline_after_shutdown(
) {
    // Given a publisher that has announced itself.
    let broker = support::broker();
    let topic = status_topic("pc");
    let early = Recorder::subscribe(broker.port, &topic).await;
    let harness = Harness::start(broker.port, "pc", |_| {}).await;
    support::wait_until(PATIENCE, "status online", || {
        early
            .messages_matching(&topic)
            .iter()
            .any(|(_, body)| body["state"] == "online")
    })
    .await;

    // When a subscriber connects later, then it receives "online" as a retained message.
    let late = Recorder::subscribe(broker.port, &topic).await;
    support::wait_until(PATIENCE, "retained online for a late subscriber", || {
        late.messages()
            .iter()
            .any(|m| m.retained && m.body["state"] == "online")
    })
    .await;

    // When the publisher shuts down cleanly, then the retained status says "offline".
    harness.stop().await;
    support::wait_until(PATIENCE, "status offline after shutdown", || {
        early
            .messages_matching(&topic)
            .last()
            .is_some_and(|(_, body)| body["state"] == "offline")
    })
    .await;
    let after = Recorder::subscribe(broker.port, &topic).await;
    support::wait_until(PATIENCE, "retained offline for a later subscriber", || {
        after
            .messages()
            .iter()
            .any(|m| m.retained && m.body["state"] == "offline")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_publisher_that_dies_when_its_connection_drops_then_the_broker_publishes_offline_as_its_will(
) {
    // Given a connected publisher.
    let broker = support::broker();
    let topic = status_topic("pw");
    let watcher = Recorder::subscribe(broker.port, &topic).await;
    let harness = Harness::start(broker.port, "pw", |_| {}).await;
    support::wait_until(PATIENCE, "status online", || {
        watcher
            .messages_matching(&topic)
            .iter()
            .any(|(_, body)| body["state"] == "online")
    })
    .await;

    // When its task is killed without a clean disconnect.
    harness.task.abort();

    // Then the broker publishes the last will: "offline", retained.
    support::wait_until(PATIENCE, "the last will", || {
        watcher
            .messages_matching(&topic)
            .last()
            .is_some_and(|(_, body)| body["state"] == "offline")
    })
    .await;
    let later = Recorder::subscribe(broker.port, &topic).await;
    support::wait_until(PATIENCE, "retained offline from the will", || {
        later
            .messages()
            .iter()
            .any(|m| m.retained && m.body["state"] == "offline")
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_live_updates_when_a_subscriber_arrives_later_then_it_receives_the_latest_retained() {
    // Given a connected publisher and a subscriber on the live topics.
    let broker = support::broker();
    let early = Recorder::subscribe(broker.port, "pd/+/+/live").await;
    let harness = Harness::start(broker.port, "pd", |_| {}).await;
    support::wait_until(PATIENCE, "the publisher to connect", || harness.connected()).await;
    let live = |machine: &str, version: u64| live_message("pd", machine, version);

    // When two generations of live messages are sent.
    harness
        .live_tx
        .send_replace(vec![live("m1", 1), live("m2", 1)]);
    support::wait_until(PATIENCE, "generation 1 at the subscriber", || {
        early.messages().iter().any(|m| m.body["version"] == 1)
    })
    .await;
    harness
        .live_tx
        .send_replace(vec![live("m1", 2), live("m2", 2)]);
    let latest = |recorder: &Recorder, retained_only: bool| -> BTreeMap<String, Value> {
        recorder
            .messages()
            .into_iter()
            .filter(|m| m.retained || !retained_only)
            .map(|m| (m.topic, m.body["version"].clone()))
            .collect()
    };
    support::wait_until(PATIENCE, "generation 2 at the subscriber", || {
        latest(&early, false).values().filter(|v| **v == 2).count() == 2
    })
    .await;

    // Then a later subscriber gets exactly the latest message of each machine, retained.
    let late = Recorder::subscribe(broker.port, "pd/+/+/live").await;
    support::wait_until(PATIENCE, "both retained live messages", || {
        latest(&late, true).len() == 2
    })
    .await;
    let expected: BTreeMap<String, Value> = [
        ("pd/line-a/m1/live".to_string(), json!(2)),
        ("pd/line-a/m2/live".to_string(), json!(2)),
    ]
    .into();
    assert_eq!(latest(&late, true), expected);
    assert!(harness.stats.live_published.load(Ordering::Relaxed) >= 4);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_unchanged_live_message_when_the_next_generation_comes_then_only_the_changed_one_is_sent(
) {
    // Given a connected publisher that has delivered one generation of two machines' live messages.
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "pu/+/+/live").await;
    let harness = Harness::start(broker.port, "pu", |_| {}).await;
    support::wait_until(PATIENCE, "the publisher to connect", || harness.connected()).await;
    let live = |machine: &str, version: u64| live_message("pu", machine, version);
    harness
        .live_tx
        .send_replace(vec![live("m1", 1), live("m2", 1)]);
    support::wait_until(PATIENCE, "generation 1 of both machines", || {
        recorder.messages().len() == 2
    })
    .await;

    // When the next generation repeats m1's payload byte for byte and changes m2's.
    harness
        .live_tx
        .send_replace(vec![live("m1", 1), live("m2", 2)]);
    support::wait_until(PATIENCE, "m2's generation 2", || {
        recorder.messages().iter().any(|m| m.body["version"] == 2)
    })
    .await;

    // Then m1 was not sent again (it would have arrived before m2's, in order on one connection).
    let m1: Vec<Value> = recorder
        .messages()
        .into_iter()
        .filter(|m| m.topic == "pu/line-a/m1/live")
        .map(|m| m.body["version"].clone())
        .collect();
    assert_eq!(m1, vec![json!(1)]);
    harness.stop().await;
}

/// Generation `version` of `machine`'s live message under `prefix` (line `line-a`).
fn live_message(prefix: &str, machine: &str, version: u64) -> LiveMessage {
    LiveMessage {
        topic: format!("{prefix}/line-a/{machine}/live"),
        payload: json!({"machine": machine, "version": version})
            .to_string()
            .into_bytes()
            .into(),
    }
}
