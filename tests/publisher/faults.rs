//! Publisher under faults the broker or the network cause: a link that stalls mid-flush (only the watchdog
//! can notice), rows larger than the broker accepts, and an outage after which live data and new rows must go
//! before the paced, `replayed`-marked backlog.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use shopfloor_agent::broker::MosquittoSettings;
use shopfloor_agent::config::MqttProtocol;
use shopfloor_agent::publisher::LiveMessage;

use super::{has_all, seqs_received, Harness, PATIENCE};
use crate::support::{self, FaultProxy, Mode, Recorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_link_that_blackholes_mid_flush_when_nothing_progresses_then_the_watchdog_rebuilds_it_and_all_rows_arrive(
) {
    // Given an MQTT 5 publisher (whose rumqttc event loop has no write or flush timeout of its own) with a
    // 5 s keep-alive and a 1 s connect timeout (watchdog limit 11 s), connected through the fault proxy.
    let Some(broker) = support::mosquitto(&MosquittoSettings::default()) else {
        return;
    };
    let recorder = Recorder::subscribe(broker.port, "pw2/#").await;
    let proxy = FaultProxy::start(0, broker.port).await;
    let harness = Harness::start(proxy.port, "pw2", |cfg| {
        cfg.protocol = MqttProtocol::V5;
        cfg.keep_alive = Duration::from_secs(5);
        cfg.connect_timeout = Duration::from_secs(1);
        cfg.max_packet_size = 2 * 1024 * 1024;
        cfg.max_inflight = 64;
    })
    .await;
    support::wait_until(PATIENCE, "the publisher to connect", || harness.connected()).await;

    // When the link turns into a black hole and 10 MB of rows are published into it (the send buffers fill,
    // so rumqttc blocks writing and its own keep-alive can no longer fire).
    proxy.set_mode(Mode::Blackhole);
    let topic = "pw2/line-a/m1/rollup/1m";
    let bodies = (0..40)
        .map(|n| json!({"n": n, "pad": "x".repeat(250_000)}))
        .collect();
    let seqs = harness.enqueue_bodies(topic, bodies).await;

    // Then the watchdog rebuilds the connection,
    support::wait_until(PATIENCE, "a watchdog trip", || {
        harness.stats.watchdog_trips.load(Ordering::Relaxed) >= 1
    })
    .await;
    // and once the link passes again every row arrives and is retired.
    proxy.set_mode(Mode::Pass);
    support::wait_until(PATIENCE, "all 40 rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &seqs)
    })
    .await;
    harness.wait_for_empty_outbox().await;
    let stats = harness.stats.snapshot();
    eprintln!("watchdog scenario: {stats:?}");
    assert!(stats.reconnects >= 1);
    harness.stop().await;
}

