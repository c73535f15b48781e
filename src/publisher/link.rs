//! The MQTT wire, protocol-neutral: builds a FRESH rumqttc client and event loop (MQTT 3.1.1 or 5) for one
//! connection, drives the event loop in a task of its own and turns rumqttc's events into [`LinkEvent`]s, so the
//! session never sees which protocol is spoken. It also owns the protocol facts: the exact size of a PUBLISH
//! packet, how MQTT 5 PUBACK reason codes are classified, and which connection errors mean "the broker refused
//! MQTT 5 at CONNECT" or "the broker closed the connection". It keeps no delivery state. With MQTT 3.1.1 it also
//! subscribes to the topics rows go to and reports what comes back ([`LinkEvent::Echo`]): 3.1.1 has no way to
//! report a refused publish, so reading our own rows back is the only evidence the broker took them.

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::PubAckReason;
use rumqttc::{v5, NetworkOptions, Outgoing, QoS};
use tokio::sync::mpsc;
use tokio_util::task::AbortOnDropHandle;

use super::PublisherConfig;
use crate::config::MqttProtocol;
use crate::tls::{self, Secret, TlsError, UplinkFailure};

/// Events buffered between the event-loop task and the session (bounded: the task waits when full).
const EVENT_QUEUE: usize = 256;
/// Request-channel slots beyond `max_inflight`: the offline status and DISCONNECT at shutdown.
const REQUEST_HEADROOM: usize = 4;
/// Largest packet we accept from the broker (we only receive acknowledgements).
const MAX_INCOMING_BYTES: usize = 1024 * 1024;
/// rumqttc's MQTT 5 client refuses keep-alives below five seconds.
const V5_MIN_KEEP_ALIVE: Duration = Duration::from_secs(5);

/// How long a row may wait, after its PUBACK, for its MQTT 3.1.1 read-back before it counts as not delivered.
/// Generous: a loaded broker on a loaded machine may take seconds.
pub(super) const MIN_ECHO_WAIT: Duration = Duration::from_secs(5);

/// Whether the broker took responsibility for a QoS 1 publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckOutcome {
    /// PUBACK with a success code (always so in MQTT 3.1.1): the broker has the message.
    Accepted,
    /// MQTT 5 PUBACK with a failure reason code: the broker did NOT take the message.
    Refused(Refusal),
}

/// Why the broker did not take a row: an MQTT 5 PUBACK failure reason, or (MQTT 3.1.1) no read-back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusal {
    /// The MQTT 5 reason code byte (0x80 and above); `None` when no PUBACK said it (MQTT 3.1.1).
    pub code: Option<u8>,
    /// The reason's name in the MQTT 5 specification, snake case, or [`NOT_READ_BACK`]'s.
    pub reason: &'static str,
}

/// MQTT 3.1.1: the broker acknowledged a row but did not deliver it back to our own subscription on its topic
/// within the wait (the broker's ACL denies us writing, or reading, that topic).
pub const NOT_READ_BACK: Refusal = Refusal {
    code: None,
    reason: "not_read_back",
};

/// Classifies an MQTT 5 PUBACK reason: success and "no matching subscribers" (0x10, the broker still has the
/// message) are accepted; every code ≥ 0x80 is a refusal that must not retire the row.
pub fn classify_v5_puback(reason: PubAckReason) -> AckOutcome {
    let refused = |code, reason| {
        AckOutcome::Refused(Refusal {
            code: Some(code),
            reason,
        })
    };
    match reason {
        PubAckReason::Success | PubAckReason::NoMatchingSubscribers => AckOutcome::Accepted,
        PubAckReason::UnspecifiedError => refused(0x80, "unspecified_error"),
        PubAckReason::ImplementationSpecificError => refused(0x83, "implementation_specific_error"),
        PubAckReason::NotAuthorized => refused(0x87, "not_authorized"),
        PubAckReason::TopicNameInvalid => refused(0x90, "topic_name_invalid"),
        PubAckReason::PacketIdentifierInUse => refused(0x91, "packet_identifier_in_use"),
        PubAckReason::QuotaExceeded => refused(0x97, "quota_exceeded"),
        PubAckReason::PayloadFormatInvalid => refused(0x99, "payload_format_invalid"),
    }
}

