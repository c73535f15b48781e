//! Fault scenarios on the MQTT path against the real agent: simulated PLCs keep producing while the broker
//! is unreachable, killed and restarted, half-open, behind a slow link, or refusing MQTT 5 at CONNECT (the
//! agent falls back to MQTT 3.1.1 and says so on the health topic). The oracle of every scenario (see
//! `support::agent::settle_and_check`): the de-duplicated final rollups sum exactly to the simulator's truth,
//! every enqueued seq reaches the subscriber (duplicates allowed and counted), and the store passes
//! `integrity_check` after the agent stopped. Each scenario prints its counting report. The agent's memory
//! during a long outage is measured on the agent binary as a child process, since the test process is shared
//! with tests running in parallel.

use std::time::Duration;

use shopfloor_agent::broker::MosquittoSettings;

use crate::support::agent::{
    freeze_before_boundary, settle_and_check, start_producing, Agent, Plant, Tuning,
};
use crate::support::child::ChildAgent;
use crate::support::{self, CountingReport, FaultProxy, Mode, Recorder};

/// Overall safety net of every wait; never an expectation about speed.
const PATIENCE: Duration = Duration::from_secs(60);
/// Subscription of the recording subscriber: everything the agent publishes.
const ALL_TOPICS: &str = "shopfloor/v1/#";

async fn wait_connected(agent: &Agent) {
    support::wait_until(PATIENCE, "the agent to connect to the broker", || {
        agent.stats().connected
    })
    .await;
}