async fn oversized_row_is_skipped(protocol: MqttProtocol, configured_max: u64, prefix: &str) {
    // Given Mosquitto limited to 4 KiB packets, and a publisher that knows the limit (MQTT 3.1.1: from its
    // configuration; MQTT 5: from the broker's CONNACK, even when configured larger).
    let settings = MosquittoSettings {
        max_packet_size: Some(4096),
        ..MosquittoSettings::default()
    };
    let Some(broker) = support::mosquitto(&settings) else {
        return;
    };
    let recorder = Recorder::subscribe(broker.port, &format!("{prefix}/#")).await;
    let harness = Harness::start(broker.port, prefix, |cfg| {
        cfg.protocol = protocol;
        cfg.max_packet_size = configured_max;
    })
    .await;

    // When a row of 8 KiB sits in the outbox between small ones.
    let topic = format!("{prefix}/line-a/m1/rollup/1m");
    let mut small = harness.enqueue(5).await;
    let big = harness
        .enqueue_bodies(&topic, vec![json!({"pad": "y".repeat(8 * 1024)})])
        .await;
    small.extend(harness.enqueue(5).await);

    // Then the small rows are delivered and retired, the big one stays in the outbox unsent,
    support::wait_until(PATIENCE, "the 10 small rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &small)
    })
    .await;
    support::wait_until_async(PATIENCE, "only the big row left", || async {
        harness.backlog_rows().await == 1
    })
    .await;
    // and more rows keep flowing on the same connection: no reconnect, the big row counted once.
    let later = harness.enqueue(3).await;
    support::wait_until(PATIENCE, "3 later rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &later)
    })
    .await;
    support::wait_until_async(
        PATIENCE,
        "the later rows retired, the big row kept",
        || async { harness.backlog_rows().await == 1 },
    )
    .await;
    let stats = harness.stats.snapshot();
    eprintln!("oversized row ({protocol:?}): {stats:?}");
    assert_eq!(stats.unsendable, 1);
    assert_eq!(stats.reconnects, 0, "{:?}", stats.last_error);
    assert!(!seqs_received(&recorder, &harness.db_epoch).contains_key(&big[0]));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_row_larger_than_the_configured_packet_limit_when_published_then_it_is_skipped_without_reconnects(
) {
    oversized_row_is_skipped(MqttProtocol::V4, 4096, "px4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_mqtt5_broker_announcing_a_smaller_packet_limit_when_a_row_exceeds_it_then_it_is_skipped_without_reconnects(
) {
    oversized_row_is_skipped(MqttProtocol::V5, 1024 * 1024, "px5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_an_outage_when_the_broker_returns_then_live_and_new_rows_overtake_the_paced_replayed_backlog(
) {
    // Given a publisher with a drain rate of 20 rows/s that loses its broker.
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "pl/#").await;
    let proxy = FaultProxy::start(0, broker.port).await;
    let harness = Harness::start(proxy.port, "pl", |cfg| cfg.drain_rate = Some(20)).await;
    support::wait_until(PATIENCE, "the publisher to connect", || harness.connected()).await;
    proxy.set_mode(Mode::Refuse);
    support::wait_until(PATIENCE, "the connection to drop", || !harness.connected()).await;

    // When 60 rows and a live update pile up during the outage,
    let backlog = harness.enqueue(60).await;
    harness.live_tx.send_replace(vec![LiveMessage {
        topic: "pl/line-a/m1/live".into(),
        payload: json!({"live": true}).to_string().into_bytes().into(),
    }]);
    let failed = harness.stats.reconnects.load(Ordering::Relaxed);
    support::wait_until(PATIENCE, "two more failed attempts", || {
        harness.stats.reconnects.load(Ordering::Relaxed) >= failed + 2
    })
    .await;
    // and new rows are committed right after the broker is reachable again.
    proxy.set_mode(Mode::Pass);
    support::wait_until(PATIENCE, "the publisher to reconnect", || {
        harness.connected()
    })
    .await;
    let fresh = harness
        .enqueue_bodies(
            "pl/line-a/m1/rollup/fresh",
            (0..5).map(|n| json!({"fresh": n})).collect(),
        )
        .await;

    // Then everything arrives and is retired,
    let mut all = backlog.clone();
    all.extend(&fresh);
    support::wait_until(PATIENCE, "all 65 rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &all)
    })
    .await;
    harness.wait_for_empty_outbox().await;
    let messages = recorder.messages();
    let arrival = |seq: i64| {
        messages
            .iter()
            .position(|m| m.body["seq"] == seq && m.body["db_epoch"] == harness.db_epoch)
            .expect("received")
    };
    // backlog rows carry "replayed": true and new rows do not,
    for seq in &backlog {
        assert_eq!(messages[arrival(*seq)].body["replayed"], true, "seq {seq}");
    }
    for seq in &fresh {
        assert!(
            messages[arrival(*seq)].body.get("replayed").is_none(),
            "seq {seq}"
        );
    }
    // the live update and every new row arrive before the backlog has drained,
    let last_backlog = backlog.iter().map(|seq| arrival(*seq)).max().expect("rows");
    let live = messages
        .iter()
        .position(|m| m.topic == "pl/line-a/m1/live" && !m.retained)
        .expect("the live update arrived");
    assert!(
        live < last_backlog,
        "live at {live}, backlog done at {last_backlog}"
    );
    for seq in &fresh {
        assert!(
            arrival(*seq) < last_backlog,
            "fresh seq {seq} waited for the backlog"
        );
    }
    // the backlog keeps seq order, and it drained no faster than about 20 rows/s (a generous lower bound:
    // half of 60 rows / 20 per s).
    let order: Vec<usize> = backlog.iter().map(|seq| arrival(*seq)).collect();
    assert!(order.windows(2).all(|pair| pair[0] < pair[1]), "{order:?}");
    let first_at = messages[order[0]].arrived;
    let drained_in = messages[last_backlog].arrived - first_at;
    eprintln!("backlog of 60 drained in {drained_in:?} at drain_rate 20");
    assert!(drained_in >= Duration::from_millis(1500), "{drained_in:?}");
    assert!(harness.stats.replayed.load(Ordering::Relaxed) >= 60);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_connections_reset_by_the_network_when_rows_keep_coming_then_every_row_arrives_once_it_passes(
) {
    // Given a connected publisher behind the fault proxy.
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "pr/#").await;
    let proxy = FaultProxy::start(0, broker.port).await;
    let harness = Harness::start(proxy.port, "pr", |_| {}).await;
    support::wait_until(PATIENCE, "the publisher to connect", || harness.connected()).await;

    // When the network resets the connection and every new one for a while, as rows are committed,
    proxy.set_mode(Mode::Reset);
    let mut seqs = harness.enqueue(10).await;
    let failed = harness.stats.reconnects.load(Ordering::Relaxed);
    support::wait_until(PATIENCE, "two reset connection attempts", || {
        harness.stats.reconnects.load(Ordering::Relaxed) >= failed + 2
    })
    .await;
    seqs.extend(harness.enqueue(10).await);
    proxy.set_mode(Mode::Pass);

    // Then all rows arrive and are retired.
    support::wait_until(PATIENCE, "all 20 rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &seqs)
    })
    .await;
    harness.wait_for_empty_outbox().await;
    harness.stop().await;
}