/// Size in bytes of a QoS 1 PUBLISH packet without properties, as brokers compare it with their
/// maximum packet size: fixed header, remaining-length varint, topic, packet id, (v5: property length), payload.
pub fn publish_packet_size(protocol: MqttProtocol, topic_len: usize, payload_len: usize) -> u64 {
    let properties = match protocol {
        MqttProtocol::V4 => 0,
        MqttProtocol::V5 => 1,
    };
    let remaining = (2 + topic_len + 2 + properties + payload_len) as u64;
    let varint = match remaining {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    };
    1 + varint + remaining
}

/// What the session needs to know about the connection, whichever protocol carries it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum LinkEvent {
    /// The broker accepted the connection; MQTT 5 brokers may announce their maximum packet size.
    ConnAck { max_packet_size: Option<u32> },
    /// A publish was written to the network under this packet id.
    PublishSent(u16),
    /// A PUBACK arrived.
    PubAck { pkid: u16, outcome: AckOutcome },
    /// Our DISCONNECT was written.
    DisconnectSent,
    /// MQTT 3.1.1: the broker delivered a publish on `topic` to our own subscription; `digest` identifies the
    /// payload (see [`payload_digest`]).
    Echo { topic: String, digest: u64 },
    /// A SUBACK arrived; `granted` is false when the broker refused the subscription.
    SubAck { granted: bool },
    /// Anything else (pings, ...): counts only as activity.
    Other,
}

/// A connection error from either protocol's event loop.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    /// MQTT 3.1.1.
    #[error(transparent)]
    V4(#[from] rumqttc::ConnectionError),
    /// MQTT 5.
    #[error(transparent)]
    V5(#[from] v5::ConnectionError),
}

impl LinkError {
    /// True when an MQTT 5 CONNECT ended in a way a broker that does not speak MQTT 5 produces: CONNACK
    /// "unsupported protocol version" (0x84), or the connection closed or garbled before any CONNACK (an MQTT
    /// 3.1.1 broker answers with a 3.1.1 CONNACK or just closes). A refused TCP connect or a timeout is not.
    pub fn is_v5_refusal(&self) -> bool {
        use v5::mqttbytes::v5::ConnectReturnCode;
        match self {
            LinkError::V4(_) => false,
            LinkError::V5(v5::ConnectionError::ConnectionRefused(code)) => {
                matches!(
                    code,
                    ConnectReturnCode::UnsupportedProtocolVersion
                        | ConnectReturnCode::RefusedProtocolVersion
                )
            }
            LinkError::V5(v5::ConnectionError::NotConnAck(_)) => true,
            LinkError::V5(v5::ConnectionError::MqttState(
                v5::StateError::ConnectionAborted | v5::StateError::Deserialization(_),
            )) => true,
            LinkError::V5(_) => closed_by_peer(self),
        }
    }

    /// True when the broker ended the connection (EOF, reset, or an MQTT 5 DISCONNECT) rather than a timeout,
    /// our own bookkeeping or a refused TCP connect.
    pub fn is_closed_by_broker(&self) -> bool {
        match self {
            LinkError::V4(rumqttc::ConnectionError::MqttState(
                rumqttc::StateError::ConnectionAborted,
            ))
            | LinkError::V5(v5::ConnectionError::MqttState(
                v5::StateError::ConnectionAborted | v5::StateError::ServerDisconnect { .. },
            )) => true,
            _ => closed_by_peer(self),
        }
    }
}

impl LinkError {
    /// The named cause when this is a TLS handshake failure or a CONNACK that refused the login;
    /// `has_client_cert` tells a missing client certificate from a refused one. `None` for anything else.
    pub fn uplink_failure(&self, has_client_cert: bool) -> Option<UplinkFailure> {
        use rumqttc::ConnectReturnCode as V4Code;
        use v5::mqttbytes::v5::ConnectReturnCode as V5Code;
        match self {
            LinkError::V4(rumqttc::ConnectionError::ConnectionRefused(
                V4Code::BadUserNamePassword | V4Code::NotAuthorized,
            ))
            | LinkError::V5(v5::ConnectionError::ConnectionRefused(
                V5Code::BadUserNamePassword
                | V5Code::NotAuthorized
                | V5Code::BadAuthenticationMethod,
            )) => Some(UplinkFailure::BadCredentials),
            // rumqttc's MQTT 5 state error does not expose its decoding error as a source, and a TLS alert
            // that arrives while the CONNACK is read (TLS 1.3 checks the client certificate after the
            // handshake) travels inside it.
            LinkError::V5(v5::ConnectionError::MqttState(v5::StateError::Deserialization(
                inner,
            ))) => tls::classify_tls_error(inner, has_client_cert),
            _ => tls::classify_tls_error(self, has_client_cert),
        }
    }
}

/// Whether an I/O error somewhere in the cause chain says the peer closed or reset the connection (rumqttc
/// wraps it at different depths depending on whether it happened reading, writing or decoding).
fn closed_by_peer(error: &(dyn std::error::Error + 'static)) -> bool {
    use std::io::ErrorKind;
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                ErrorKind::ConnectionReset
                    | ErrorKind::ConnectionAborted
                    | ErrorKind::UnexpectedEof
                    | ErrorKind::BrokenPipe
            );
        }
        cause = current.source();
    }
    false
}

