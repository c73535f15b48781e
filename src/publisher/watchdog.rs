//! Application watchdog of one connection: decides when the link must be rebuilt because nothing progresses.
//!
//! rumqttc's keep-alive only works while its event loop runs; a half-open connection whose send buffer is full
//! blocks that loop inside a flush, and a broker that answers pings but never acknowledges publishes keeps it
//! "alive" for ever. So we watch two clocks, each limited to 2 × keep-alive + connect timeout:
//! - silence: no packet in or out at all (only while keep-alive is on; with it off an idle link is silent);
//! - no progress: publishes are awaiting their PUBACK and none has arrived.
//!
//! Pure: time is an argument; the session owns the timer.

use std::time::{Duration, Instant};

/// Why the watchdog wants the connection rebuilt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stall {
    /// No packet in or out for this long.
    Silent(Duration),
    /// Publishes outstanding and no PUBACK for this long.
    NoAck(Duration),
}

impl Stall {
    /// A short description for logs and errors.
    pub(crate) fn describe(self) -> String {
        match self {
            Stall::Silent(idle) => format!("no packet in or out for {idle:?}"),
            Stall::NoAck(idle) => format!("publishes in flight and no PUBACK for {idle:?}"),
        }
    }
}

/// Progress tracker of one connection.
#[derive(Debug, Clone)]
pub(crate) struct Watchdog {
    limit: Duration,
    watch_silence: bool,
    last_activity: Instant,
    /// Since when publishes have been waiting without any PUBACK arriving; `None` when nothing is in flight.
    waiting_since: Option<Instant>,
}

impl Watchdog {
    /// A watchdog allowing `2 × keep_alive + connect_timeout` without progress; silence is only watched when
    /// keep-alive is on (otherwise an idle connection legitimately sends nothing).
    pub(crate) fn new(keep_alive: Duration, connect_timeout: Duration, now: Instant) -> Self {
        Self {
            limit: keep_alive.saturating_mul(2).saturating_add(connect_timeout),
            watch_silence: !keep_alive.is_zero(),
            last_activity: now,
            waiting_since: None,
        }
    }

    /// Any packet went out or came in.
    pub(crate) fn on_activity(&mut self, now: Instant) {
        self.last_activity = now;
    }

    /// A publish was handed to the client; the no-ack clock starts if nothing was waiting yet.
    pub(crate) fn on_submit(&mut self, now: Instant) {
        self.waiting_since.get_or_insert(now);
    }

    /// A PUBACK arrived; `still_waiting` tells whether other publishes remain unacknowledged.
    pub(crate) fn on_ack(&mut self, now: Instant, still_waiting: bool) {
        self.waiting_since = still_waiting.then_some(now);
    }

    /// When the watchdog fires if nothing happens before; `None` while no clock runs (keep-alive off and
    /// nothing in flight).
    pub(crate) fn deadline(&self) -> Option<Instant> {
        let silence = self
            .watch_silence
            .then(|| self.last_activity.checked_add(self.limit))
            .flatten();
        let no_ack = self
            .waiting_since
            .and_then(|since| since.checked_add(self.limit));
        match (silence, no_ack) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (Some(a), None) | (None, Some(a)) => Some(a),
            (None, None) => None,
        }
    }

    /// `Some` when the connection has made no progress for the whole limit (fires exactly at `deadline`).
    pub(crate) fn check(&self, now: Instant) -> Option<Stall> {
        if let Some(since) = self.waiting_since {
            let idle = now.saturating_duration_since(since);
            if idle >= self.limit {
                return Some(Stall::NoAck(idle));
            }
        }
        let idle = now.saturating_duration_since(self.last_activity);
        (self.watch_silence && idle >= self.limit).then_some(Stall::Silent(idle))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn given_regular_pings_and_no_publishes_when_time_passes_then_it_never_fires() {
        let start = Instant::now();
        let mut watchdog = Watchdog::new(5 * SECOND, 2 * SECOND, start);
        for tick in 1..100 {
            let now = start + tick * 5 * SECOND;
            watchdog.on_activity(now);
            assert_eq!(watchdog.check(now + SECOND), None);
        }
    }

    #[test]
    fn given_a_silent_link_when_the_limit_passes_then_it_fires_as_silent() {
        let start = Instant::now();
        let watchdog = Watchdog::new(5 * SECOND, 2 * SECOND, start);
        assert_eq!(watchdog.deadline(), Some(start + 12 * SECOND));
        assert_eq!(
            watchdog.check(start + 12 * SECOND - Duration::from_millis(1)),
            None
        );
        assert_eq!(
            watchdog.check(start + 12 * SECOND),
            Some(Stall::Silent(12 * SECOND))
        );
    }

    #[test]
    fn given_pings_but_no_puback_when_the_limit_passes_then_it_fires_as_no_ack() {
        let start = Instant::now();
        let mut watchdog = Watchdog::new(SECOND, SECOND, start);
        watchdog.on_submit(start);
        // A later submit does not restart the clock, pings keep the link "alive".
        watchdog.on_submit(start + SECOND);
        watchdog.on_activity(start + 2 * SECOND);
        watchdog.on_activity(start + 3 * SECOND);
        assert_eq!(watchdog.deadline(), Some(start + 3 * SECOND));
        assert_eq!(
            watchdog.check(start + 3500 * Duration::from_millis(1)),
            Some(Stall::NoAck(3500 * Duration::from_millis(1)))
        );
    }

    #[test]
    fn given_acks_that_keep_coming_when_publishes_stay_outstanding_then_it_does_not_fire() {
        let start = Instant::now();
        let mut watchdog = Watchdog::new(SECOND, SECOND, start);
        watchdog.on_submit(start);
        for tick in 1..50 {
            let now = start + tick * 2 * SECOND;
            watchdog.on_activity(now);
            watchdog.on_ack(now, true);
            assert_eq!(watchdog.check(now + 2 * SECOND), None);
        }
        // Once nothing is waiting, only silence counts.
        let last = start + 100 * SECOND;
        watchdog.on_activity(last);
        watchdog.on_ack(last, false);
        assert_eq!(watchdog.deadline(), Some(last + 3 * SECOND));
    }

    #[test]
    fn given_keep_alive_off_when_idle_for_long_then_only_unacknowledged_publishes_fire() {
        let start = Instant::now();
        let mut watchdog = Watchdog::new(Duration::ZERO, 2 * SECOND, start);
        assert_eq!(watchdog.deadline(), None);
        assert_eq!(watchdog.check(start + 60 * SECOND), None);
        watchdog.on_submit(start + 60 * SECOND);
        assert_eq!(
            watchdog.check(start + 63 * SECOND),
            Some(Stall::NoAck(3 * SECOND))
        );
    }
}
