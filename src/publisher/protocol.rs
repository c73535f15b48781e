//! Which MQTT version the next connection speaks. `v5` (the default) is tried first; when a broker refuses it
//! at CONNECT, one MQTT 3.1.1 attempt follows at once, and only if that one is accepted does the publisher
//! fall back to 3.1.1 (so a network fault during a v5 CONNECT that is also a fault for the 3.1.1 attempt cannot
//! demote it). A fallback is not for ever: a connection closed before its CONNACK looks the same as a broker
//! without MQTT 5, so after [`V5_RECHECK`] the next connection tries MQTT 5 again. A configured `v4` is never
//! upgraded. Pure: no I/O, no clock (instants are arguments).

use std::time::{Duration, Instant};

use crate::config::MqttProtocol;

/// How long a fallback to MQTT 3.1.1 holds before the next connection tries MQTT 5 again.
pub(in crate::publisher) const V5_RECHECK: Duration = Duration::from_secs(3600);

/// The protocol decision of one publisher run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::publisher) struct ProtocolChoice {
    configured: MqttProtocol,
    /// The protocol of the next attempt.
    next: MqttProtocol,
    /// True after the broker refused MQTT 5 and accepted MQTT 3.1.1.
    fell_back: bool,
    /// When the latest fallback was decided; MQTT 5 is tried again [`V5_RECHECK`] later.
    fell_back_at: Option<Instant>,
}

/// What a connection attempt's outcome changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProtocolStep {
    /// Nothing changed: back off and try the same protocol again.
    Same,
    /// MQTT 5 was refused at CONNECT: try MQTT 3.1.1 at once (no backoff).
    ProbeV4,
    /// The MQTT 3.1.1 probe was accepted: the run speaks 3.1.1 (announce it once).
    FellBack,
    /// After a fallback, MQTT 5 was tried again and accepted (announce it once).
    BackToV5,
}

impl ProtocolChoice {
    /// Starts with the configured protocol.
    pub(super) fn new(configured: MqttProtocol) -> Self {
        Self {
            configured,
            next: configured,
            fell_back: false,
            fell_back_at: None,
        }
    }

    /// Called before each connection attempt: once a fallback is [`V5_RECHECK`] old, the attempt speaks
    /// MQTT 5 again.
    pub(super) fn before_attempt(&mut self, now: Instant) {
        let due = self
            .fell_back_at
            .is_some_and(|at| now.saturating_duration_since(at) >= V5_RECHECK);
        if self.configured == MqttProtocol::V5 && self.next == MqttProtocol::V4 && due {
            self.next = MqttProtocol::V5;
        }
    }

    /// The protocol the next connection attempt speaks.
    pub(super) fn next(&self) -> MqttProtocol {
        self.next
    }

    /// True once the broker refused MQTT 5 and the run speaks MQTT 3.1.1 instead.
    pub(super) fn fell_back(&self) -> bool {
        self.fell_back
    }

    /// A connection attempt with [`Self::next`] got its CONNACK at `now`.
    pub(super) fn on_connected(&mut self, now: Instant) -> ProtocolStep {
        if self.configured != MqttProtocol::V5 {
            return ProtocolStep::Same;
        }
        match (self.next, self.fell_back) {
            (MqttProtocol::V4, false) => {
                self.fell_back = true;
                self.fell_back_at = Some(now);
                ProtocolStep::FellBack
            }
            // A recheck found the broker still without MQTT 5: the fallback holds for another while.
            (MqttProtocol::V4, true) => {
                self.fell_back_at = Some(now);
                ProtocolStep::Same
            }
            (MqttProtocol::V5, true) => {
                self.fell_back = false;
                self.fell_back_at = None;
                ProtocolStep::BackToV5
            }
            (MqttProtocol::V5, false) => ProtocolStep::Same,
        }
    }