/// A digest of a payload, to recognise our own row when the broker delivers it back (MQTT 3.1.1). Every row
/// payload carries its `seq` and `db_epoch`, so two rows never share topic and bytes.
pub(super) fn payload_digest(payload: &[u8]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    payload.hash(&mut hasher);
    hasher.finish()
}

/// The request side of one connection.
pub(super) enum LinkClient {
    V4(rumqttc::AsyncClient),
    V5(v5::AsyncClient),
}

/// The request channel is full or the event loop is gone.
#[derive(Debug)]
pub(super) struct RequestRejected;

impl LinkClient {
    /// Queues one QoS 1 publish without waiting.
    pub(super) fn try_publish(
        &self,
        topic: &str,
        retain: bool,
        payload: Vec<u8>,
    ) -> Result<(), RequestRejected> {
        match self {
            LinkClient::V4(client) => client
                .try_publish(topic, QoS::AtLeastOnce, retain, payload)
                .map_err(|_| RequestRejected),
            LinkClient::V5(client) => client
                .try_publish(topic, v5::mqttbytes::QoS::AtLeastOnce, retain, payload)
                .map_err(|_| RequestRejected),
        }
    }

    /// Queues a QoS 1 subscription to exactly `topic` without waiting (MQTT 3.1.1 read-back only).
    pub(super) fn try_subscribe(&self, topic: &str) -> Result<(), RequestRejected> {
        match self {
            LinkClient::V4(client) => client
                .try_subscribe(topic, QoS::AtLeastOnce)
                .map_err(|_| RequestRejected),
            LinkClient::V5(client) => client
                .try_subscribe(topic, v5::mqttbytes::QoS::AtLeastOnce)
                .map_err(|_| RequestRejected),
        }
    }

    /// Queues a DISCONNECT without waiting.
    pub(super) fn try_disconnect(&self) -> Result<(), RequestRejected> {
        match self {
            LinkClient::V4(client) => client.try_disconnect().map_err(|_| RequestRejected),
            LinkClient::V5(client) => client.try_disconnect().map_err(|_| RequestRejected),
        }
    }
}

/// One connection's client, its event stream, and the task that owns the event loop (aborting it drops the TCP
/// connection). The task ends after the first error: rumqttc never reconnects by itself.
pub(super) struct Link {
    pub(super) client: LinkClient,
    pub(super) events_rx: mpsc::Receiver<Result<LinkEvent, LinkError>>,
    pub(super) task: AbortOnDropHandle<()>,
}

/// What one connection attempt carries besides plain TCP, read from the configured files just now.
struct Security {
    tls: Option<tls::Loaded>,
    login: Option<(String, Secret)>,
}

impl Security {
    /// Reads the CA, client certificate, key and password files again, so replaced files take effect at the
    /// next connection attempt.
    fn load(cfg: &PublisherConfig) -> Result<Security, TlsError> {
        let tls = match &cfg.tls {
            Some(settings) => Some(tls::load(settings, &cfg.host)?),
            None => None,
        };
        let login = match &cfg.credentials {
            Some(credentials) => Some((
                credentials.username.clone(),
                tls::load_password(&credentials.password_file)?,
            )),
            None => None,
        };
        Ok(Security { tls, login })
    }

