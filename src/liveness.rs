//! Progress bookkeeping for the service watchdog and the health check: every poll loop and the processor loop
//! "beat" and promise their next beat by a deadline; a component that misses its promise is stalled. The store's
//! last commit outcome is kept beside it. Atomics only, and time is an argument (a monotonic `Instant` the caller
//! read), so it is tested with synthetic time. It decides nothing about systemd: `notify` pings only while no
//! component is stalled.
//!
//! A poller promises its next beat after its next cycle's wait plus the time the cycle may take (its connect and
//! request timeouts); a reconnect backoff, however long, is part of the promise, so a PLC that is down is not a
//! stall. The processor promises its next loop iteration within its shortest tick.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

/// Grace added to every promise: scheduling delays on a loaded machine are not stalls.
pub const MIN_SLACK: Duration = Duration::from_secs(5);
/// How long a component may take to make its first beat after the agent started.
pub const STARTUP_GRACE: Duration = Duration::from_secs(60);

/// A loop whose progress is watched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Component {
    /// The poll loop of one PLC, by its configured id.
    Poller(String),
    /// The processor loop (samples → logic → store).
    Processor,
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Component::Poller(id) => write!(f, "poller of PLC {id}"),
            Component::Processor => f.write_str("processor"),
        }
    }
}

/// A component that missed its promised beat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stall {
    /// Which loop stopped making progress.
    pub component: Component,
    /// How long ago its promised deadline (slack included) passed.
    pub overdue: Duration,
}

impl fmt::Display for Stall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} made no progress for {:?} past its promise",
            self.component, self.overdue
        )
    }
}

/// One watched loop: its name and its deadline in milliseconds after the origin.
#[derive(Debug)]
struct Slot {
    component: Component,
    deadline_ms: AtomicU64,
}

#[derive(Debug)]
struct Inner {
    origin: Instant,
    slack: Duration,
    /// The poll loops of the running configuration, in its order; a reload lays them out anew.
    pollers: RwLock<Vec<Arc<Slot>>>,
    processor: Arc<Slot>,
    store_ok: AtomicBool,
}

/// The shared progress board: cheap to clone, read by the watchdog and the health check.
#[derive(Debug, Clone)]
pub struct Liveness {
    inner: Arc<Inner>,
}

/// The beating end of one component, handed to its loop.
#[derive(Debug, Clone)]
pub struct Heartbeat {
    inner: Arc<Inner>,
    slot: Arc<Slot>,
}

impl Liveness {
    /// A board for the pollers of `plc_ids` (in configuration order) and the processor, created at `now`. Every
    /// component has [`STARTUP_GRACE`] for its first beat; `slack` (at least [`MIN_SLACK`]) is added to every
    /// promise. The store counts as healthy until a commit fails.
    pub fn new(plc_ids: &[String], now: Instant, slack: Duration) -> Liveness {
        let slack = slack.max(MIN_SLACK);
        let first_deadline = millis(STARTUP_GRACE.saturating_add(slack));
        let slot = |component| {
            Arc::new(Slot {
                component,
                deadline_ms: AtomicU64::new(first_deadline),
            })
        };
        let pollers = plc_ids
            .iter()
            .map(|id| slot(Component::Poller(id.clone())))
            .collect();
        Liveness {
            inner: Arc::new(Inner {
                origin: now,
                slack,
                pollers: RwLock::new(pollers),
                processor: slot(Component::Processor),
                store_ok: AtomicBool::new(true),
            }),
        }
    }

