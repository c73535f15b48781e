//! The `cert_expiring` gateway event: a certificate of the uplink (client certificate, or the file CA that
//! expires first) within 14 days of its expiry raises one durable event row on the gateway event topic, at
//! most once a day by the injected wall clock. The decision is pure (time is an argument); [`run`] is the
//! thin task that checks once an hour and commits the row.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::alarm::gateway_event_cycle;
use super::{PublisherConfig, PublisherStats};
use crate::logic::payload::{self, Identity};
use crate::logic::Millis;
use crate::store::{CycleWrite, StoreHandle};

/// A certificate this close to its expiry raises the event.
pub(super) const EXPIRY_WARNING: Millis = 14 * DAY;
/// At most one event per this much wall-clock time.
const DAY: Millis = 24 * 60 * 60 * 1000;
/// How often the task looks (the event itself is rate-limited by [`DAY`]).
const CHECK_EVERY: Duration = Duration::from_secs(3600);

/// One certificate close to its expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Expiring {
    /// "client" or "ca".
    pub role: &'static str,
    /// Its expiry (UTC ms).
    pub not_after: Millis,
}

/// Remembers when the event was last raised.
#[derive(Debug, Default)]
pub(super) struct ExpiryWatch {
    last_raised: Option<Millis>,
}

impl ExpiryWatch {
    /// The certificates to announce now: those expiring within 14 days of `now` (already expired included),
    /// unless the event was raised less than a day ago. Empty when nothing is due.
    pub(super) fn check(
        &mut self,
        now: Millis,
        certificates: &[(&'static str, Option<Millis>)],
    ) -> Vec<Expiring> {
        if self
            .last_raised
            .is_some_and(|at| now - at < DAY && now >= at)
        {
            return Vec::new();
        }
        let expiring: Vec<Expiring> = certificates
            .iter()
            .filter_map(|&(role, not_after)| {
                not_after.map(|not_after| Expiring { role, not_after })
            })
            .filter(|cert| cert.not_after - now < EXPIRY_WARNING)
            .collect();
        if !expiring.is_empty() {
            self.last_raised = Some(now);
        }
        expiring
    }
}

/// One store cycle holding the `cert_expiring` event for `expiring`, stamped `at`.
pub(super) fn cert_expiring_cycle(
    identity: &Identity,
    expiring: &[Expiring],
    at: Millis,
) -> CycleWrite {
    let certificates: Vec<_> = expiring
        .iter()
        .map(|cert| {
            json!({
                "role": cert.role,
                "not_after": jiff::Timestamp::from_millisecond(cert.not_after)
                    .map(|t| t.to_string())
                    .unwrap_or_default(),
                "days_left": (cert.not_after - at).div_euclid(DAY),
            })
        })
        .collect();
    gateway_event_cycle(
        identity,
        payload::EventKind::CertExpiring,
        json!({ "certificates": certificates }),
        at,
    )
}

/// Checks the expiry dates the latest connection attempt read, once an hour, until `shutdown`; a due event is
/// committed to the outbox (and logged once) and the publisher woken to send it.
pub(super) async fn run(
    cfg: PublisherConfig,
    store: StoreHandle,
    stats: Arc<PublisherStats>,
    outbox_notify: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let Some(identity) = cfg.event_identity.clone() else {
        return;
    };
    let mut watch = ExpiryWatch::default();
    loop {
        let now = cfg.clock.utc();
        let certificates = [
            ("client", stats.client_cert_not_after()),
            ("ca", stats.ca_not_after()),
        ];
        let expiring = watch.check(now, &certificates);
        if !expiring.is_empty() {
            for cert in &expiring {
                tracing::warn!(
                    role = cert.role,
                    not_after_ms = cert.not_after,
                    "A TLS certificate expires within 14 days."
                );
            }
            let cycle = cert_expiring_cycle(&identity, &expiring, now);
            match store.call(move |store| store.commit_cycle(&cycle)).await {
                Ok(Ok(_)) => outbox_notify.notify_one(),
                Ok(Err(error)) => {
                    tracing::warn!(%error, "Could not enqueue the cert_expiring event; it is logged only.")
                }
                Err(_) => return,
            }
        }
        tokio::select! {
            () = tokio::time::sleep(CHECK_EVERY) => {}
            () = shutdown.cancelled() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Millis = 1_795_824_000_000;

    #[test]
    fn given_a_certificate_inside_14_days_when_checked_then_it_is_raised_once_a_day() {
        let mut watch = ExpiryWatch::default();
        let certs = [
            ("client", Some(NOW + 13 * DAY)),
            ("ca", Some(NOW + 400 * DAY)),
        ];
        assert_eq!(
            watch.check(NOW, &certs),
            vec![Expiring {
                role: "client",
                not_after: NOW + 13 * DAY
            }]
        );
        assert!(watch.check(NOW + DAY - 1, &certs).is_empty());
        assert_eq!(watch.check(NOW + DAY, &certs).len(), 1);
    }

    #[test]
    fn given_certificates_far_from_expiry_or_absent_when_checked_then_nothing_is_raised() {
        let mut watch = ExpiryWatch::default();
        assert!(watch
            .check(NOW, &[("client", Some(NOW + 14 * DAY)), ("ca", None)])
            .is_empty());
        // An expired certificate is announced too.
        assert_eq!(watch.check(NOW, &[("ca", Some(NOW - DAY))]).len(), 1);
    }

    #[test]
    fn given_a_wall_clock_stepped_back_when_checked_then_the_day_limit_does_not_block_forever() {
        let mut watch = ExpiryWatch::default();
        let certs = [("client", Some(NOW + DAY))];
        assert_eq!(watch.check(NOW, &certs).len(), 1);
        assert_eq!(watch.check(NOW - 10 * DAY, &certs).len(), 1);
    }

    #[test]
    fn given_an_expiring_certificate_when_turned_into_a_cycle_then_it_is_one_valid_gateway_event() {
        let identity = Identity {
            prefix: "shopfloor/v1".into(),
            site: "s1".into(),
            gateway: "gw-9".into(),
            agent_version: "0.1.0".into(),
            config_hash: "abc".into(),
        };
        let cycle = cert_expiring_cycle(
            &identity,
            &[Expiring {
                role: "client",
                not_after: NOW + 3 * DAY,
            }],
            NOW,
        );
        assert_eq!(cycle.outbox.len(), 1);
        let draft = &cycle.outbox[0];
        assert_eq!(draft.topic, "shopfloor/v1/s1/_gateway/gw-9/event");
        assert_eq!(draft.body["kind"], "cert_expiring");
        assert_eq!(draft.body["detail"]["certificates"][0]["days_left"], 3);
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../schemas/event.schema.json")).unwrap();
        let validator = jsonschema::validator_for(&schema).unwrap();
        // As the store sends it: with its sequence number and database epoch.
        let mut stored = draft.body.clone();
        stored["seq"] = json!(1);
        stored["db_epoch"] = json!("e1");
        assert!(validator.is_valid(&stored), "{stored}");
    }
}