    fn transport(&self) -> Option<rumqttc::Transport> {
        self.tls.as_ref().map(|loaded| {
            rumqttc::Transport::Tls(rumqttc::TlsConfiguration::Rustls(loaded.config.clone()))
        })
    }
}

/// Builds a fresh client and event loop speaking `protocol`, with a clean session and the offline status as
/// retained last will, and starts connecting. The TLS and login files are read here, at every attempt; a file
/// that cannot be read or used is an error before any connection is made.
pub(super) fn open(
    cfg: &PublisherConfig,
    protocol: MqttProtocol,
    stats: &super::PublisherStats,
) -> Result<Link, TlsError> {
    let security = Security::load(cfg)?;
    if let Some(loaded) = &security.tls {
        let ms = |facts: &Option<tls::CertFacts>| {
            facts.as_ref().map(|facts| facts.not_after.as_millisecond())
        };
        stats.set_cert_expiry(ms(&loaded.client_cert), ms(&loaded.ca));
    }
    let max_inflight = cfg.max_inflight.max(1);
    // MQTT 3.1.1 may queue one SUBSCRIBE per publish (a row on a topic not yet read back), so room for both.
    let capacity = 2 * usize::from(max_inflight) + REQUEST_HEADROOM;
    let connect_secs = cfg.connect_timeout.as_secs_f64().ceil().max(1.0) as u64;
    let mut network = NetworkOptions::new();
    // Nagle's algorithm stays on: rumqttc writes and flushes every request on its own, so with TCP_NODELAY a
    // drain sent one segment (and woke the broker) per publish. With it, publishes written while earlier data
    // is unacknowledged share segments; a lone publish still leaves at once, and the broker's PUBACKs carry the
    // TCP acknowledgements back without the delayed-ACK wait.
    network.set_tcp_nodelay(false);
    network.set_connection_timeout(connect_secs);
    let (events_tx, events_rx) = mpsc::channel(EVENT_QUEUE);
    match protocol {
        MqttProtocol::V4 => {
            let outgoing = usize::try_from(cfg.max_packet_size).unwrap_or(usize::MAX);
            // Our rows come back to us (read-back), so accept packets as large as those we send.
            let incoming = MAX_INCOMING_BYTES.max(outgoing.saturating_add(1024));
            let mut options = rumqttc::MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
            options
                .set_clean_session(true)
                .set_keep_alive(effective_keep_alive(protocol, cfg.keep_alive))
                .set_inflight(max_inflight)
                .set_max_packet_size(incoming, outgoing)
                .set_last_will(rumqttc::LastWill::new(
                    &cfg.status_topic,
                    cfg.offline_payload.clone(),
                    QoS::AtLeastOnce,
                    true,
                ));
            if let Some(transport) = security.transport() {
                options.set_transport(transport);
            }
            if let Some((username, password)) = &security.login {
                options.set_credentials(username, password.expose());
            }
            let (client, mut event_loop) = rumqttc::AsyncClient::new(options, capacity);
            event_loop.set_network_options(network);
            let task = tokio::spawn(drive_v4(event_loop, events_tx));
            Ok(Link {
                client: LinkClient::V4(client),
                events_rx,
                task: AbortOnDropHandle::new(task),
            })
        }
        MqttProtocol::V5 => {
            let mut options = v5::MqttOptions::new(&cfg.client_id, &cfg.host, cfg.port);
            options
                .set_clean_start(true)
                .set_keep_alive(effective_keep_alive(protocol, cfg.keep_alive))
                .set_outgoing_inflight_upper_limit(max_inflight)
                .set_connection_timeout(connect_secs)
                .set_network_options(network)
                .set_last_will(v5::mqttbytes::v5::LastWill::new(
                    &cfg.status_topic,
                    cfg.offline_payload.clone(),
                    v5::mqttbytes::QoS::AtLeastOnce,
                    true,
                    None,
                ));
            if let Some(transport) = security.transport() {
                options.set_transport(transport);
            }
            if let Some((username, password)) = &security.login {
                options.set_credentials(username, password.expose());
            }
            let (client, event_loop) = v5::AsyncClient::new(options, capacity);
            let task = tokio::spawn(drive_v5(event_loop, events_tx));
            Ok(Link {
                client: LinkClient::V5(client),
                events_rx,
                task: AbortOnDropHandle::new(task),
            })
        }
    }
}