    /// Lays the poll loops out for a reloaded configuration's `plc_ids`: a PLC that stays keeps its promise
    /// (whatever its new position), a new one gets [`STARTUP_GRACE`] from `now`, a removed one is no longer
    /// watched.
    pub fn set_pollers(&self, plc_ids: &[String], now: Instant) {
        let first_deadline = self
            .inner
            .since_origin(now)
            .saturating_add(millis(STARTUP_GRACE.saturating_add(self.inner.slack)));
        let mut pollers = self
            .inner
            .pollers
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let laid_out = plc_ids
            .iter()
            .map(|id| {
                let component = Component::Poller(id.clone());
                pollers
                    .iter()
                    .find(|slot| slot.component == component)
                    .cloned()
                    .unwrap_or_else(|| {
                        Arc::new(Slot {
                            component,
                            deadline_ms: AtomicU64::new(first_deadline),
                        })
                    })
            })
            .collect();
        *pollers = laid_out;
    }

    /// The heartbeat of the poller of PLC `index` (its position in the configuration), if there is one.
    pub fn poller(&self, index: usize) -> Option<Heartbeat> {
        let pollers = self
            .inner
            .pollers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        pollers.get(index).map(|slot| Heartbeat {
            inner: self.inner.clone(),
            slot: slot.clone(),
        })
    }

    /// The processor's heartbeat.
    pub fn processor(&self) -> Heartbeat {
        Heartbeat {
            inner: self.inner.clone(),
            slot: self.inner.processor.clone(),
        }
    }

    /// The component whose promise passed first, if any has passed at `now`.
    pub fn stalled(&self, now: Instant) -> Option<Stall> {
        let now_ms = self.inner.since_origin(now);
        let pollers = self
            .inner
            .pollers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        pollers
            .iter()
            .chain(std::iter::once(&self.inner.processor))
            .map(|slot| (slot, slot.deadline_ms.load(Ordering::Acquire)))
            .filter(|(_, deadline)| *deadline < now_ms)
            .min_by_key(|(_, deadline)| *deadline)
            .map(|(slot, deadline)| Stall {
                component: slot.component.clone(),
                overdue: Duration::from_millis(now_ms - deadline),
            })
    }

    /// True when no poll loop has missed its promise at `now` (the processor is not looked at).
    pub fn polling_alive(&self, now: Instant) -> bool {
        let now_ms = self.inner.since_origin(now);
        let pollers = self
            .inner
            .pollers
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        pollers
            .iter()
            .all(|slot| slot.deadline_ms.load(Ordering::Acquire) >= now_ms)
    }

    /// Records the outcome of the latest store commit.
    pub fn set_store_ok(&self, ok: bool) {
        self.inner.store_ok.store(ok, Ordering::Release);
    }

    /// True unless the latest store commit failed.
    pub fn store_ok(&self) -> bool {
        self.inner.store_ok.load(Ordering::Acquire)
    }

    /// The slack added to every promise.
    pub fn slack(&self) -> Duration {
        self.inner.slack
    }
}

impl Heartbeat {
    /// Records progress at `now` and promises the next beat within `next_within` (plus the board's slack).
    pub fn beat(&self, now: Instant, next_within: Duration) {
        let deadline = self
            .inner
            .since_origin(now)
            .saturating_add(millis(next_within.saturating_add(self.inner.slack)));
        self.slot.deadline_ms.store(deadline, Ordering::Release);
    }

    /// The component this heartbeat belongs to.
    pub fn component(&self) -> Option<&Component> {
        Some(&self.slot.component)
    }
}

impl Inner {
    fn since_origin(&self, now: Instant) -> u64 {
        millis(now.saturating_duration_since(self.origin))
    }
}

/// The longest one pass of a poll loop may take besides its planned wait: a connect, every request of the plan
/// and a single read for every tag (a refused merged read is split), and a polite close, each within the PLC's
/// `timeout` and followed by its `pause_between_requests`.
pub fn poll_pass_budget(plc: &crate::config::PlcConfig, requests: usize, tags: usize) -> Duration {
    let exchanges =
        u32::try_from(requests.saturating_add(tags).saturating_add(2)).unwrap_or(u32::MAX);
    plc.timeout
        .saturating_add(plc.pause_between_requests)
        .saturating_mul(exchanges)
}