    /// A connection attempt with [`Self::next`] failed before its CONNACK; `v5_refused` says whether the error
    /// looks like a broker that does not speak MQTT 5 (see `LinkError::is_v5_refusal`).
    pub(super) fn on_connect_failed(&mut self, v5_refused: bool) -> ProtocolStep {
        match (self.configured, self.next, self.fell_back) {
            (MqttProtocol::V5, MqttProtocol::V5, _) if v5_refused => {
                self.next = MqttProtocol::V4;
                ProtocolStep::ProbeV4
            }
            // The 3.1.1 probe failed too: the problem is not the protocol version (after a fallback, 3.1.1 stays
            // until its recheck is due).
            (MqttProtocol::V5, MqttProtocol::V4, false) => {
                self.next = MqttProtocol::V5;
                ProtocolStep::Same
            }
            _ => ProtocolStep::Same,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_v5_refused_when_the_v4_probe_connects_then_the_run_stays_on_v4() {
        let mut choice = ProtocolChoice::new(MqttProtocol::V5);
        assert_eq!(choice.next(), MqttProtocol::V5);
        let t0 = Instant::now();
        assert_eq!(choice.on_connect_failed(true), ProtocolStep::ProbeV4);
        assert_eq!(choice.next(), MqttProtocol::V4);
        assert_eq!(choice.on_connected(t0), ProtocolStep::FellBack);
        assert!(choice.fell_back());
        // Later outages before the recheck keep 3.1.1 and announce nothing again.
        choice.before_attempt(t0 + V5_RECHECK / 2);
        assert_eq!(choice.on_connect_failed(false), ProtocolStep::Same);
        assert_eq!(choice.on_connected(t0 + V5_RECHECK / 2), ProtocolStep::Same);
        assert_eq!(choice.next(), MqttProtocol::V4);
    }

    #[test]
    fn given_a_fallback_when_the_recheck_is_due_then_mqtt5_is_tried_again_and_kept_if_accepted() {
        let mut choice = ProtocolChoice::new(MqttProtocol::V5);
        let t0 = Instant::now();
        choice.on_connect_failed(true);
        assert_eq!(choice.on_connected(t0), ProtocolStep::FellBack);
        choice.before_attempt(t0 + V5_RECHECK - Duration::from_secs(1));
        assert_eq!(choice.next(), MqttProtocol::V4);
        choice.before_attempt(t0 + V5_RECHECK);
        assert_eq!(choice.next(), MqttProtocol::V5);
        // The broker speaks MQTT 5 after all (the first refusal was a connection lost during CONNECT).
        assert_eq!(choice.on_connected(t0 + V5_RECHECK), ProtocolStep::BackToV5);
        assert!(!choice.fell_back());
        assert_eq!(choice.next(), MqttProtocol::V5);
    }

    #[test]
    fn given_a_fallback_when_the_recheck_is_refused_again_then_3_1_1_holds_for_another_while_quietly(
    ) {
        let mut choice = ProtocolChoice::new(MqttProtocol::V5);
        let t0 = Instant::now();
        choice.on_connect_failed(true);
        choice.on_connected(t0);
        let t1 = t0 + V5_RECHECK;
        choice.before_attempt(t1);
        assert_eq!(choice.on_connect_failed(true), ProtocolStep::ProbeV4);
        assert_eq!(choice.on_connected(t1), ProtocolStep::Same);
        assert!(choice.fell_back());
        choice.before_attempt(t1 + V5_RECHECK / 2);
        assert_eq!(choice.next(), MqttProtocol::V4);
        choice.before_attempt(t1 + V5_RECHECK);
        assert_eq!(choice.next(), MqttProtocol::V5);
    }

    #[test]
    fn given_a_network_fault_during_v5_connect_when_the_v4_probe_fails_too_then_v5_is_tried_again()
    {
        let mut choice = ProtocolChoice::new(MqttProtocol::V5);
        assert_eq!(choice.on_connect_failed(true), ProtocolStep::ProbeV4);
        assert_eq!(choice.on_connect_failed(false), ProtocolStep::Same);
        assert_eq!(choice.next(), MqttProtocol::V5);
        assert!(!choice.fell_back());
        assert_eq!(choice.on_connected(Instant::now()), ProtocolStep::Same);
    }

    #[test]
    fn given_v4_configured_when_anything_happens_then_it_stays_v4_without_fallback() {
        let mut choice = ProtocolChoice::new(MqttProtocol::V4);
        assert_eq!(choice.on_connect_failed(true), ProtocolStep::Same);
        choice.before_attempt(Instant::now() + 2 * V5_RECHECK);
        assert_eq!(choice.on_connected(Instant::now()), ProtocolStep::Same);
        assert_eq!(choice.next(), MqttProtocol::V4);
        assert!(!choice.fell_back());
    }
}