/// The keep-alive rumqttc is given: MQTT 3.1.1 allows zero (off) or ≥ 1 s; rumqttc's MQTT 5 client needs ≥ 5 s.
pub(super) fn effective_keep_alive(protocol: MqttProtocol, keep_alive: Duration) -> Duration {
    match protocol {
        MqttProtocol::V4 if keep_alive.is_zero() => Duration::ZERO,
        MqttProtocol::V4 => keep_alive.max(Duration::from_secs(1)),
        MqttProtocol::V5 => keep_alive.max(V5_MIN_KEEP_ALIVE),
    }
}

/// Polls a 3.1.1 event loop in its own task (so our `select!` never cancels `poll()` mid-write).
async fn drive_v4(
    mut event_loop: rumqttc::EventLoop,
    events_tx: mpsc::Sender<Result<LinkEvent, LinkError>>,
) {
    use rumqttc::{Event, Incoming};
    loop {
        let event = event_loop.poll().await.map_err(LinkError::from);
        let failed = event.is_err();
        let event = event.map(|event| match event {
            Event::Incoming(Incoming::ConnAck(_)) => LinkEvent::ConnAck {
                max_packet_size: None,
            },
            Event::Incoming(Incoming::PubAck(ack)) => LinkEvent::PubAck {
                pkid: ack.pkid,
                outcome: AckOutcome::Accepted,
            },
            Event::Incoming(Incoming::Publish(publish)) => LinkEvent::Echo {
                digest: payload_digest(&publish.payload),
                topic: publish.topic,
            },
            Event::Incoming(Incoming::SubAck(ack)) => LinkEvent::SubAck {
                granted: ack
                    .return_codes
                    .iter()
                    .all(|code| matches!(code, rumqttc::SubscribeReasonCode::Success(_))),
            },
            Event::Outgoing(outgoing) => outgoing_event(outgoing),
            Event::Incoming(_) => LinkEvent::Other,
        });
        if events_tx.send(event).await.is_err() || failed {
            return;
        }
    }
}

/// Polls an MQTT 5 event loop in its own task; PUBACK reason codes are classified here.
async fn drive_v5(
    mut event_loop: v5::EventLoop,
    events_tx: mpsc::Sender<Result<LinkEvent, LinkError>>,
) {
    use v5::mqttbytes::v5::Packet;
    use v5::Event;
    loop {
        let event = event_loop.poll().await.map_err(LinkError::from);
        let failed = event.is_err();
        let event = event.map(|event| match event {
            Event::Incoming(Packet::ConnAck(connack)) => LinkEvent::ConnAck {
                max_packet_size: connack.properties.and_then(|p| p.max_packet_size),
            },
            Event::Incoming(Packet::PubAck(ack)) => LinkEvent::PubAck {
                pkid: ack.pkid,
                outcome: classify_v5_puback(ack.reason),
            },
            Event::Outgoing(outgoing) => outgoing_event(outgoing),
            Event::Incoming(_) => LinkEvent::Other,
        });
        if events_tx.send(event).await.is_err() || failed {
            return;
        }
    }
}

