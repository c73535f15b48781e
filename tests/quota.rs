//! The store's byte quota under a long broker outage, with the real agent: when the database is full the
//! lowest-value unsent rollups are dropped and every drop is announced as a `gap` event carrying the counts
//! it removed. The oracle: final rollups received + counts announced as dropped = the simulator's truth.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use crate::support::agent::{
    final_rollups, freeze_before_boundary, start_producing, sum_of, wait_for_last_windows, Plant,
    Tuning, PERIODS,
};
use crate::support::{self, FaultProxy, Mode, Recorder};

/// Counts announced as dropped, per rollup topic, from the `gap` events with reason `store_quota`.
fn dropped_counts(recorder: &Recorder) -> BTreeMap<String, (u64, u64, u64)> {
    let mut dropped: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
    let mut seen = std::collections::BTreeSet::new();
    for (_, body) in recorder.messages_matching("/event") {
        let detail: &Value = &body["detail"];
        if body["kind"] != "gap" || detail["reason"] != "store_quota" {
            continue;
        }
        if !seen.insert(body["msg_id"].as_str().unwrap_or_default().to_string()) {
            continue; // a duplicate delivery of the same event
        }
        let entry = dropped
            .entry(detail["topic"].as_str().unwrap_or_default().to_string())
            .or_default();
        entry.0 += detail["produced"].as_u64().unwrap_or(0);
        entry.1 += detail["defective"].as_u64().unwrap_or(0);
        entry.2 += detail["rows"].as_u64().unwrap_or(0);
    }
    dropped
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_tiny_quota_and_a_long_outage_when_the_store_fills_then_drops_are_announced_with_their_counts(
) {
    // Given an agent with a 192 KiB store publishing through a fault proxy, machines producing.
    let started = std::time::Instant::now();
    let phase = |name: &str| {
        crate::support::report(&format!(
            "quota: {name} after {:.1} s",
            started.elapsed().as_secs_f64()
        ));
    };
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, "shopfloor/v1/#").await;
    let proxy = FaultProxy::start(0, broker.port).await;
    let plant = Plant::start(303).await;
    let dir = tempfile::tempdir().unwrap();
    let tuning = Tuning {
        live_interval: "1s",
        // A short reconnect cap: the agent is back on the broker within a second of its return.
        mqtt: "connect_timeout = \"2s\"\nreconnect_max = \"1s\"",
        agent: "restatement_horizon = \"15s\"",
        // Not the 128 KiB minimum: there, new rollups are dropped during the reconnect wait, before the last
        // windows can be delivered, so the last-windows wait below can never end.
        store: "max_bytes = \"192KiB\"",
    };
    proxy.set_mode(Mode::Refuse);
    let (agent, before) = start_producing(&plant, proxy.port, &tuning, dir.path()).await;

    // When the broker stays unreachable until the store has had to drop rows,
    support::wait_until_async(
        Duration::from_secs(120),
        "the store to drop rows",
        || async { agent.dropped_rows().await > 0 },
    )
    .await;
    phase("first drop");
    let frozen_at = freeze_before_boundary(&plant, Duration::from_secs(1)).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    proxy.set_mode(Mode::Pass);

    // Then, once everything left has been delivered, received + announced-dropped counts = truth.
    // The publisher's reconnect delay grew during the outage (up to `reconnect_max`): wait for the reconnect
    // here, generously, so the waits below cover delivery alone.
    support::wait_until(
        Duration::from_secs(120),
        "the publisher to reconnect",
        || agent.stats().connected,
    )
    .await;
    phase("reconnected");
    wait_for_last_windows(&plant, &recorder, frozen_at).await;
    phase("last windows received");
    support::wait_until_async(Duration::from_secs(120), "the backlog to drain", || async {
        agent.backlog().await.rows == 0
    })
    .await;
    phase("backlog drained");
    // A commit after the drain can still drop a row; its gap event follows in the next cycle. Wait until the
    // announcements have caught up with the store's drop counter (a lost announcement fails here, named).
    support::wait_until_async(
        Duration::from_secs(30),
        "every dropped row announced by a received gap event",
        || async {
            let announced: u64 = dropped_counts(&recorder).values().map(|d| d.2).sum();
            announced == agent.dropped_rows().await
        },
    )
    .await;
    phase("drops announced");
    let after = plant.truth();
    let dropped_rows = agent.dropped_rows().await;
    agent.stop().await;
    let dropped = dropped_counts(&recorder);
    let announced_rows: u64 = dropped.values().map(|d| d.2).sum();
    crate::support::report(&format!(
        "quota: store dropped {dropped_rows} rows; gap events announce {announced_rows}"
    ));
    assert!(announced_rows > 0, "the scenario must exercise drops");
    let mut announced_rollup_rows = 0;
    for (index, machine) in plant.machines().into_iter().enumerate() {
        let produced = after[index].produced - before[index].produced;
        let defective = after[index].defective - before[index].defective;
        for period in PERIODS {
            let windows = final_rollups(&recorder, machine, period);
            let topic = dropped
                .iter()
                .find(|(t, _)| t.ends_with(&format!("/{machine}/rollup/{period}")))
                .map(|(_, d)| *d)
                .unwrap_or_default();
            announced_rollup_rows += topic.2;
            let received = (sum_of(&windows, "produced"), sum_of(&windows, "defective"));
            let restated = windows
                .values()
                .filter(|window| window["revision"].as_u64().unwrap_or(0) > 0)
                .count();
            crate::support::report(&format!(
                "quota: {machine} {period}: truth {produced}/{defective}, received {}/{} ({restated} restated), \
                 dropped {}/{} in {} rows",
                received.0, received.1, topic.0, topic.1, topic.2
            ));
            assert_eq!(
                (received.0 + topic.0, received.1 + topic.1),
                (produced, defective),
                "{machine} {period}: received + announced drops vs truth"
            );
        }
    }
    assert!(
        announced_rollup_rows > 0,
        "rollups were dropped and announced"
    );
    plant.shutdown().await;
}
