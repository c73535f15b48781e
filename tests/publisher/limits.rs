//! Packet limits that refuse rows must neither flood the log nor loop: with a limit below every rollup, each
//! unsendable row is counted but log lines are summarised; with MQTT 3.1.1 and a broker whose packet limit
//! (which 3.1.1 cannot announce) is below a row, the broker's disconnects are named and the row stops being
//! resent after the second one. These tests run on a current-thread runtime so that a thread-local tracing
//! subscriber sees every line the publisher logs.

use serde_json::json;
use shopfloor_agent::broker::MosquittoSettings;
use shopfloor_agent::config::MqttProtocol;

use super::{has_all, seqs_received, Captured, Harness, PATIENCE};
use crate::support::{self, Recorder};

#[tokio::test(flavor = "current_thread")]
async fn given_a_packet_limit_below_every_row_when_hundreds_are_committed_then_each_is_counted_but_the_log_stays_short(
) {
    // Given a publisher whose packet limit (1 KiB) is below every row it will be asked to send.
    let log = Captured::default();
    let _guard = log.install();
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "pk/#").await;
    let harness = Harness::start(broker.port, "pk", |cfg| cfg.max_packet_size = 1024).await;
    support::wait_until(PATIENCE, "the publisher to connect", || harness.connected()).await;

    // When 300 rows of 2 KiB and one small row are committed,
    let topic = "pk/line-a/m1/rollup/1m";
    let bodies = (0..300)
        .map(|n| json!({"n": n, "pad": "z".repeat(2048)}))
        .collect();
    harness.enqueue_bodies(topic, bodies).await;
    let small = harness.enqueue(1).await;

    // Then each big row is counted once as unsendable, the small one arrives,
    support::wait_until(PATIENCE, "the small row at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &small)
    })
    .await;
    support::wait_until(PATIENCE, "300 unsendable rows counted", || {
        harness.stats.snapshot().unsendable == 300
    })
    .await;
    // and the log holds a handful of lines, not one per row.
    let lines = log.lines();
    let about_rows: Vec<&String> = lines
        .iter()
        .filter(|line| line.contains("never be published"))
        .collect();
    support::report(&format!(
        "1 KiB packet limit, 300 oversized rows: {} unsendable-row log lines, {} WARN+ lines in all",
        about_rows.len(),
        lines.len()
    ));
    assert!(about_rows.len() <= 2, "{about_rows:#?}");
    assert!(lines.len() < 10, "{lines:#?}");
    assert_eq!(harness.stats.snapshot().reconnects, 0);
    harness.stop().await;
}

#[tokio::test(flavor = "current_thread")]
async fn given_mqtt311_and_a_broker_packet_limit_below_a_row_when_it_is_sent_then_the_cause_is_named_and_it_stops_being_resent(
) {
    // Given Mosquitto that accepts packets up to 4 KiB, and an MQTT 3.1.1 publisher that cannot learn that
    // limit (3.1.1 has no CONNACK properties) and believes the default 256 KiB.
    let log = Captured::default();
    let _guard = log.install();
    let settings = MosquittoSettings {
        max_packet_size: Some(4096),
        ..MosquittoSettings::default()
    };
    let Some(broker) = support::mosquitto(&settings) else {
        return;
    };
    let recorder = Recorder::subscribe(broker.port, "pm/#").await;
    let harness = Harness::start(broker.port, "pm", |cfg| cfg.protocol = MqttProtocol::V4).await;
    support::wait_until(PATIENCE, "the publisher to connect", || harness.connected()).await;

    // When an 8 KiB row sits between small ones,
    let topic = "pm/line-a/m1/rollup/1m";
    let mut small = harness.enqueue(3).await;
    let big = harness
        .enqueue_bodies(topic, vec![json!({"pad": "y".repeat(8 * 1024)})])
        .await;
    small.extend(harness.enqueue(3).await);

    // Then the small rows arrive, the big one is given up as unsendable (kept in the outbox, not resent),
    support::wait_until(PATIENCE, "the small rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &small)
    })
    .await;
    support::wait_until(PATIENCE, "the big row given up", || {
        harness.stats.snapshot().unsendable == 1
    })
    .await;
    support::wait_until_async(PATIENCE, "only the big row left", || async {
        harness.backlog_rows().await == 1
    })
    .await;
    let later = harness.enqueue(2).await;
    support::wait_until(PATIENCE, "later rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &later)
    })
    .await;
    let stats = harness.stats.snapshot();
    let lines = log.lines();
    let named = lines
        .iter()
        .filter(|line| line.contains("connection lost") && line.contains("closed the connection"))
        .filter(|line| line.contains(topic))
        .count();
    support::report(&format!(
        "MQTT 3.1.1, broker limit 4 KiB, one 8 KiB row: {} reconnects, {} log lines naming the cause, {} \
         WARN+ lines",
        stats.reconnects,
        named,
        lines.len()
    ));
    // with the cause named in the log, after exactly two disconnects, and no more reconnects since.
    assert_eq!(stats.reconnects, 2, "{stats:?}\n{lines:#?}");
    assert_eq!(named, 2, "{lines:#?}");
    assert!(!seqs_received(&recorder, &harness.db_epoch).contains_key(&big[0]));
    harness.stop().await;
}
