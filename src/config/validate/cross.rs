//! Checks across sections: periods against poll intervals, and the MQTT packet limit against the
//! largest message the rest of the configuration can produce.

use super::super::largest::{largest_messages, margin, MessageKind};
use super::ranges::{show, show_bytes};
use super::*;
use crate::logic::window::SHIFT_PERIOD;

impl Validator<'_> {
    /// Every period must be at least the slowest poll interval: a shorter window could pass without a
    /// single poll and be published as empty.
    pub(super) fn periods_cover_polls(&mut self, config: &Config, names: &[String]) {
        let Some((slowest, plc)) = config
            .plcs
            .iter()
            .enumerate()
            .map(|(i, plc)| (plc.poll_interval, i))
            .max()
        else {
            return;
        };
        for p in &config.agent.periods {
            let length = Duration::from_millis(u64::try_from(p.period.nominal_ms()).unwrap_or(0));
            if length < slowest {
                let index = names
                    .iter()
                    .position(|n| n.trim() == p.period.name)
                    .unwrap_or(0);
                self.problem(
                    format!("agent.periods[{index}]"),
                    format!(
                        "period {:?} is shorter than the slowest poll interval (plc[{plc}].poll_interval = {}); every period must be at least that long",
                        p.period.name,
                        show(slowest)
                    ),
                );
            }
        }
    }

    /// A `shift` period needs a `[calendar]`: without one there are no shifts, so it would never
    /// publish a window.
    pub(super) fn shift_period_has_calendar(&mut self, config: &Config, names: &[String]) {
        if config.calendar.is_configured() {
            return;
        }
        for (index, name) in names.iter().enumerate() {
            if name.trim() == SHIFT_PERIOD {
                self.problem(
                    format!("agent.periods[{index}]"),
                    "period \"shift\" needs a [calendar] with shifts; without one it would have no windows",
                );
            }
        }
    }

    /// `mqtt.max_packet_size` must let the largest message through; a limit of 0 means it already has
    /// a problem of its own.
    pub(super) fn packet_limit(&mut self, config: &Config) {
        let limit = config.mqtt.max_packet_size;
        if limit == 0 {
            return;
        }
        let Some(largest) = largest_messages(config).into_iter().next() else {
            return;
        };
        let needed = largest.needs.saturating_add(margin(largest.needs));
        if limit < needed {
            let kind = match largest.kind {
                MessageKind::Rollup => "a rollup",
                MessageKind::Event => "an event",
                MessageKind::Live => "a live message",
                MessageKind::Health => "the health message",
            };
            self.problem(
                "mqtt.max_packet_size",
                format!(
                    "{} is below the largest message this configuration can publish (about {:.1} KiB, {kind} on {}); use at least {}",
                    show_bytes(limit),
                    largest.needs as f64 / 1024.0,
                    largest.topic,
                    show_bytes(suggestion(needed)),
                ),
            );
        }
    }
}

/// The next power-of-two number of KiB at or above `bytes` (a round figure to put in the file).
fn suggestion(bytes: u64) -> u64 {
    bytes
        .div_ceil(1024)
        .next_power_of_two()
        .saturating_mul(1024)
}
