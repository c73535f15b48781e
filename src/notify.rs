//! The service manager's notification protocol (systemd `Type=notify`): `READY=1` once the agent is wired,
//! a `STATUS=` line every few seconds (backlog, PLCs up, broker link), `WATCHDOG=1` every half `WatchdogSec`
//! only while [`Liveness`] finds no stalled loop, and `STOPPING=1` at shutdown. A stall is logged once, naming
//! the loop, and the pings stop for good, so systemd restarts the service. Without `NOTIFY_SOCKET` (a plain
//! run, the demo, tests) nothing is sent and no task is started.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use sd_notify::NotifyState;
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::clock::SharedClock;
use crate::liveness::{Liveness, Stall, MIN_SLACK};
use crate::poller::HealthBoard;
use crate::publisher::PublisherStats;
use crate::store::StoreHandle;

/// The environment variable naming the service manager's socket.
const SOCKET_VARIABLE: &str = "NOTIFY_SOCKET";
/// How often the `STATUS=` line is refreshed.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(5);
/// How long the status line waits for the store's backlog figure before it says "backlog unknown".
const BACKLOG_WAIT: Duration = Duration::from_millis(500);

/// Where the agent's figures for the status line come from.
#[derive(Clone)]
pub struct StatusSources {
    /// The store, for the backlog.
    pub store: StoreHandle,
    /// PLC health, for the PLCs up.
    pub plc_health: HealthBoard,
    /// Publisher counters, for the broker link.
    pub publisher_stats: Arc<PublisherStats>,
}

/// The figures of one status line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusFigures {
    /// Rows waiting for the broker; `None` when the store did not answer.
    pub backlog_rows: Option<u64>,
    /// PLCs whose last cycles succeeded.
    pub plcs_up: usize,
    /// PLCs configured.
    pub plcs_total: usize,
    /// True while the broker link is up.
    pub broker_connected: bool,
    /// The loop that stopped making progress, if one did.
    pub stall: Option<Stall>,
}

/// The `STATUS=` text, e.g. `backlog 1234 rows, 3/4 PLCs up, broker connected`.
pub fn status_line(figures: &StatusFigures) -> String {
    let backlog = figures.backlog_rows.map_or_else(
        || "backlog unknown".to_string(),
        |rows| format!("backlog {rows} rows"),
    );
    let broker = if figures.broker_connected {
        "broker connected"
    } else {
        "broker not connected"
    };
    let mut line = format!(
        "{backlog}, {}/{} PLCs up, {broker}",
        figures.plcs_up, figures.plcs_total
    );
    if let Some(stall) = &figures.stall {
        line.push_str(&format!(", STALLED: {}", stall.component));
    }
    line
}

/// What the watchdog does at one tick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchdogStep {
    /// Nothing is stalled: ping.
    Ping,
    /// A loop was just found stalled: say so once, and ping no more.
    Stalled(Stall),
    /// A stall was already reported: stay silent until systemd restarts the service.
    Silent,
}

/// Turns the stall readings of successive ticks into pings; once a stall is seen it never pings again, so a loop
/// that recovers after systemd's deadline cannot keep a service alive that is being restarted.
#[derive(Debug, Default)]
pub struct WatchdogLatch {
    tripped: bool,
}

impl WatchdogLatch {
    /// The step for a tick whose stall reading is `stall`.
    pub fn step(&mut self, stall: Option<Stall>) -> WatchdogStep {
        match (self.tripped, stall) {
            (true, _) => WatchdogStep::Silent,
            (false, None) => WatchdogStep::Ping,
            (false, Some(stall)) => {
                self.tripped = true;
                WatchdogStep::Stalled(stall)
            }
        }
    }
}

/// The service manager connection of this process: present only under `NOTIFY_SOCKET`.
#[derive(Debug, Clone, Copy)]
pub struct Notifier {
    /// Half of `WatchdogSec`, when the watchdog is on for this process.
    ping_every: Option<Duration>,
}

impl Notifier {
    /// The notifier when a service manager listens (`NOTIFY_SOCKET` set), with the watchdog period it asked for
    /// (`WATCHDOG_USEC`, for this process's `WATCHDOG_PID`).
    pub fn from_env() -> Option<Notifier> {
        std::env::var_os(SOCKET_VARIABLE)?;
        let mut usec = 0;
        let ping_every = sd_notify::watchdog_enabled(false, &mut usec)
            .then(|| Duration::from_micros(usec) / 2)
            .filter(|half| !half.is_zero());
        Some(Notifier { ping_every })
    }

    /// The slack a [`Liveness`] board should grant: a loop is stalled once it is a whole watchdog period late,
    /// and never sooner than [`MIN_SLACK`].
    pub fn slack(notifier: Option<&Notifier>) -> Duration {
        notifier
            .and_then(|n| n.ping_every)
            .map_or(MIN_SLACK, |half| (half * 2).max(MIN_SLACK))
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if let Err(error) = sd_notify::notify(false, states) {
            warn!(%error, "Cannot notify the service manager.");
        }
    }
}

