//! Which MQTT version the next connection speaks. `v5` (the default) is tried first; when a broker refuses it
//! at CONNECT, one MQTT 3.1.1 attempt follows at once, and only if that one is accepted does the publisher stay
//! on 3.1.1 for the rest of the run (so a network fault during a v5 CONNECT cannot demote it). A configured
//! `v4` is never upgraded. Pure: no I/O, no clock.

use crate::config::MqttProtocol;

/// The protocol decision of one publisher run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(in crate::publisher) struct ProtocolChoice {
    configured: MqttProtocol,
    /// The protocol of the next attempt.
    next: MqttProtocol,
    /// True after the broker refused MQTT 5 and accepted MQTT 3.1.1.
    fell_back: bool,
}

/// What a connection attempt's outcome changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ProtocolStep {
    /// Nothing changed: back off and try the same protocol again.
    Same,
    /// MQTT 5 was refused at CONNECT: try MQTT 3.1.1 at once (no backoff).
    ProbeV4,
    /// The MQTT 3.1.1 probe was accepted: this run stays on 3.1.1 (announce it once).
    FellBack,
}

impl ProtocolChoice {
    /// Starts with the configured protocol.
    pub(super) fn new(configured: MqttProtocol) -> Self {
        Self {
            configured,
            next: configured,
            fell_back: false,
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

    /// A connection attempt with [`Self::next`] got its CONNACK.
    pub(super) fn on_connected(&mut self) -> ProtocolStep {
        let probing = self.configured == MqttProtocol::V5 && self.next == MqttProtocol::V4;
        if probing && !self.fell_back {
            self.fell_back = true;
            return ProtocolStep::FellBack;
        }
        ProtocolStep::Same
    }

    /// A connection attempt with [`Self::next`] failed before its CONNACK; `v5_refused` says whether the error
    /// looks like a broker that does not speak MQTT 5 (see `LinkError::is_v5_refusal`).
    pub(super) fn on_connect_failed(&mut self, v5_refused: bool) -> ProtocolStep {
        match (self.configured, self.next, self.fell_back) {
            (MqttProtocol::V5, MqttProtocol::V5, _) if v5_refused => {
                self.next = MqttProtocol::V4;
                ProtocolStep::ProbeV4
            }
            // The 3.1.1 probe failed too: the problem is not the protocol version.
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
        assert_eq!(choice.on_connect_failed(true), ProtocolStep::ProbeV4);
        assert_eq!(choice.next(), MqttProtocol::V4);
        assert_eq!(choice.on_connected(), ProtocolStep::FellBack);
        assert!(choice.fell_back());
        // Later outages keep 3.1.1 and announce nothing again.
        assert_eq!(choice.on_connect_failed(false), ProtocolStep::Same);
        assert_eq!(choice.on_connected(), ProtocolStep::Same);
        assert_eq!(choice.next(), MqttProtocol::V4);
    }

    #[test]
    fn given_a_network_fault_during_v5_connect_when_the_v4_probe_fails_too_then_v5_is_tried_again()
    {
        let mut choice = ProtocolChoice::new(MqttProtocol::V5);
        assert_eq!(choice.on_connect_failed(true), ProtocolStep::ProbeV4);
        assert_eq!(choice.on_connect_failed(false), ProtocolStep::Same);
        assert_eq!(choice.next(), MqttProtocol::V5);
        assert!(!choice.fell_back());
        assert_eq!(choice.on_connected(), ProtocolStep::Same);
    }

    #[test]
    fn given_v4_configured_when_anything_happens_then_it_stays_v4_without_fallback() {
        let mut choice = ProtocolChoice::new(MqttProtocol::V4);
        assert_eq!(choice.on_connect_failed(true), ProtocolStep::Same);
        assert_eq!(choice.on_connected(), ProtocolStep::Same);
        assert_eq!(choice.next(), MqttProtocol::V4);
        assert!(!choice.fell_back());
    }
}