fn outgoing_event(outgoing: Outgoing) -> LinkEvent {
    match outgoing {
        Outgoing::Publish(pkid) => LinkEvent::PublishSent(pkid),
        Outgoing::Disconnect => LinkEvent::DisconnectSent,
        _ => LinkEvent::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_each_v5_puback_reason_when_classified_then_only_success_codes_retire() {
        assert_eq!(
            classify_v5_puback(PubAckReason::Success),
            AckOutcome::Accepted
        );
        assert_eq!(
            classify_v5_puback(PubAckReason::NoMatchingSubscribers),
            AckOutcome::Accepted
        );
        let failures = [
            (PubAckReason::UnspecifiedError, 0x80),
            (PubAckReason::ImplementationSpecificError, 0x83),
            (PubAckReason::NotAuthorized, 0x87),
            (PubAckReason::TopicNameInvalid, 0x90),
            (PubAckReason::PacketIdentifierInUse, 0x91),
            (PubAckReason::QuotaExceeded, 0x97),
            (PubAckReason::PayloadFormatInvalid, 0x99),
        ];
        for (reason, code) in failures {
            match classify_v5_puback(reason) {
                AckOutcome::Refused(refusal) => {
                    assert_eq!(refusal.code, Some(code), "{reason:?}")
                }
                AckOutcome::Accepted => panic!("{reason:?} must not retire a row"),
            }
        }
    }

    #[test]
    fn given_tls_alerts_and_login_refusals_as_rumqttc_reports_them_then_each_cause_is_named() {
        let alert = |description| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                rustls::Error::AlertReceived(description),
            )
        };
        // MQTT 5: the alert inside the state error's decoding error (no `source` link there).
        let v5_alert = LinkError::V5(v5::ConnectionError::MqttState(
            v5::StateError::Deserialization(v5::mqttbytes::Error::Io(alert(
                rustls::AlertDescription::CertificateRequired,
            ))),
        ));
        assert_eq!(
            v5_alert.uplink_failure(false),
            Some(UplinkFailure::ClientCertificateMissing)
        );
        // MQTT 3.1.1: the same alert through the `source` chain.
        let v4_alert = LinkError::V4(rumqttc::ConnectionError::MqttState(
            rumqttc::StateError::Deserialization(rumqttc::mqttbytes::Error::Io(alert(
                rustls::AlertDescription::UnknownCA,
            ))),
        ));
        assert_eq!(
            v4_alert.uplink_failure(true),
            Some(UplinkFailure::ClientCertificateRefused)
        );
        let refused = LinkError::V5(v5::ConnectionError::ConnectionRefused(
            v5::mqttbytes::v5::ConnectReturnCode::NotAuthorized,
        ));
        assert_eq!(
            refused.uplink_failure(true),
            Some(UplinkFailure::BadCredentials)
        );
        let v4_refused = LinkError::V4(rumqttc::ConnectionError::ConnectionRefused(
            rumqttc::ConnectReturnCode::BadUserNamePassword,
        ));
        assert_eq!(
            v4_refused.uplink_failure(true),
            Some(UplinkFailure::BadCredentials)
        );
        let reset = LinkError::V4(rumqttc::ConnectionError::Io(std::io::Error::from(
            std::io::ErrorKind::ConnectionRefused,
        )));
        assert_eq!(reset.uplink_failure(true), None);
    }

    #[test]
    fn given_a_publish_when_sized_then_it_matches_rumqttc_encoding() {
        for (topic, payload) in [(5, 0), (10, 100), (30, 200), (20, 20_000), (7, 3_000_000)] {
            let topic_text = "t".repeat(topic);
            let mut publish =
                rumqttc::Publish::new(&topic_text, QoS::AtLeastOnce, vec![7u8; payload]);
            publish.pkid = 1;
            assert_eq!(
                publish_packet_size(MqttProtocol::V4, topic, payload),
                publish.size() as u64
            );
            let mut publish = v5::mqttbytes::v5::Publish::new(
                &topic_text,
                v5::mqttbytes::QoS::AtLeastOnce,
                vec![7u8; payload],
                None,
            );
            publish.pkid = 1;
            assert_eq!(
                publish_packet_size(MqttProtocol::V5, topic, payload),
                publish.size() as u64
            );
        }
    }

    #[test]
    fn given_short_keep_alives_when_applied_then_each_protocol_gets_a_value_rumqttc_accepts() {
        let second = Duration::from_secs(1);
        assert_eq!(
            effective_keep_alive(MqttProtocol::V4, Duration::ZERO),
            Duration::ZERO
        );
        assert_eq!(
            effective_keep_alive(MqttProtocol::V4, Duration::from_millis(300)),
            second
        );
        assert_eq!(
            effective_keep_alive(MqttProtocol::V5, second),
            V5_MIN_KEEP_ALIVE
        );
        assert_eq!(
            effective_keep_alive(MqttProtocol::V5, Duration::from_secs(30)),
            Duration::from_secs(30)
        );
    }
}
