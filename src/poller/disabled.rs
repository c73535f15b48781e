//! Tags disabled after a configuration exception (01/02/03): which are asked for in a cycle (enabled ones and
//! disabled ones whose probe is due), disabling (reported once), and settling a probe: enabled again on the first
//! good answer (reported once), else the next probe further out on the PLC's `retry::RetrySchedule`.

use tracing::{debug, info, warn};

use super::cycle::Poller;
use super::frame::exception_name;
use super::health::{DisabledTag, EnabledTag, PollEvent};
use super::plan::ReadRequest;
use super::TagError;
use crate::logic::Millis;

impl Poller {
    /// The tags of `request` to ask for now: enabled ones, plus disabled ones whose probe is due (also returned
    /// as probes). Disabled tags not due get their `Disabled` error here.
    pub(super) fn live_tags(
        &self,
        request: &ReadRequest,
        at: Millis,
        readings: &mut [Result<Vec<u16>, TagError>],
    ) -> (Vec<usize>, Vec<usize>) {
        let mut live: Vec<usize> = Vec::with_capacity(request.tags.len());
        let mut probes: Vec<usize> = Vec::new();
        for &tag in &request.tags {
            match &self.disabled[tag] {
                Some(disabled) if !self.retry.is_due(at, disabled.next_retry_at) => {
                    readings[tag] = Err(disabled_error(disabled.code));
                }
                Some(_) => {
                    probes.push(tag);
                    live.push(tag);
                }
                None => live.push(tag),
            }
        }
        (live, probes)
    }

    /// A single read of `tag` was refused with a configuration exception: the tag is disabled (reported once),
    /// or, when it already was and this was its probe, it stays disabled.
    pub(super) fn refuse(&mut self, tag: usize, code: u8, at: Millis) {
        if let Some(disabled) = self.disabled[tag].as_mut() {
            disabled.code = code;
            return;
        }
        let address = &self.plan.tags[tag];
        let disabled = DisabledTag {
            tag,
            unit_id: address.unit_id,
            table: address.table,
            address: address.address,
            code,
            at,
            failed_probes: 0,
            next_retry_at: self.retry.next_at(at, 0, rand::random()),
        };
        warn!(
            device = %self.config.id, unit = address.unit_id, table = ?address.table,
            address = address.address, code, retry_in_ms = disabled.next_retry_at - at,
            "Tag refused with {} (a configuration error); it is disabled and probed again with a growing delay.",
            exception_name(code)
        );
        self.last_error = Some(format!(
            "unit {} {:?} address {}: {} (tag disabled)",
            address.unit_id,
            address.table,
            address.address,
            exception_name(code)
        ));
        self.disabled[tag] = Some(disabled.clone());
        self.events.push(PollEvent::TagDisabled(disabled));
    }

    /// After the probes among a request's tags were sent: a tag that read a value is enabled again (reported
    /// once); a broken connection leaves the probe due for the next connection (an idle PLC may have closed
    /// it); any other outcome keeps the tag disabled and schedules its next probe further out.
    pub(super) fn settle_probes(
        &mut self,
        probes: &[usize],
        at: Millis,
        readings: &[Result<Vec<u16>, TagError>],
    ) {
        for &tag in probes {
            let Some(mut disabled) = self.disabled[tag].take() else {
                continue;
            };
            if matches!(readings[tag], Err(TagError::Transport(_))) {
                self.disabled[tag] = Some(disabled);
                continue;
            }
            if readings[tag].is_ok() {
                info!(
                    device = %self.config.id, unit = disabled.unit_id, table = ?disabled.table,
                    address = disabled.address, disabled_ms = at - disabled.at,
                    "Disabled tag answered its probe; it is read every cycle again."
                );
                self.events
                    .push(PollEvent::TagEnabled(EnabledTag { disabled, at }));
                continue;
            }
            disabled.failed_probes = disabled.failed_probes.saturating_add(1);
            disabled.next_retry_at = self
                .retry
                .next_at(at, disabled.failed_probes, rand::random());
            debug!(
                device = %self.config.id, unit = disabled.unit_id, address = disabled.address,
                failed_probes = disabled.failed_probes, retry_in_ms = disabled.next_retry_at - at,
                "Disabled tag still refused."
            );
            self.disabled[tag] = Some(disabled);
        }
    }

    /// The tags disabled right now, for the health board.
    pub(super) fn disabled_tags(&self) -> Vec<DisabledTag> {
        self.disabled.iter().flatten().cloned().collect()
    }
}

/// The reading of a tag that is disabled and not probed in this cycle.
pub(super) fn disabled_error(code: u8) -> TagError {
    TagError::Disabled {
        code,
        name: exception_name(code).into(),
    }
}
