//! S5 recovery: the agent runs with a full outbox and the broker up, is killed with SIGKILL and started again
//! on the same directory; timed from the spawn to the first read the simulated PLC sees and to the first
//! rollup a subscriber receives. Repeated; each round and the median are reported.

use std::time::Duration;

use anyhow::Context as _;
use shopfloor_agent::broker::spawn_mosquitto;

use super::rig::{fill_outbox, rollup_filter, wait_for, Rig};
use super::Sizes;
use crate::agent::AgentProcess;
use crate::measure::quantile;
use crate::report::Table;
use crate::subscriber::Subscriber;

/// The poll interval of the restarted agent (cycles are aligned to it).
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a restarted agent gets to poll and to publish before the round fails.
const PATIENCE: Duration = Duration::from_secs(60);
/// Silence on the subscription that shows the killed agent's last messages have arrived.
const QUIET: Duration = Duration::from_millis(300);
/// How long the agent runs between a restart and the next kill.
const RUN_BETWEEN: Duration = Duration::from_secs(1);

/// One kill-and-restart.
struct Round {
    queued: f64,
    first_poll: Duration,
    first_publish: Duration,
}

/// Runs S5 and returns its table.
pub(super) fn run(rig: &Rig, sizes: &Sizes) -> anyhow::Result<Vec<Table>> {
    let broker = spawn_mosquitto(0)?;
    let rollup = rig.capture_rollup(&broker)?;
    let fleet = rig.fleet(POLL_INTERVAL, broker.port);
    let dir = rig.dir("recovery");
    fill_outbox(&fleet, &dir, &rollup, sizes.rows)?;
    let subscriber = Subscriber::start(broker.port, &rollup_filter(&fleet, "+")?)?;
    let mut agent = AgentProcess::spawn(&fleet, &dir)?;
    wait_for(PATIENCE, || subscriber.first_since(agent.started))
        .context("the agent published nothing before the first kill")?;
    let mut rounds = Vec::new();
    for _ in 0..sizes.restarts {
        let queued = agent.metrics()?.sum("shopfloor_backlog_rows");
        agent.kill()?;
        // Rows the killed agent had already handed to the broker may still be on their way to the
        // subscriber; they must not count as the restarted agent's.
        subscriber.wait_quiet(QUIET, PATIENCE);
        let requests_before = rig.plc.stats().requests;
        let restarted = AgentProcess::spawn(&fleet, &dir)?;
        let started = restarted.started;
        let first_poll = wait_for(PATIENCE, || {
            if rig.plc.stats().requests == requests_before {
                return None;
            }
            rig.plc
                .requests()
                .into_iter()
                .map(|request| request.at.into_std())
                .find(|at| *at >= started)
        })
        .context("the restarted agent did not poll")?;
        let first_publish = wait_for(PATIENCE, || subscriber.first_since(started))
            .context("the restarted agent published nothing")?;
        rounds.push(Round {
            queued,
            first_poll: first_poll.duration_since(started),
            first_publish: first_publish.at.duration_since(started),
        });
        agent = restarted;
        std::thread::sleep(RUN_BETWEEN);
    }
    agent.stop()?;
    drop(subscriber);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(vec![table(sizes, &rounds)])
}

fn table(sizes: &Sizes, rounds: &[Round]) -> Table {
    let mut table = Table::new(
        "S5 recovery",
        format!(
            "{} rollups queued, broker up, agent killed (SIGKILL) and restarted on the same directory {} \
             times; 1 PLC polled every {POLL_INTERVAL:?}",
            sizes.rows,
            rounds.len()
        ),
    );
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (index, round) in rounds.iter().enumerate() {
        table
            .row(
                format!("restart {}: spawn -> first poll", index + 1),
                "ms",
                None,
                Some(ms(round.first_poll)),
                "< 200",
            )
            .row(
                format!("restart {}: spawn -> first rollup received", index + 1),
                "ms",
                None,
                Some(ms(round.first_publish)),
                "< 1000",
            );
    }
    let polls: Vec<f64> = rounds.iter().map(|r| ms(r.first_poll)).collect();
    let publishes: Vec<f64> = rounds.iter().map(|r| ms(r.first_publish)).collect();
    table
        .row("median: spawn -> first poll", "ms", None, quantile(&polls, 0.5), "< 200")
        .row(
            "median: spawn -> first rollup received",
            "ms",
            None,
            quantile(&publishes, 0.5),
            "< 1000",
        )
        .note(format!(
            "rows queued at each kill: {}; the first rollup after a restart is a replayed backlog row or a \
             live one, whichever the subscriber sees first; polls are aligned to the poll interval",
            rounds
                .iter()
                .map(|r| format!("{:.0}", r.queued))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    table
}