/// Waits until the subscriber holds every row the agent has retired (so killing the broker cannot take a
/// retired row with it: the broker has nothing left that only it knows).
async fn wait_until_subscriber_caught_up(agent: &Agent, recorder: &Recorder) {
    support::wait_until_async(
        PATIENCE,
        "the subscriber to hold every retired row",
        || async {
            let enqueued = agent.enqueued().await;
            CountingReport::count(&recorder.messages(), &enqueued)
                .0
                .missing
                == 0
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_broker_unreachable_for_a_long_stretch_while_production_continues_when_it_returns_then_every_window_arrives(
) {
    // Given the agent publishing through a fault proxy while three machines produce.
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, ALL_TOPICS).await;
    let proxy = FaultProxy::start(0, broker.port).await;
    let plant = Plant::start(101).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tuning = Tuning {
        live_interval: "1s",
        mqtt: "drain_rate = 50\nconnect_timeout = \"2s\"",
        agent: "",
        store: "",
    };
    let (agent, before) = start_producing(&plant, proxy.port, &tuning, dir.path()).await;
    wait_connected(&agent).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // When the broker is unreachable for 10 s (compressed time: 2 s and 10 s windows keep closing),
    proxy.set_mode(Mode::Refuse);
    let backlog_start = agent.backlog().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let backlog_end = agent.backlog().await;
    let line = format!(
        "long outage: backlog {} rows / {} bytes -> {} rows / {} bytes on disk",
        backlog_start.rows, backlog_start.bytes, backlog_end.rows, backlog_end.bytes,
    );
    crate::support::report(&line);
    // the backlog grows on disk (the agent's memory during an outage is measured on the binary, below),
    assert!(backlog_end.rows > backlog_start.rows + 10, "{line}");
    assert!(!agent.stats().connected);

    // Then after the broker returns, everything arrives: the backlog replayed, the totals exact.
    proxy.set_mode(Mode::Pass);
    wait_connected(&agent).await;
    let frozen_at = freeze_before_boundary(&plant, Duration::from_secs(2)).await;
    let (report, stats) =
        settle_and_check("long outage", &plant, agent, &recorder, &before, frozen_at).await;
    assert!(stats.replayed >= backlog_end.rows, "{stats:?}");
    assert!(report.expected > 0);
    plant.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_full_in_flight_window_when_mosquitto_is_killed_and_restarted_on_its_port_then_nothing_is_lost(
) {
    // Given Mosquitto, and the agent with an in-flight window of 4 publishing through the fault proxy (live
    // updates every 5 s, so rows rather than live messages fill the window).
    let Some(mut broker) = support::mosquitto(&MosquittoSettings::default()) else {
        return;
    };
    let recorder = Recorder::subscribe(broker.port, ALL_TOPICS).await;
    let proxy = FaultProxy::start(0, broker.port).await;
    let plant = Plant::start(202).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tuning = Tuning {
        live_interval: "5s",
        mqtt: "max_inflight = 4\ndrain_rate = 50\nconnect_timeout = \"2s\"",
        agent: "",
        store: "",
    };
    let (agent, before) = start_producing(&plant, proxy.port, &tuning, dir.path()).await;
    wait_connected(&agent).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // When PUBACKs stop coming back until the window is full (the broker has those rows, we do not know it),
    proxy.swallow_replies(true);
    let acked = agent.stats().acked;
    support::wait_until(PATIENCE, "a full in-flight window holding rows", || {
        let stats = agent.stats();
        stats.in_flight >= 4 && stats.published > acked
    })
    .await;
    let line = format!("window full when Mosquitto was killed: {:?}", agent.stats());
    crate::support::report(&line);
    wait_until_subscriber_caught_up(&agent, &recorder).await;
    support::wait_until_async(
        PATIENCE,
        "an unacknowledged row at the subscriber",
        || async {
            let enqueued = agent.enqueued().await;
            recorder.messages().iter().any(|message| {
                message.body["seq"].as_i64().is_some_and(|seq| {
                    enqueued
                        .epochs
                        .values()
                        .any(|(_, unsent)| unsent.contains(&seq))
                })
            })
        },
    )
    .await;
    // and Mosquitto is killed (SIGKILL) and started again on the same port a second later,
    proxy.set_mode(Mode::Refuse);
    broker.kill().expect("kill mosquitto");
    tokio::time::sleep(Duration::from_secs(1)).await;
    broker.restart().expect("restart mosquitto on its port");
    support::wait_until(PATIENCE, "the subscriber to subscribe again", || {
        recorder.subscriptions() >= 2
    })
    .await;
    proxy.swallow_replies(false);
    proxy.set_mode(Mode::Pass);

    // Then the agent reconnects, re-sends its window and everything after it; totals are exact.
    wait_connected(&agent).await;
    let frozen_at = freeze_before_boundary(&plant, Duration::from_secs(2)).await;
    let (report, stats) = settle_and_check(
        "mosquitto killed with a full window",
        &plant,
        agent,
        &recorder,
        &before,
        frozen_at,
    )
    .await;
    assert!(stats.reconnects >= 1, "{stats:?}");
    assert!(
        report.duplicates >= 1,
        "the rows of the killed window are re-sent: {report:?}"
    );
    plant.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_reconnect_max_1s_when_mosquitto_is_down_for_3_s_and_starts_again_then_the_agent_is_back_on_it(
) {
    // Given Mosquitto and the agent connected straight to it with `reconnect_max = "1s"`.
    let Some(mut broker) = support::mosquitto(&MosquittoSettings::default()) else {
        return;
    };
    let plant = Plant::start(404).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tuning = Tuning {
        live_interval: "1s",
        mqtt: "reconnect_max = \"1s\"\nconnect_timeout = \"2s\"",
        agent: "",
        store: "",
    };
    let agent = Agent::start(&plant, broker.port, &tuning, dir.path()).await;
    wait_connected(&agent).await;

    // When Mosquitto is killed, stays down for 3 s while the agent keeps trying, and starts again on its port,
    broker.kill().expect("kill mosquitto");
    support::wait_until(PATIENCE, "the agent to see the broker gone", || {
        !agent.stats().connected
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    broker.restart().expect("restart mosquitto on its port");
    let accepting = std::time::Instant::now();

    // Then the agent is back on it (CONNACK), after attempts that went on during the outage.
    wait_connected(&agent).await;
    crate::support::report(&format!(
        "reconnect: back on Mosquitto {:.2} s after it accepted connections again (3 s outage, reconnect_max 1 s)",
        accepting.elapsed().as_secs_f64()
    ));
    let stats = agent.stats();
    assert!(
        stats.reconnects >= 3,
        "the lost connection and at least two failed attempts during the outage: {stats:?}"
    );
    agent.stop().await;
    plant.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_half_open_connection_when_nothing_comes_back_then_the_agent_detects_it_reconnects_and_loses_nothing(
) {
    // Given the agent (keep-alive 5 s, connect timeout 2 s) connected through the fault proxy.
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, ALL_TOPICS).await;
    let proxy = FaultProxy::start(0, broker.port).await;
    let plant = Plant::start(303).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tuning = Tuning {
        live_interval: "1s",
        mqtt: "keep_alive = \"5s\"\nconnect_timeout = \"2s\"",
        agent: "",
        store: "",
    };
    let (agent, before) = start_producing(&plant, proxy.port, &tuning, dir.path()).await;
    wait_connected(&agent).await;
    tokio::time::sleep(Duration::from_secs(2)).await;

    // When the connection turns half-open: the proxy swallows everything on it and holds the sockets
    // (the proxy passes new connections again after 2 s, but this one stays dead, as after a NAT timeout),
    let reconnects = agent.stats().reconnects;
    proxy.set_mode(Mode::Blackhole);
    let started = std::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    proxy.set_mode(Mode::Pass);

    // Then keep-alive or the watchdog (2 × 5 s + 2 s) notices, the agent reconnects and loses nothing.
    support::wait_until(PATIENCE, "the dead connection to be noticed", || {
        agent.stats().reconnects > reconnects
    })
    .await;
    let line = format!(
        "half-open link noticed after {:?}: {}",
        started.elapsed(),
        agent.stats().last_error.unwrap_or_default()
    );
    crate::support::report(&line);
    wait_connected(&agent).await;
    let frozen_at = freeze_before_boundary(&plant, Duration::from_secs(1)).await;
    settle_and_check("half-open", &plant, agent, &recorder, &before, frozen_at).await;
    plant.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_slow_link_and_mqtt5_when_production_runs_then_everything_arrives_late_but_exact_and_the_watchdog_stays_quiet(
) {
    // Given Mosquitto and the agent speaking MQTT 5 through the fault proxy.
    let Some(broker) = support::mosquitto(&MosquittoSettings::default()) else {
        return;
    };
    let recorder = Recorder::subscribe(broker.port, ALL_TOPICS).await;
    let proxy = FaultProxy::start(0, broker.port).await;
    let plant = Plant::start(404).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tuning = Tuning {
        live_interval: "1s",
        mqtt: "protocol = \"v5\"\nconnect_timeout = \"2s\"",
        agent: "",
        store: "",
    };
    let (agent, before) = start_producing(&plant, proxy.port, &tuning, dir.path()).await;
    wait_connected(&agent).await;

    // When the link is throttled to 3 kB/s with 50 ms latency for 8 s of production,
    proxy.throttle(Some(3_000));
    proxy.delay(Duration::from_millis(50));
    tokio::time::sleep(Duration::from_secs(8)).await;
    let stalled = agent.backlog().await;
    proxy.throttle(None);
    proxy.delay(Duration::ZERO);
    let line = format!(
        "slow link: backlog {} rows / {} bytes when the throttle lifted",
        stalled.rows, stalled.bytes
    );
    crate::support::report(&line);
    assert!(
        stalled.rows > 0,
        "the link was not slow enough to build a backlog"
    );

    // Then everything arrives with exact totals, on the same connection: a slow link is not a dead one.
    let frozen_at = freeze_before_boundary(&plant, Duration::from_secs(1)).await;
    let (_, stats) = settle_and_check(
        "slow link (MQTT 5)",
        &plant,
        agent,
        &recorder,
        &before,
        frozen_at,
    )
    .await;
    assert_eq!(stats.watchdog_trips, 0, "{stats:?}");
    assert_eq!(stats.reconnects, 0, "{stats:?}");
    plant.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_a_broker_that_refuses_mqtt5_when_the_agent_runs_with_defaults_then_it_speaks_311_says_so_on_health_and_loses_nothing(
) {
    // Given Mosquitto behind a front that answers an MQTT 5 CONNECT with CONNACK 0x84 and relays MQTT 3.1.1.
    let Some(broker) = support::mosquitto(&MosquittoSettings::default()) else {
        return;
    };
    let recorder = Recorder::subscribe(broker.port, ALL_TOPICS).await;
    let (front, _front_task) = crate::publisher::acl::v4_only_front(broker.port).await;
    let plant = Plant::start(505).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tuning = Tuning {
        live_interval: "1s",
        mqtt: "connect_timeout = \"2s\"",
        agent: "",
        store: "",
    };

    // When the agent runs with the default protocol while machines produce,
    let (agent, before) = start_producing(&plant, front, &tuning, dir.path()).await;
    wait_connected(&agent).await;

    // Then the health topic says it fell back to MQTT 3.1.1,
    support::wait_until(PATIENCE, "a health message reporting the fallback", || {
        recorder
            .messages_matching("/health")
            .iter()
            .any(|(_, body)| {
                body["mqtt"] == serde_json::json!({"protocol": "v4", "fallback": true})
            })
    })
    .await;
    let (_, health) = recorder.messages_matching("/health").pop().expect("health");
    support::assert_valid(&support::schema("health"), &health);
    // and every window arrives with exact totals (3.1.1 rows retired only once read back).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let frozen_at = freeze_before_boundary(&plant, Duration::from_secs(1)).await;
    let (_, stats) = settle_and_check(
        "MQTT 5 refused, 3.1.1 fallback",
        &plant,
        agent,
        &recorder,
        &before,
        frozen_at,
    )
    .await;
    assert!(stats.fallback, "{stats:?}");
    assert_eq!(stats.refused, 0, "{stats:?}");
    plant.shutdown().await;
}

/// Rows in the outbox of the agent's database, through a short read-only connection; `None` until it exists.
fn outbox_rows(database: &std::path::Path) -> Option<u64> {
    let conn =
        rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    conn.query_row("SELECT count(*) FROM outbox", [], |row| {
        row.get::<_, i64>(0)
    })
    .ok()
    .map(|rows| rows.unsigned_abs())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_agent_binary_and_the_broker_unreachable_for_a_long_stretch_when_production_continues_then_its_memory_stays_flat_and_the_backlog_follows(
) {
    // Given the agent binary (its own process, so only its memory is measured) publishing through a fault
    // proxy while three machines produce.
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, ALL_TOPICS).await;
    let proxy = FaultProxy::start(0, broker.port).await;
    let plant = Plant::start(111).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tuning = Tuning {
        live_interval: "1s",
        mqtt: "drain_rate = 50\nconnect_timeout = \"2s\"",
        agent: "",
        store: "",
    };
    let data_dir = dir.path().join("data");
    let mut agent = ChildAgent::start(
        dir.path(),
        &plant.config_text(proxy.port, &tuning, &data_dir),
    );
    plant.set_producing(true);
    support::wait_until(PATIENCE, "rollups from the agent", || {
        recorder.messages_matching("/rollup/").len() >= 6
    })
    .await;

    // When the broker is unreachable for 15 s while production continues (2 s and 10 s windows keep closing),
    // its memory sampled every second from 2 s into the outage (the lost connection's buffers are gone by then),
    proxy.set_mode(Mode::Refuse);
    let database = data_dir.join(shopfloor_agent::store::DATABASE_FILE);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rows_start = outbox_rows(&database).expect("the outbox is readable");
    let rss_start = agent.rss_kib();
    let mut rss_peak = rss_start;
    for _ in 0..13 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        rss_peak = rss_peak.max(agent.rss_kib());
    }
    let rows_end = outbox_rows(&database).expect("the outbox is readable");
    let line = format!(
        "long outage (agent binary): outbox {rows_start} -> {rows_end} rows on disk; agent RSS {rss_start} KiB \
         -> peak {rss_peak} KiB"
    );
    support::report(&line);

    // Then the backlog grows on disk while the agent's memory stays flat (within a quarter plus 8 MiB),
    assert!(agent.running(), "the agent ended: {}", agent.log());
    assert!(rows_end > rows_start + 10, "{line}");
    assert!(rss_start > 0, "no VmRSS for the agent");
    assert!(rss_peak <= rss_start + rss_start / 4 + 8 * 1024, "{line}");
    // and once the broker returns, the backlog follows, marked replayed, and the agent stops cleanly.
    proxy.set_mode(Mode::Pass);
    support::wait_until(PATIENCE, "the replayed backlog at the subscriber", || {
        recorder
            .messages_matching("/rollup/")
            .iter()
            .any(|(_, body)| body["replayed"] == true)
    })
    .await;
    let status = agent.stop().await;
    plant.shutdown().await;
    assert!(status.success(), "exit status {status}");
}

/// db_epoch and the highest seq ever assigned in the agent's database, through a short read-only connection.
fn epoch_and_last_seq(database: &std::path::Path) -> Option<(String, i64)> {
    let conn =
        rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    let epoch = conn
        .query_row("SELECT value FROM meta WHERE key = 'db_epoch'", [], |row| {
            row.get::<_, String>(0)
        })
        .ok()?;
    let last_seq = conn
        .query_row(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0)",
            [],
            |row| row.get::<_, i64>(0),
        )
        .ok()?;
    Some((epoch, last_seq))
}

// The filesystem is 16 MiB, not 2: the write-ahead log grows to SQLite's automatic checkpoint threshold
// (1000 pages, about 4 MiB) before it is first reset, so on 2 MiB the agent's own WAL filled the disk at a
// random moment before the test's filler did, and the scenario measured that instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn given_the_agent_binary_on_a_full_disk_when_its_backlog_is_delivered_then_it_keeps_running_and_every_row_arrives_once_space_is_freed(
) {
    let Some(tmpfs) = support::tmpfs::Tmpfs::mount("16m") else {
        return;
    };
    // Given the agent binary with its data_dir on a 16 MiB filesystem, producing while the broker is unreachable.
    let broker = support::broker();
    let recorder = Recorder::subscribe(broker.port, ALL_TOPICS).await;
    let proxy = FaultProxy::start(0, broker.port).await;
    let plant = Plant::start(121).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let tuning = Tuning {
        live_interval: "1s",
        mqtt: "connect_timeout = \"2s\"",
        agent: "",
        store: "",
    };
    let data_dir = tmpfs.path().join("data");
    proxy.set_mode(Mode::Refuse);
    let mut agent = ChildAgent::start(
        dir.path(),
        &plant.config_text(proxy.port, &tuning, &data_dir),
    );
    plant.set_producing(true);
    let database = data_dir.join(shopfloor_agent::store::DATABASE_FILE);
    support::wait_until(PATIENCE, "a backlog in the outbox", || {
        outbox_rows(&database).is_some_and(|rows| rows >= 10)
    })
    .await;

    // When the filesystem fills up (a filler file takes every free byte, topped up while commits fail),
    let filler = tmpfs.path().join("filler");
    support::tmpfs::fill(&filler);
    support::wait_until(PATIENCE, "the agent to notice the full disk", || {
        support::tmpfs::fill(&filler);
        agent.log().contains("filesystem holding the store is full")
    })
    .await;
    // and the broker becomes reachable, so the backlog is delivered but cannot be retired,
    proxy.set_mode(Mode::Pass);
    support::wait_until(PATIENCE, "the replayed backlog at the subscriber", || {
        recorder
            .messages_matching("/rollup/")
            .iter()
            .any(|(_, body)| body["replayed"] == true)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;

    // Then the agent is still running,
    assert!(
        agent.running(),
        "the agent ended on a full disk:\n{}",
        agent.log()
    );
    // and once space is freed and production stops, every row it enqueued arrives and leaves the outbox.
    std::fs::remove_file(&filler).expect("filler removed");
    tokio::time::sleep(Duration::from_secs(2)).await;
    plant.set_producing(false);
    support::wait_until(PATIENCE, "every enqueued row at the subscriber", || {
        let Some((epoch, last_seq)) = epoch_and_last_seq(&database) else {
            return false;
        };
        let received: std::collections::BTreeSet<i64> = recorder
            .messages()
            .iter()
            .filter(|message| message.body["db_epoch"] == epoch.as_str())
            .filter_map(|message| message.body["seq"].as_i64())
            .collect();
        last_seq > 0 && (1..=last_seq).all(|seq| received.contains(&seq))
    })
    .await;
    let (_, last_seq) = epoch_and_last_seq(&database).expect("the database is readable");
    let log = agent.log();
    let announced = log.matches("The store refused a publisher call").count();
    support::report(&format!(
        "agent binary on a full disk: {last_seq} rows enqueued, all received; 'store refused' logged {announced} \
         time(s); agent still running"
    ));
    let status = agent.stop().await;
    plant.shutdown().await;
    assert!(status.success(), "exit status {status}; log:\n{log}");
}