/// Test switch: with `SHOPFLOOR_FAULT_STALL_PROCESSOR_AFTER=<seconds>` in the environment at start, the processor
/// loop stops making progress that many seconds after it started (its task waits forever), so the watchdog can be
/// seen to stop pinging. Unset in any real deployment.
pub const STALL_PROCESSOR_AFTER_VARIABLE: &str = "SHOPFLOOR_FAULT_STALL_PROCESSOR_AFTER";

/// The fault switch [`STALL_PROCESSOR_AFTER_VARIABLE`], read once when the processor loop starts.
#[derive(Debug, Clone, Copy)]
pub struct StallFault {
    at: Option<Instant>,
}

impl StallFault {
    /// Reads the switch; `now` is when the processor loop starts.
    pub fn from_env(now: Instant) -> StallFault {
        let at = std::env::var(STALL_PROCESSOR_AFTER_VARIABLE)
            .ok()
            .and_then(|text| text.trim().parse::<u64>().ok())
            .map(|seconds| now + Duration::from_secs(seconds));
        StallFault { at }
    }

    /// Never returns once the switch's time has come at `now`: the caller's loop stops making progress.
    pub async fn hold_if_due(&self, now: Instant) {
        if self.at.is_some_and(|at| now >= at) {
            tracing::warn!(
                variable = STALL_PROCESSOR_AFTER_VARIABLE,
                "Fault switch: the processor stops making progress now."
            );
            std::future::pending::<()>().await;
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn board(start: Instant) -> Liveness {
        Liveness::new(&["press".to_string(), "oven".to_string()], start, MIN_SLACK)
    }

    #[test]
    fn nothing_is_stalled_within_the_startup_grace() {
        let start = Instant::now();
        let liveness = board(start);
        let grace_end = start + STARTUP_GRACE + MIN_SLACK;
        assert_eq!(liveness.stalled(grace_end), None);
        let stall = liveness.stalled(grace_end + SECOND).unwrap();
        // All missed the same deadline: the first in order is named.
        assert_eq!(stall.component, Component::Poller("press".into()));
        assert_eq!(stall.overdue, SECOND);
    }

    #[test]
    fn a_reload_keeps_the_promises_of_the_plcs_that_stay_and_gives_new_ones_the_startup_grace() {
        let start = Instant::now();
        let liveness = board(start);
        // Given "press" beating with a 2 s promise and "oven" silent since the start,
        let press = liveness.poller(0).unwrap();
        let later = start + STARTUP_GRACE;
        press.beat(later, 2 * SECOND);
        // when a reload removes "oven", moves "press" to the second place and adds "mill" first,
        liveness.set_pollers(&["mill".to_string(), "press".to_string()], later);
        // then the heartbeat "press" already holds still counts, "oven" is no longer watched, and "mill" has
        // the startup grace from the reload.
        assert_eq!(
            liveness.poller(1).unwrap().component(),
            Some(&Component::Poller("press".into()))
        );
        let after_grace = later + STARTUP_GRACE + MIN_SLACK + SECOND;
        liveness.processor().beat(after_grace, SECOND);
        press.beat(after_grace, SECOND);
        assert_eq!(
            liveness.stalled(after_grace).map(|stall| stall.component),
            Some(Component::Poller("mill".into()))
        );
        liveness.poller(0).unwrap().beat(after_grace, SECOND);
        assert_eq!(liveness.stalled(after_grace), None);
        assert!(liveness.poller(2).is_none());
    }

    #[test]
    fn a_processor_that_stops_beating_is_named_once_its_promise_passes() {
        let start = Instant::now();
        let liveness = board(start);
        let processor = liveness.processor();
        let pollers: Vec<Heartbeat> = (0..2).map(|i| liveness.poller(i).unwrap()).collect();
        // Given every loop beating each second with a 2 s promise for 100 s,
        for second in 0..100u64 {
            let now = start + SECOND * u32::try_from(second).unwrap();
            processor.beat(now, 2 * SECOND);
            for poller in &pollers {
                poller.beat(now, 2 * SECOND);
            }
            assert_eq!(liveness.stalled(now), None);
        }
        // when the processor stops while the pollers go on,
        let last = start + SECOND * 99;
        let deadline = last + 2 * SECOND + MIN_SLACK;
        for second in 100..120u64 {
            let now = start + SECOND * u32::try_from(second).unwrap();
            for poller in &pollers {
                poller.beat(now, 2 * SECOND);
            }
            let stall = liveness.stalled(now);
            // then it is named exactly once its promise has passed.
            if now > deadline {
                assert_eq!(stall.unwrap().component, Component::Processor);
            } else {
                assert_eq!(stall, None);
            }
        }
        assert!(liveness.polling_alive(start + SECOND * 119));
    }

    #[test]
    fn a_long_backoff_promised_ahead_is_not_a_stall() {
        let start = Instant::now();
        let liveness = board(start);
        let poller = liveness.poller(0).unwrap();
        // A PLC that is down sleeps five minutes before its next connect attempt and says so.
        poller.beat(start, Duration::from_secs(300));
        liveness.processor().beat(start + 299 * SECOND, 2 * SECOND);
        liveness
            .poller(1)
            .unwrap()
            .beat(start + 299 * SECOND, 2 * SECOND);
        assert_eq!(liveness.stalled(start + 300 * SECOND), None);
        assert!(liveness.polling_alive(start + 300 * SECOND));
        let late = start + 300 * SECOND + MIN_SLACK + SECOND;
        assert_eq!(
            liveness.stalled(late).map(|s| s.component),
            Some(Component::Poller("press".into()))
        );
        assert!(!liveness.polling_alive(late));
    }

    #[test]
    fn the_store_is_healthy_until_a_commit_fails_and_again_after_one_succeeds() {
        let liveness = board(Instant::now());
        assert!(liveness.store_ok());
        liveness.set_store_ok(false);
        assert!(!liveness.clone().store_ok());
        liveness.set_store_ok(true);
        assert!(liveness.store_ok());
    }

    #[test]
    fn there_is_one_heartbeat_per_plc_and_one_for_the_processor() {
        let liveness = board(Instant::now());
        assert!(liveness.poller(2).is_none());
        assert_eq!(
            liveness.poller(1).unwrap().component(),
            Some(&Component::Poller("oven".into()))
        );
        assert_eq!(
            liveness.processor().component(),
            Some(&Component::Processor)
        );
        assert_eq!(
            Component::Poller("oven".into()).to_string(),
            "poller of PLC oven"
        );
    }

    proptest! {
        /// The named stall is the component whose deadline (last beat + promise + slack) passed first, and there is
        /// none while every deadline lies ahead.
        #[test]
        fn the_first_missed_promise_is_named(
            beats in proptest::collection::vec((0u64..600_000, 0u64..120_000), 3),
            probe in 0u64..1_000_000,
        ) {
            let start = Instant::now();
            let liveness = board(start);
            let hearts = [liveness.poller(0).unwrap(), liveness.poller(1).unwrap(), liveness.processor()];
            let mut deadlines = Vec::new();
            for (heart, (at, promise)) in hearts.iter().zip(&beats) {
                heart.beat(start + Duration::from_millis(*at), Duration::from_millis(*promise));
                deadlines.push(at + promise + millis(MIN_SLACK));
            }
            let stall = liveness.stalled(start + Duration::from_millis(probe));
            let first_missed = deadlines
                .iter()
                .enumerate()
                .filter(|(_, deadline)| **deadline < probe)
                .min_by_key(|(_, deadline)| **deadline);
            match first_missed {
                None => prop_assert_eq!(stall, None),
                Some((index, deadline)) => {
                    let stall = stall.unwrap();
                    prop_assert_eq!(stall.overdue, Duration::from_millis(probe - deadline));
                    prop_assert_eq!(Some(&stall.component), hearts[index].component());
                }
            }
        }
    }
}
