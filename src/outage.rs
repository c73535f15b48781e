//! The log of a peer that stays down (a PLC, a unit behind a gateway, the broker): its adapter logs the
//! transition once, and this bookkeeping says when a summary line is due (every [`SUMMARY_EVERY`] of an
//! unbroken outage: how long, how many failed attempts, the last error), so a long outage never writes a line
//! per retry. Pure: time is an argument (a monotonic `Instant` the caller read), and it logs nothing itself.

use std::fmt;
use std::time::{Duration, Instant};

/// How often a peer that stays down is summarised in the log.
pub const SUMMARY_EVERY: Duration = Duration::from_secs(600);

/// One summary line's figures.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutageSummary {
    /// Since the first failed attempt of the outage.
    pub down_for: Duration,
    /// Failed attempts in the outage so far.
    pub attempts: u64,
    /// The latest attempt's error.
    pub last_error: String,
}

/// A duration as `HH:MM:SS` (hours grow past 24), the way an operator reads an outage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Clock(pub Duration);

impl fmt::Display for Clock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let seconds = self.0.as_secs();
        write!(
            f,
            "{:02}:{:02}:{:02}",
            seconds / 3600,
            seconds / 60 % 60,
            seconds % 60
        )
    }
}

/// The state of one peer's current outage, if it has one.
#[derive(Debug, Default, Clone)]
pub struct OutageLog {
    episode: Option<Episode>,
}

#[derive(Debug, Clone)]
struct Episode {
    since: Instant,
    attempts: u64,
    next_summary: Instant,
}

impl OutageLog {
    /// Records a failed attempt at `now`; returns the summary when one is due (every [`SUMMARY_EVERY`] since
    /// the outage began).
    pub fn failed(&mut self, now: Instant, error: &str) -> Option<OutageSummary> {
        let episode = self.episode.get_or_insert(Episode {
            since: now,
            attempts: 0,
            next_summary: now + SUMMARY_EVERY,
        });
        episode.attempts = episode.attempts.saturating_add(1);
        if now < episode.next_summary {
            return None;
        }
        // After a long sleep (a suspended machine) the next summary is one period from now, not a burst.
        while episode.next_summary <= now {
            episode.next_summary += SUMMARY_EVERY;
        }
        Some(OutageSummary {
            down_for: now.saturating_duration_since(episode.since),
            attempts: episode.attempts,
            last_error: error.to_string(),
        })
    }

    /// Records a successful attempt: the outage, if any, is over; returns how long it lasted.
    pub fn recovered(&mut self, now: Instant) -> Option<Duration> {
        self.episode
            .take()
            .map(|episode| now.saturating_duration_since(episode.since))
    }

    /// True while an outage is being counted.
    pub fn is_down(&self) -> bool {
        self.episode.is_some()
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn an_hour_down_with_a_retry_every_second_gives_six_summaries() {
        // Given a PLC retried every second for one hour,
        let start = Instant::now();
        let mut log = OutageLog::default();
        let summaries: Vec<OutageSummary> = (0..3600u32)
            .filter_map(|second| log.failed(start + SECOND * second, "connection refused"))
            .collect();
        // then the log has a summary every ten minutes, never a line per retry.
        assert_eq!(summaries.len(), 5);
        assert_eq!(summaries[0].down_for, SUMMARY_EVERY);
        assert_eq!(summaries[0].attempts, 601);
        assert_eq!(summaries[4].down_for, SUMMARY_EVERY * 5);
        assert_eq!(summaries[4].last_error, "connection refused");
        assert!(log.failed(start + SECOND * 3600, "refused").is_some());
        assert_eq!(Clock(SECOND * 3600).to_string(), "01:00:00");
        assert_eq!(Clock(SECOND * 90061).to_string(), "25:01:01");
    }

    #[test]
    fn a_recovery_ends_the_outage_and_the_next_one_starts_afresh() {
        let start = Instant::now();
        let mut log = OutageLog::default();
        assert_eq!(log.recovered(start), None);
        assert_eq!(log.failed(start, "timeout"), None);
        assert!(log.is_down());
        assert_eq!(log.recovered(start + SECOND * 30), Some(SECOND * 30));
        assert!(!log.is_down());
        // A new outage waits a whole period for its first summary.
        assert_eq!(log.failed(start + SECOND * 599, "timeout"), None);
        assert_eq!(log.failed(start + SECOND * 1198, "timeout"), None);
        let summary = log.failed(start + SECOND * 1199, "timeout").unwrap();
        assert_eq!((summary.down_for, summary.attempts), (SUMMARY_EVERY, 3));
    }

    #[test]
    fn a_long_gap_between_attempts_gives_one_summary_not_a_burst() {
        let start = Instant::now();
        let mut log = OutageLog::default();
        assert_eq!(log.failed(start, "timeout"), None);
        assert!(log
            .failed(start + SUMMARY_EVERY * 5 + SECOND, "timeout")
            .is_some());
        assert_eq!(
            log.failed(start + SUMMARY_EVERY * 5 + SECOND * 2, "timeout"),
            None
        );
    }

    proptest! {
        /// However the attempts are spaced, an outage of length T gives at most T / SUMMARY_EVERY summaries, and
        /// none in its first period.
        #[test]
        fn summaries_are_at_most_one_per_period(gaps in proptest::collection::vec(0u64..1_800_000, 1..300)) {
            let start = Instant::now();
            let mut log = OutageLog::default();
            let mut elapsed = 0u64;
            let mut summaries = 0u64;
            for gap in gaps {
                elapsed += gap;
                let now = start + Duration::from_millis(elapsed);
                if let Some(summary) = log.failed(now, "x") {
                    summaries += 1;
                    prop_assert!(summary.down_for >= SUMMARY_EVERY);
                }
            }
            let periods = elapsed / u64::try_from(SUMMARY_EVERY.as_millis()).unwrap();
            prop_assert!(summaries <= periods);
        }
    }
}
