//! The sane range of every duration and size in the configuration, and the checks that keep the
//! runtime's clock arithmetic (tokio deadlines, backoff doubling, millisecond casts) far from overflow.
//! `config/example.toml` documents the same ranges next to each key.

use std::time::Duration;

use super::super::{parse_bytes, parse_duration};
use super::Validator;
use crate::logic::window::Period;

/// Inclusive bounds of a configured duration.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) min: Duration,
    pub(super) max: Duration,
}

const fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

const fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

const HOUR: u64 = 3_600;
const DAY: u64 = 24 * HOUR;

/// `[[plc]] poll_interval`.
pub(super) const POLL_INTERVAL: Span = Span {
    min: ms(10),
    max: secs(HOUR),
};
/// `[[plc]] timeout` (also at most ten poll intervals).
pub(super) const PLC_TIMEOUT: Span = Span {
    min: ms(10),
    max: secs(600),
};
/// `[[plc]] backoff_max`.
pub(super) const BACKOFF_MAX: Span = Span {
    min: ms(10),
    max: secs(HOUR),
};
/// `[[plc]] pause_between_requests` (zero allowed; also shorter than the poll interval).
pub(super) const PAUSE: Span = Span {
    min: Duration::ZERO,
    max: secs(60),
};
/// `[[plc]] unit_backoff`.
pub(super) const UNIT_BACKOFF: Span = Span {
    min: ms(10),
    max: secs(DAY),
};
/// `[[plc]] disabled_retry` and `disabled_retry_max`.
pub(super) const DISABLED_RETRY: Span = Span {
    min: ms(100),
    max: secs(DAY),
};
/// A counter's `t_max`: at least one poll of the fastest PLC, at most a day.
pub(super) const COUNTER_T_MAX: Span = Span {
    min: ms(10),
    max: secs(DAY),
};
/// `[agent] live_interval` and `health_interval`.
pub(super) const PUBLISH_INTERVAL: Span = Span {
    min: ms(100),
    max: secs(HOUR),
};
/// `[agent] restatement_horizon`.
pub(super) const RESTATEMENT_HORIZON: Span = Span {
    min: secs(1),
    max: secs(365 * DAY),
};
/// `[store] commit_interval` (zero: one transaction per poll cycle).
pub(super) const COMMIT_INTERVAL: Span = Span {
    min: Duration::ZERO,
    max: secs(60),
};
/// `[machine] ideal_cycle_time`.
pub(super) const IDEAL_CYCLE_TIME: Span = Span {
    min: ms(1),
    max: secs(DAY),
};
/// `[mqtt] keep_alive`: MQTT carries it as a 16-bit number of seconds.
pub(super) const KEEP_ALIVE: Span = Span {
    min: secs(5),
    max: secs(u16::MAX as u64),
};
/// `[mqtt] connect_timeout`: the client counts it in whole seconds.
pub(super) const CONNECT_TIMEOUT: Span = Span {
    min: secs(1),
    max: secs(600),
};
/// `[mqtt] reconnect_max`: at least a second, so a fleet's attempts stay spread; at most ten minutes, so a
/// returned broker is found within them.
pub(super) const RECONNECT_MAX: Span = Span {
    min: secs(1),
    max: secs(600),
};
/// Shortest grace of a period; the longest is the period itself.
pub(super) const MIN_GRACE: Duration = ms(1);

/// Inclusive bounds of a configured size in bytes.
#[derive(Debug, Clone, Copy)]
pub(super) struct Sizes {
    pub(super) min: u64,
    pub(super) max: u64,
}

/// `[store] max_bytes`.
pub(super) const STORE_MAX_BYTES: Sizes = Sizes {
    min: 128 << 10,
    max: 16 << 40,
};
/// `[mqtt] max_packet_size`: MQTT's remaining length is at most 268,435,455 bytes.
pub(super) const MAX_PACKET_SIZE: Sizes = Sizes {
    min: 1 << 10,
    max: 268_435_455,
};

/// Renders a duration the way the file writes it, in its largest whole unit ("10ms", "1h", "65535s").
pub(super) fn show(duration: Duration) -> String {
    let secs = duration.as_secs();
    if duration.subsec_nanos() != 0 || secs == 0 {
        return humantime::format_duration(duration).to_string();
    }
    for (unit, name) in [(DAY, "d"), (HOUR, "h"), (60, "m")] {
        if secs.is_multiple_of(unit) {
            return format!("{}{name}", secs / unit);
        }
    }
    format!("{secs}s")
}

/// Renders a size in the largest binary unit that divides it ("1KiB", "256MiB", "1500B").
pub(super) fn show_bytes(bytes: u64) -> String {
    for (shift, unit) in [(40, "TiB"), (30, "GiB"), (20, "MiB"), (10, "KiB")] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{}{unit}", bytes >> shift);
        }
    }
    format!("{bytes}B")
}

