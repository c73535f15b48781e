//! The publishing side: the publishing floor role and scenarios S4–S6.
//!
//! Layout: `floor` (the bare rumqttc QoS 1 publisher, a child role), `rig` (what the scenarios share: a
//! runtime for the simulated PLC and the forwarder, Mosquitto, a real rollup captured from the agent, the
//! outbox filled through the library), `subscriber` (a plain MQTT client recording what arrives), `forwarder`
//! (the TCP hop whose outages S6 times), and one module per scenario: `drain` (S4), `recovery` (S5),
//! `reconnect` (S6).

mod drain;
mod floor;
mod forwarder;
mod reconnect;
mod recovery;
mod rig;

use std::time::Duration;

use crate::report::Table;
use crate::{Options, Scale, Scenario};

/// The sizes of one run of S4–S6.
#[derive(Debug, Clone)]
struct Sizes {
    /// Rows in the outbox of S4 and S5.
    rows: u64,
    /// Messages the publishing floor sends.
    floor_messages: u64,
    /// How long the `drain_rate = 500` part of S4 watches live rollups.
    live_run: Duration,
    /// The rollup period of that part (windows close this often).
    live_period: &'static str,
    /// Kill-and-restart rounds of S5.
    restarts: usize,
    /// Outage lengths of S6 and the runs of each.
    outages: Vec<Duration>,
    /// Runs per outage length.
    runs: usize,
    /// The one long outage of S6, if any.
    long_outage: Option<Duration>,
    /// How long the agent stays connected between two outages of S6 (it resets its reconnect backoff after
    /// a connection that lasted 10 s).
    settle: Duration,
}

impl Sizes {
    fn of(options: &Options) -> Sizes {
        let mut sizes = match options.scale {
            Scale::Full => Sizes {
                rows: 1_000_000,
                floor_messages: 200_000,
                live_run: Duration::from_secs(60),
                live_period: "10s",
                restarts: 5,
                outages: [5, 15, 60].map(Duration::from_secs).to_vec(),
                runs: 10,
                long_outage: Some(Duration::from_secs(600)),
                settle: Duration::from_secs(11),
            },
            Scale::Smoke => Sizes {
                rows: 2_000,
                floor_messages: 2_000,
                live_run: Duration::from_secs(5),
                live_period: "2s",
                restarts: 2,
                outages: vec![Duration::from_secs(1)],
                runs: 1,
                long_outage: None,
                settle: Duration::from_secs(1),
            },
        };
        if let Some(rows) = options.rows {
            sizes.rows = rows.max(1);
            sizes.floor_messages = sizes.floor_messages.min(sizes.rows);
        }
        if let Some(runs) = options.runs {
            sizes.runs = runs.max(1);
        }
        sizes
    }
}

/// Runs the child role `role` if it is one of this module's.
pub(crate) fn run_role(role: &str, args: &[String]) -> Option<anyhow::Result<()>> {
    match role {
        floor::ROLE => Some(floor::run_role(args)),
        _ => None,
    }
}

/// Runs one of S4–S6 and returns its tables.
pub(crate) fn run(scenario: Scenario, options: &Options) -> anyhow::Result<Vec<Table>> {
    let sizes = Sizes::of(options);
    let rig = rig::Rig::start()?;
    let outcome = match scenario {
        Scenario::S4 => drain::run(&rig, &sizes),
        Scenario::S5 => recovery::run(&rig, &sizes),
        Scenario::S6 => reconnect::run(&rig, &sizes),
        other => anyhow::bail!("{other:?} is not a publishing scenario"),
    };
    // A failed run keeps its directories (agent logs) for a look; a good one removes them.
    outcome.map_err(|error| {
        let kept = rig.keep_scratch();
        error.context(format!("agent directories kept in {}", kept.display()))
    })
}
