//! What the broker does not take must not be retired. Mosquitto with an ACL that denies the agent's topics
//! acknowledges an MQTT 3.1.1 publish and drops it; the publisher must keep such rows (it retires a 3.1.1 row
//! only once the broker delivers it back to the publisher's own subscription) and say so loudly. The default
//! (MQTT 5) sees the refusal in the PUBACK. A broker that refuses MQTT 5 at CONNECT gets MQTT 3.1.1.

use std::sync::atomic::Ordering;

use serde_json::json;
use shopfloor_agent::broker::MosquittoSettings;
use shopfloor_agent::config::MqttProtocol;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{has_all, seqs_received, Harness, PATIENCE};
use crate::support::{self, Recorder};

/// Rows committed in each scenario; before read-back, MQTT 3.1.1 retired all of them although none arrived.
const ROWS: usize = 7;

fn acl(text: &str) -> MosquittoSettings {
    MosquittoSettings {
        acl: Some(text.to_string()),
        ..MosquittoSettings::default()
    }
}

async fn denied_rows_are_kept(protocol: Option<MqttProtocol>, prefix: &str) {
    // Given Mosquitto whose ACL lets anonymous clients read the prefix but write nothing under it.
    let denying = acl(&format!("topic read {prefix}/#\n"));
    let Some(mut broker) = support::mosquitto(&denying) else {
        return;
    };
    let recorder = Recorder::subscribe(broker.port, &format!("{prefix}/#")).await;
    let harness = Harness::start(broker.port, prefix, |cfg| {
        if let Some(protocol) = protocol {
            cfg.protocol = protocol;
        }
    })
    .await;

    // When rows are committed,
    let seqs = harness.enqueue(ROWS).await;

    // Then the broker does not take them, the publisher notices and raises the alarm,
    support::wait_until(PATIENCE, "every row counted as not taken", || {
        harness.stats.refused.load(Ordering::Relaxed) >= ROWS as u64
    })
    .await;
    support::wait_until(PATIENCE, "a publish_failure alarm", || {
        harness.stats.alarms.load(Ordering::Relaxed) >= 1
    })
    .await;
    let stats = harness.stats.snapshot();
    let kept = harness.backlog_rows().await;
    support::report(&format!(
        "ACL denies writes ({protocol:?}): {} of {ROWS} rows retired, {kept} rows kept (incl. {} alarm rows), \
         {} refusals",
        stats.acked, stats.alarms, stats.refused
    ));
    // and none of them is retired: all stay in the outbox (with the alarm rows, denied as well).
    assert_eq!(stats.acked, 0, "{stats:?}");
    assert_eq!(kept, ROWS as u64 + stats.alarms, "{stats:?}");
    assert!(!has_all(&recorder, &harness.db_epoch, &seqs[..1]));

    // When the ACL is corrected and the broker restarted,
    let allowing = acl(&format!("topic readwrite {prefix}/#\n"));
    broker.restart_with(&allowing).expect("mosquitto restarts");
    let recorder = Recorder::subscribe(broker.port, &format!("{prefix}/#")).await;

    // Then every row is delivered and retired.
    support::wait_until(PATIENCE, "all rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &seqs)
    })
    .await;
    harness.wait_for_empty_outbox().await;
    assert_eq!(
        seqs_received(&recorder, &harness.db_epoch).len(),
        ROWS,
        "the rows, not the alarms (those go to the gateway event topic)"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_mqtt311_and_an_acl_denying_the_agents_topics_when_rows_are_published_then_none_is_retired_and_an_alarm_is_raised(
) {
    denied_rows_are_kept(Some(MqttProtocol::V4), "pq4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_default_protocol_and_an_acl_denying_the_agents_topics_when_rows_are_published_then_none_is_retired_and_an_alarm_is_raised(
) {
    denied_rows_are_kept(None, "pq5").await;
}

/// A broker front that does not speak MQTT 5: a CONNECT with protocol level 5 gets CONNACK 0x84 "unsupported
/// protocol version" and the connection is closed; any other connection is relayed to Mosquitto untouched.
pub(crate) async fn v4_only_front(upstream: u16) -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("address").port();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(front_one(client, upstream));
        }
    });
    (port, task)
}

async fn front_one(mut client: TcpStream, upstream: u16) {
    // CONNECT: fixed header, remaining length (1-4 bytes), "\0\x04MQTT", protocol level.
    let mut head = vec![0u8; 2];
    if client.read_exact(&mut head).await.is_err() {
        return;
    }
    while head.last().is_some_and(|byte| byte & 0x80 != 0) {
        let mut more = [0u8; 1];
        if client.read_exact(&mut more).await.is_err() {
            return;
        }
        head.push(more[0]);
    }
    let mut name_and_level = [0u8; 7];
    if client.read_exact(&mut name_and_level).await.is_err() {
        return;
    }
    head.extend_from_slice(&name_and_level);
    if name_and_level[6] == 5 {
        let _ = client.write_all(&[0x20, 0x03, 0x00, 0x84, 0x00]).await;
        return;
    }
    let Ok(mut broker) = TcpStream::connect(("127.0.0.1", upstream)).await else {
        return;
    };
    if broker.write_all(&head).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut broker).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_broker_refusing_mqtt5_at_connect_when_the_default_publisher_connects_then_it_falls_back_to_311_and_delivers(
) {
    // Given Mosquitto behind a front that refuses MQTT 5 CONNECTs.
    let Some(broker) = support::mosquitto(&MosquittoSettings::default()) else {
        return;
    };
    let recorder = Recorder::subscribe(broker.port, "pf/#").await;
    let (front, _front_task) = v4_only_front(broker.port).await;

    // When a publisher with the default protocol connects and rows are committed,
    let harness = Harness::start(front, "pf", |_| {}).await;
    let seqs = harness.enqueue(ROWS).await;

    // Then it speaks MQTT 3.1.1, says so, and delivers and retires every row.
    support::wait_until(PATIENCE, "all rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &seqs)
    })
    .await;
    harness.wait_for_retired(ROWS as u64).await;
    let stats = harness.stats.snapshot();
    support::report(&format!("v5 refused at CONNECT: {stats:?}"));
    assert_eq!(stats.protocol, Some(MqttProtocol::V4));
    assert!(stats.fallback);
    // A v5 refusal is not an outage: one refused attempt, then the 3.1.1 one that held.
    assert_eq!(stats.reconnects, 1, "{stats:?}");
    let more = harness
        .enqueue_bodies("pf/line-a/m1/rollup/1m", vec![json!({"later": 1})])
        .await;
    support::wait_until(PATIENCE, "the later row", || {
        has_all(&recorder, &harness.db_epoch, &more)
    })
    .await;
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_v4_configured_when_the_broker_speaks_v5_then_it_stays_on_311_without_fallback() {
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "pg/#").await;
    let harness = Harness::start(broker.port, "pg", |cfg| cfg.protocol = MqttProtocol::V4).await;
    let seqs = harness.enqueue(ROWS).await;
    support::wait_until(PATIENCE, "all rows at the subscriber", || {
        has_all(&recorder, &harness.db_epoch, &seqs)
    })
    .await;
    harness.wait_for_retired(ROWS as u64).await;
    let stats = harness.stats.snapshot();
    assert_eq!(stats.protocol, Some(MqttProtocol::V4));
    assert!(!stats.fallback);
    assert_eq!(stats.refused, 0, "{stats:?}");
    harness.stop().await;
}