impl Validator<'_> {
    /// Parses a duration and checks it against `span`; `None` (with a problem recorded) when it is
    /// not a duration or out of range.
    pub(super) fn duration_in(&mut self, path: &str, text: &str, span: Span) -> Option<Duration> {
        match parse_duration(text) {
            Ok(value) if value >= span.min && value <= span.max => Some(value),
            Ok(_) => {
                self.problem(
                    path,
                    format!(
                        "{text:?} must be between {} and {}",
                        show(span.min),
                        show(span.max)
                    ),
                );
                None
            }
            Err(message) => {
                self.problem(path, message);
                None
            }
        }
    }

    /// Parses a size and checks it against `sizes`; `None` (with a problem recorded) when it is not
    /// a size or out of range.
    pub(super) fn size_in(&mut self, path: &str, text: &str, sizes: Sizes) -> Option<u64> {
        match parse_bytes(text) {
            Ok(value) if value >= sizes.min && value <= sizes.max => Some(value),
            Ok(_) => {
                self.problem(
                    path,
                    format!(
                        "{text:?} must be between {} and {}",
                        show_bytes(sizes.min),
                        show_bytes(sizes.max)
                    ),
                );
                None
            }
            Err(message) => {
                self.problem(path, message);
                None
            }
        }
    }
}

/// A PLC's validated durations (each falls back to a value in range when it has a problem).
pub(super) struct PlcTiming {
    pub(super) poll_interval: Duration,
    pub(super) timeout: Duration,
    pub(super) backoff_max: Duration,
    pub(super) pause_between_requests: Duration,
    pub(super) unit_backoff: Duration,
}

impl Validator<'_> {
    /// Checks a PLC's durations, each in its range, plus how they relate: the timeout is at most ten
    /// poll intervals and the pause between requests is shorter than the poll interval.
    pub(super) fn plc_timing(&mut self, path: &str, raw: &super::RawPlc) -> PlcTiming {
        let poll = self.duration_in(
            &format!("{path}.poll_interval"),
            &raw.poll_interval,
            POLL_INTERVAL,
        );
        let timeout = self.duration_in(&format!("{path}.timeout"), &raw.timeout, PLC_TIMEOUT);
        let pause = self.duration_in(
            &format!("{path}.pause_between_requests"),
            &raw.pause_between_requests,
            PAUSE,
        );
        if let (Some(poll), Some(timeout)) = (poll, timeout) {
            if timeout > poll.saturating_mul(10) {
                self.problem(
                    format!("{path}.timeout"),
                    format!(
                        "{:?} must not exceed ten poll intervals ({path}.poll_interval = {})",
                        raw.timeout,
                        show(poll)
                    ),
                );
            }
        }
        if let (Some(poll), Some(pause)) = (poll, pause) {
            if !pause.is_zero() && pause >= poll {
                self.problem(
                    format!("{path}.pause_between_requests"),
                    format!(
                        "{:?} must be shorter than the poll interval ({path}.poll_interval = {})",
                        raw.pause_between_requests,
                        show(poll)
                    ),
                );
            }
        }
        PlcTiming {
            // The shortest fallback raises no follow-up problem about periods.
            poll_interval: poll.unwrap_or(POLL_INTERVAL.min),
            timeout: timeout.unwrap_or(PLC_TIMEOUT.min),
            backoff_max: self
                .duration_in(
                    &format!("{path}.backoff_max"),
                    &raw.backoff_max,
                    BACKOFF_MAX,
                )
                .unwrap_or(BACKOFF_MAX.max),
            pause_between_requests: pause.unwrap_or(Duration::ZERO),
            unit_backoff: self
                .duration_in(
                    &format!("{path}.unit_backoff"),
                    &raw.unit_backoff,
                    UNIT_BACKOFF,
                )
                .unwrap_or(UNIT_BACKOFF.max),
        }
    }

    /// A period's grace: at least [`MIN_GRACE`], at most the period itself (a longer grace would keep
    /// more than two windows of the period open at once).
    pub(super) fn grace(&mut self, name: &str, text: &str, period: &Period) -> Duration {
        let length = Duration::from_millis(u64::try_from(period.nominal_ms()).unwrap_or(0));
        let span = Span {
            min: MIN_GRACE,
            max: length,
        };
        let path = format!("agent.grace.{name}");
        match parse_duration(text) {
            Ok(grace) if grace > length => {
                self.problem(
                    path,
                    format!("{text:?} is longer than its period ({name}); use at most {name}"),
                );
                length
            }
            _ => self.duration_in(&path, text, span).unwrap_or(length),
        }
    }
}
