//! The exposition names and labels, and the store figures' rules.

use std::time::Duration;

use super::*;
use crate::poller::connection::ReadError;
use crate::poller::frame::ResponseError;

fn line<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    text.lines().find(|line| line.starts_with(prefix))
}

#[test]
fn every_figure_is_exposed_under_its_stable_name() {
    let metrics = Metrics::new();
    metrics.poll("press");
    metrics.poll_started("press", Duration::from_millis(3), 0);
    metrics.poll_started("press", Duration::from_millis(1_500), 2);
    metrics.connect_failed("press");
    metrics.connected("press", 1);
    metrics.connected("press", 2);
    metrics.request::<()>("press", Duration::from_millis(3), &Ok(()));
    metrics.request::<()>(
        "press",
        Duration::from_secs(1),
        &Err(ReadError::Timeout(Duration::from_secs(1))),
    );
    metrics.request::<()>(
        "press",
        Duration::from_millis(2),
        &Err(ReadError::Response(ResponseError::Exception { code: 4 })),
    );
    metrics.plc_up("press", true);
    metrics.commit(Duration::from_millis(5), true);
    metrics.commit(Duration::from_millis(5), false);
    metrics.published();
    metrics.puback(Duration::from_millis(20));
    metrics.mqtt_reconnect();
    let backlog = Backlog {
        rows: 3,
        bytes: 300,
        oldest_enqueued_at: Some(1_000),
    };
    metrics.store_figures(backlog, DropCounters::default(), 4_500);
    let text = metrics.encode();
    for expected in [
        "shopfloor_polls_total{plc=\"press\"} 1",
        "shopfloor_poll_lag_seconds_count{plc=\"press\"} 2",
        "shopfloor_poll_lag_seconds_bucket{le=\"0.004\",plc=\"press\"} 1",
        "shopfloor_poll_lag_seconds_bucket{le=\"2.048\",plc=\"press\"} 2",
        "shopfloor_poll_ticks_skipped_total{plc=\"press\"} 2",
        "shopfloor_poll_errors_total{plc=\"press\",kind=\"connect\"} 1",
        "shopfloor_poll_errors_total{plc=\"press\",kind=\"timeout\"} 1",
        "shopfloor_poll_errors_total{plc=\"press\",kind=\"exception\"} 1",
        "shopfloor_request_rtt_seconds_count{plc=\"press\"} 2",
        "shopfloor_plc_up{plc=\"press\"} 1",
        "shopfloor_plc_reconnects_total{plc=\"press\"} 1",
        "shopfloor_store_commits_total 1",
        "shopfloor_store_commit_failures_total 1",
        "shopfloor_store_commit_seconds_count 1",
        "shopfloor_backlog_rows 3",
        "shopfloor_backlog_bytes 300",
        "shopfloor_oldest_unsent_age_seconds 3.5",
        "shopfloor_publishes_total 1",
        "shopfloor_puback_latency_seconds_count 1",
        "shopfloor_drops_total{class=\"rollup_1m\"} 0",
        "shopfloor_drops_total{class=\"durable\"} 0",
        "shopfloor_mqtt_reconnects_total 1",
    ] {
        assert!(text.contains(expected), "{expected} missing from\n{text}");
    }
}

#[test]
fn drop_totals_follow_the_store_and_never_go_back() {
    let metrics = Metrics::new();
    let mut drops = DropCounters {
        rollup_1m: 7,
        durable: 1,
        ..DropCounters::default()
    };
    metrics.store_figures(Backlog::default(), drops, 0);
    drops.rollup_1m = 9;
    metrics.store_figures(Backlog::default(), drops, 0);
    let text = metrics.encode();
    assert_eq!(
        line(&text, "shopfloor_drops_total{class=\"rollup_1m\"}"),
        Some("shopfloor_drops_total{class=\"rollup_1m\"} 9")
    );
    // A new database file starts its totals at 0: the counter holds its value instead of going back.
    metrics.store_figures(Backlog::default(), DropCounters::default(), 0);
    let text = metrics.encode();
    assert_eq!(
        line(&text, "shopfloor_drops_total{class=\"durable\"}"),
        Some("shopfloor_drops_total{class=\"durable\"} 1")
    );
    assert_eq!(
        line(&text, "shopfloor_oldest_unsent_age_seconds"),
        Some("shopfloor_oldest_unsent_age_seconds 0.0")
    );
}

#[test]
fn every_read_error_has_its_kind() {
    let cases = [
        (
            ReadError::Response(ResponseError::WrongLength {
                expected: 2,
                got: 1,
            }),
            PollErrorKind::WrongLength,
        ),
        (
            ReadError::Response(ResponseError::Malformed("x".into())),
            PollErrorKind::Protocol,
        ),
        (ReadError::Broken("eof".into()), PollErrorKind::Transport),
        (
            ReadError::Timeout(Duration::from_millis(1)),
            PollErrorKind::Timeout,
        ),
    ];
    for (error, kind) in cases {
        assert_eq!(PollErrorKind::of_read(&error), kind);
    }
}

#[test]
fn healthz_turns_503_when_a_loop_stalls_or_a_commit_fails() {
    use crate::liveness::{Liveness, MIN_SLACK, STARTUP_GRACE};

    let clock = crate::clock::system();
    let ids = ["press".to_owned()];
    let liveness = Liveness::new(&ids, std::time::Instant::now(), Duration::ZERO);
    let check = liveness_check(liveness.clone(), clock.clone());
    assert_eq!(check(), Ok(()));
    liveness.set_store_ok(false);
    assert_eq!(check(), Err("store: the latest commit failed".to_owned()));
    liveness.set_store_ok(true);
    assert_eq!(check(), Ok(()));
    // A board whose loops never beat since long before their start-up grace ended: the first one is named.
    let long_ago = std::time::Instant::now()
        .checked_sub(STARTUP_GRACE + MIN_SLACK + Duration::from_secs(60))
        .expect("the machine has been up for a few minutes");
    let check = liveness_check(Liveness::new(&ids, long_ago, Duration::ZERO), clock);
    let stalled = check().unwrap_err();
    assert!(
        stalled.starts_with("stalled: poller of PLC press"),
        "{stalled}"
    );
}
