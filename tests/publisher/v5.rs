//! MQTT 5 against Mosquitto: rows are delivered and retired as with 3.1.1, and a PUBACK with a failure reason
//! code (Mosquitto answers an ACL-denied QoS 1 PUBLISH with 0x87 "not authorized") does not retire the row:
//! it stays in the outbox, is retried with backoff rather than in a tight loop, and raises a
//! `publish_failure` event on the gateway event topic, while other rows keep flowing on the same connection.

use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use shopfloor_agent::broker::MosquittoSettings;
use shopfloor_agent::config::MqttProtocol;

use super::{has_all, seqs_received, Harness, PATIENCE};
use crate::support::{self, Recorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_mqtt5_when_rows_are_committed_then_each_is_delivered_and_retired() {
    // Given Mosquitto and a publisher speaking MQTT 5.
    let Some(broker) = support::mosquitto(&MosquittoSettings::default()) else {
        return;
    };
    let recorder = Recorder::subscribe(broker.port, "p5/#").await;
    let harness = Harness::start(broker.port, "p5", |cfg| cfg.protocol = MqttProtocol::V5).await;

    // When rows are committed before and after it connects.
    let mut seqs = harness.enqueue(20).await;
    support::wait_until(PATIENCE, "the publisher to connect", || harness.connected()).await;
    seqs.extend(harness.enqueue(20).await);

    // Then every row arrives once per send and the outbox empties.
    support::wait_until(PATIENCE, "all 40 rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &seqs)
    })
    .await;
    harness.wait_for_retired(40).await;
    assert_eq!(harness.stats.refused.load(Ordering::Relaxed), 0);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_mqtt5_refusals_when_the_broker_denies_a_topic_then_rows_stay_are_retried_with_backoff_and_an_alarm_is_raised(
) {
    // Given Mosquitto with an ACL that lets us write pv/ok/# and the gateway topics but not pv/deny/#.
    let acl = "topic read pv/#\ntopic write pv/ok/#\ntopic write pv/_gateway/#\n\
               topic write pv/s/_gateway/#\n";
    let settings = MosquittoSettings {
        acl: Some(acl.to_string()),
        ..MosquittoSettings::default()
    };
    let Some(broker) = support::mosquitto(&settings) else {
        return;
    };
    let recorder = Recorder::subscribe(broker.port, "pv/#").await;
    let harness = Harness::start(broker.port, "pv", |cfg| cfg.protocol = MqttProtocol::V5).await;

    // When three denied rows sit between allowed ones.
    let mut allowed = harness
        .enqueue_bodies("pv/ok/m1/rollup/1m", vec![json!({"n": 1}), json!({"n": 2})])
        .await;
    let denied = harness
        .enqueue_bodies(
            "pv/deny/m1/rollup/1m",
            (0..3).map(|n| json!({"denied": n})).collect(),
        )
        .await;
    allowed.extend(
        harness
            .enqueue_bodies("pv/ok/m1/rollup/1m", vec![json!({"n": 3}), json!({"n": 4})])
            .await,
    );

    // Then the allowed rows arrive, a publish_failure alarm names the reason code,
    support::wait_until(PATIENCE, "the allowed rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &allowed)
    })
    .await;
    let alarm_topic = "pv/s/_gateway/gw-test/event";
    support::wait_until(PATIENCE, "the publish_failure alarm", || {
        !recorder.messages_matching(alarm_topic).is_empty()
    })
    .await;
    let (_, alarm) = recorder.messages_matching(alarm_topic).remove(0);
    support::assert_valid(&support::schema("event"), &alarm);
    assert_eq!(alarm["kind"], "publish_failure");
    assert_eq!(alarm["detail"]["reason_code"], 0x87);
    assert_eq!(alarm["detail"]["reason"], "not_authorized");

    // and the denied rows are retried (refused again), but with backoff, not in a tight loop,
    support::wait_until(PATIENCE, "the denied rows refused again", || {
        harness.stats.refused.load(Ordering::Relaxed) >= 9
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stats = harness.stats.snapshot();
    eprintln!("refusals: {stats:?}");
    assert!(
        stats.refused <= 90,
        "a retry loop: {} refusals",
        stats.refused
    );
    // while they stay in the outbox, never reach subscribers, and cost no reconnect.
    assert_eq!(harness.backlog_rows().await, 3);
    let received = seqs_received(&recorder, &harness.db_epoch);
    assert!(denied.iter().all(|seq| !received.contains_key(seq)));
    assert_eq!(stats.reconnects, 0, "{:?}", stats.last_error);
    assert_eq!(stats.acked, 4 + stats.alarms);
    harness.stop().await;
}