/// The notification task of a running agent; `stopping` ends it.
pub struct Service {
    notifier: Notifier,
    task: JoinHandle<()>,
}

impl Service {
    /// Sends `READY=1` and starts the task that sends status lines and watchdog pings.
    pub fn start(
        notifier: Notifier,
        liveness: Liveness,
        sources: StatusSources,
        clock: SharedClock,
    ) -> Service {
        notifier.send(&[NotifyState::Ready]);
        info!(watchdog = ?notifier.ping_every.map(|half| half * 2), "Told the service manager the agent is ready.");
        let task = tokio::spawn(run(notifier, liveness, sources, clock));
        Service { notifier, task }
    }

    /// Sends `STOPPING=1` and ends the task (systemd stops watching the watchdog once the service stops).
    pub fn stopping(self) {
        self.task.abort();
        self.notifier
            .send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    }
}

/// Pings every half watchdog period while nothing stalls; refreshes the status line every [`STATUS_INTERVAL`].
async fn run(notifier: Notifier, liveness: Liveness, sources: StatusSources, clock: SharedClock) {
    let tick_every = notifier
        .ping_every
        .map_or(STATUS_INTERVAL, |half| half.min(STATUS_INTERVAL));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut latch = WatchdogLatch::default();
    let mut last_status: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        let now = clock.now().mono;
        let stall = liveness.stalled(now);
        if notifier.ping_every.is_some() {
            match latch.step(stall.clone()) {
                WatchdogStep::Ping => notifier.send(&[NotifyState::Watchdog]),
                WatchdogStep::Stalled(stall) => error!(
                    component = %stall.component,
                    overdue = ?stall.overdue,
                    "A loop stopped making progress; no more watchdog pings, the service manager will restart the agent."
                ),
                WatchdogStep::Silent => {}
            }
        }
        if last_status.is_none_or(|at| now.saturating_duration_since(at) >= STATUS_INTERVAL) {
            last_status = Some(now);
            let figures = figures(&sources, stall).await;
            notifier.send(&[NotifyState::Status(&status_line(&figures))]);
        }
    }
}

/// Reads the status figures: the backlog from the store (given up after [`BACKLOG_WAIT`], so a busy store never
/// delays a watchdog ping), the rest from shared counters.
async fn figures(sources: &StatusSources, stall: Option<Stall>) -> StatusFigures {
    let backlog = tokio::time::timeout(BACKLOG_WAIT, sources.store.call(|store| store.backlog()));
    let backlog_rows = match backlog.await {
        Ok(Ok(Ok(backlog))) => Some(backlog.rows),
        _ => None,
    };
    let (plcs_up, plcs_total) = {
        let board = sources
            .plc_health
            .lock()
            .expect("health board lock is never poisoned");
        (board.iter().filter(|plc| plc.up).count(), board.len())
    };
    StatusFigures {
        backlog_rows,
        plcs_up,
        plcs_total,
        broker_connected: sources.publisher_stats.connected.load(Ordering::Relaxed),
        stall,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::liveness::Component;

    fn stall() -> Stall {
        Stall {
            component: Component::Processor,
            overdue: Duration::from_secs(3),
        }
    }

    #[test]
    fn the_status_line_names_backlog_plcs_and_broker() {
        let mut figures = StatusFigures {
            backlog_rows: Some(1234),
            plcs_up: 3,
            plcs_total: 4,
            broker_connected: true,
            stall: None,
        };
        assert_eq!(
            status_line(&figures),
            "backlog 1234 rows, 3/4 PLCs up, broker connected"
        );
        figures.backlog_rows = None;
        figures.broker_connected = false;
        figures.stall = Some(stall());
        assert_eq!(
            status_line(&figures),
            "backlog unknown, 3/4 PLCs up, broker not connected, STALLED: processor"
        );
    }

    #[test]
    fn the_watchdog_pings_until_the_first_stall_and_never_again() {
        let mut latch = WatchdogLatch::default();
        assert_eq!(latch.step(None), WatchdogStep::Ping);
        assert_eq!(latch.step(None), WatchdogStep::Ping);
        assert_eq!(latch.step(Some(stall())), WatchdogStep::Stalled(stall()));
        // Reported once; a loop that moves again does not bring the pings back.
        assert_eq!(latch.step(Some(stall())), WatchdogStep::Silent);
        assert_eq!(latch.step(None), WatchdogStep::Silent);
    }

    #[test]
    fn the_slack_is_one_watchdog_period_and_never_below_the_minimum() {
        assert_eq!(Notifier::slack(None), MIN_SLACK);
        let short = Notifier {
            ping_every: Some(Duration::from_secs(1)),
        };
        assert_eq!(Notifier::slack(Some(&short)), MIN_SLACK);
        let long = Notifier {
            ping_every: Some(Duration::from_secs(30)),
        };
        assert_eq!(Notifier::slack(Some(&long)), Duration::from_secs(60));
    }
}
