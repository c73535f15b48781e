//! S6 reconnect: broker outages of several lengths, made by the forwarder between the agent and Mosquitto
//! (listener closed, every connection reset), timed from the forwarder listening again to the first CONNACK
//! it passes back to the agent; then one real Mosquitto kill and restart, timed from the restarted broker
//! accepting connections to the CONNACK.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use shopfloor_agent::broker::spawn_mosquitto;

use super::forwarder::Forwarder;
use super::rig::{wait_for, Rig};
use super::Sizes;
use crate::agent::AgentProcess;
use crate::measure::quantile;
use crate::report::Table;

/// How long the agent gets to come back after an outage before the run fails.
const PATIENCE: Duration = Duration::from_secs(180);
/// How long the agent is given to start and connect the first time.
const START_PATIENCE: Duration = Duration::from_secs(60);

/// Runs S6 and returns its table.
pub(super) fn run(rig: &Rig, sizes: &Sizes) -> anyhow::Result<Vec<Table>> {
    let mut broker = spawn_mosquitto(0)?;
    let mut forwarder = Forwarder::start(rig.runtime.handle(), broker.port)?;
    let fleet = rig.fleet(Duration::from_secs(1), forwarder.port);
    let agent = AgentProcess::spawn(&fleet, &rig.dir("reconnect"))?;
    agent.wait_ready(START_PATIENCE)?;
    wait_for(START_PATIENCE, || forwarder.connack_since(agent.started))
        .context("the agent never connected")?;
    std::thread::sleep(sizes.settle);
    let mut lengths = Vec::new();
    for outage in &sizes.outages {
        let mut times = Vec::new();
        for _ in 0..sizes.runs {
            times.push(forwarder_outage(&mut forwarder, *outage)?);
            std::thread::sleep(sizes.settle);
        }
        lengths.push((*outage, times));
    }
    let long = match sizes.long_outage {
        Some(outage) => Some((outage, forwarder_outage(&mut forwarder, outage)?)),
        None => None,
    };
    let mosquitto_outage = sizes
        .outages
        .first()
        .copied()
        .unwrap_or(Duration::from_secs(1));
    broker.kill()?;
    std::thread::sleep(mosquitto_outage);
    let restarting = Instant::now();
    broker.restart()?;
    // The agent may get through the forwarder before the restart's own probe sees the port open: the
    // broker accepted connections from the earlier of the two.
    let probed = Instant::now();
    let accepting = forwarder
        .upstream_connect_since(restarting)
        .map_or(probed, |first| first.min(probed));
    let connack = wait_for(PATIENCE, || forwarder.connack_since(accepting))
        .context("the agent did not reconnect after Mosquitto restarted")?;
    let reconnects = agent.metrics()?.sum("shopfloor_mqtt_reconnects_total");
    agent.stop()?;
    drop(forwarder);
    let mut table = table(&lengths, long);
    table
        .row(
            format!("Mosquitto killed for {mosquitto_outage:?}, restarted"),
            "s",
            None,
            Some(connack.duration_since(accepting).as_secs_f64()),
            "<= 2",
        )
        .note(format!(
            "the agent counted {reconnects:.0} lost connections or failed attempts \
             (shopfloor_mqtt_reconnects_total)"
        ));
    Ok(vec![table])
}

/// One outage of `length` made by the forwarder; returns the time from listening again to the CONNACK.
fn forwarder_outage(forwarder: &mut Forwarder, length: Duration) -> anyhow::Result<Duration> {
    forwarder.down();
    std::thread::sleep(length);
    let accepting = forwarder.up()?;
    let connack = wait_for(PATIENCE, || forwarder.connack_since(accepting))
        .with_context(|| format!("the agent did not reconnect after a {length:?} outage"))?;
    Ok(connack.duration_since(accepting))
}

fn table(lengths: &[(Duration, Vec<Duration>)], long: Option<(Duration, Duration)>) -> Table {
    let runs = lengths.first().map_or(0, |(_, times)| times.len());
    let mut table = Table::new(
        "S6 reconnect",
        format!(
            "broker outages of {} ({runs} runs each), made by a TCP forwarder between the agent and \
             Mosquitto: the outage closes its listener and resets every connection; timed from the \
             forwarder listening again to the first CONNACK (first byte 0x20) it passes back to the agent",
            lengths
                .iter()
                .map(|(length, _)| format!("{length:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    for (length, times) in lengths {
        let seconds: Vec<f64> = times.iter().map(Duration::as_secs_f64).collect();
        for (label, q, budget) in [("p50", 0.5, ""), ("p90", 0.9, "<= 2"), ("max", 1.0, "")] {
            table.row(
                format!("{length:?} outage: accepting -> CONNACK {label}"),
                "s",
                None,
                quantile(&seconds, q),
                budget,
            );
        }
    }
    if let Some((length, time)) = long {
        table.row(
            format!("{length:?} outage: accepting -> CONNACK"),
            "s",
            None,
            Some(time.as_secs_f64()),
            "<= mqtt.reconnect_max (default 10 s)",
        );
    }
    table
        .note(
            "between outages the agent stays connected long enough to reset its reconnect backoff (10 s); \
             the agent runs with the default mqtt.reconnect_max",
        )
        .note(
            "Mosquitto row: a real broker kill and restart behind the same forwarder, timed from the \
             restarted broker accepting connections",
        );
    table
}
