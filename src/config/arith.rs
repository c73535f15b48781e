//! Saturating arithmetic on configured durations that cannot panic: tokio's `Instant + Duration` panics on
//! overflow and `as_millis() as i64` would wrap. Validation keeps every duration in a sane range; these
//! keep the runtime safe even so.

use std::time::Duration;

use tokio::time::Instant;

/// How far away a deadline that would overflow the clock is put instead: about a century.
const FAR_AWAY: Duration = Duration::from_secs(100 * 365 * 24 * 3_600);

/// `from + after`, or a deadline about a century away when that sum does not fit the clock.
pub fn deadline_after(from: Instant, after: Duration) -> Instant {
    from.checked_add(after)
        .or_else(|| from.checked_add(FAR_AWAY))
        .unwrap_or(from)
}

/// Whole milliseconds of `duration`, saturating at `i64::MAX`.
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_durations_saturate_instead_of_panicking() {
        let now = Instant::now();
        assert_eq!(
            deadline_after(now, Duration::from_secs(1)),
            now + Duration::from_secs(1)
        );
        assert!(deadline_after(now, Duration::MAX) > now + Duration::from_secs(3_600));
        assert_eq!(millis(Duration::from_millis(1_500)), 1_500);
        assert_eq!(millis(Duration::MAX), i64::MAX);
    }
}
