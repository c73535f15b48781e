//! Names the cause of a failed secure connection from the error chain rustls, tokio-rustls and rumqttc hand
//! back: one closed set of causes, counted on the health topic and named in the one log line per failure.

use rustls::{AlertDescription, CertificateError};

/// Why a TLS handshake or the MQTT login failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum UplinkFailure {
    /// The broker's certificate does not chain to a configured CA.
    UnknownCa,
    /// The broker's certificate has expired.
    Expired,
    /// The broker's certificate is not valid yet (or the gateway's clock is behind).
    NotYetValid,
    /// The broker's certificate does not carry the expected name.
    HostnameMismatch,
    /// The broker wants a client certificate and none is configured.
    ClientCertificateMissing,
    /// The broker refused the client certificate.
    ClientCertificateRefused,
    /// CONNACK refused the username or password.
    BadCredentials,
    /// A configured CA, certificate, key or password file could not be read or used at connect time.
    CredentialFiles,
    /// Any other TLS failure (protocol, cipher, a certificate otherwise invalid).
    OtherTls,
}

impl UplinkFailure {
    /// Every cause, in report order.
    pub const ALL: [UplinkFailure; 9] = [
        UplinkFailure::UnknownCa,
        UplinkFailure::Expired,
        UplinkFailure::NotYetValid,
        UplinkFailure::HostnameMismatch,
        UplinkFailure::ClientCertificateMissing,
        UplinkFailure::ClientCertificateRefused,
        UplinkFailure::BadCredentials,
        UplinkFailure::CredentialFiles,
        UplinkFailure::OtherTls,
    ];

    /// The cause's name in logs and on the health topic.
    pub fn as_str(self) -> &'static str {
        match self {
            UplinkFailure::UnknownCa => "unknown_ca",
            UplinkFailure::Expired => "expired",
            UplinkFailure::NotYetValid => "not_yet_valid",
            UplinkFailure::HostnameMismatch => "hostname_mismatch",
            UplinkFailure::ClientCertificateMissing => "client_certificate_missing",
            UplinkFailure::ClientCertificateRefused => "client_certificate_refused",
            UplinkFailure::BadCredentials => "bad_credentials",
            UplinkFailure::CredentialFiles => "credential_files",
            UplinkFailure::OtherTls => "tls_other",
        }
    }

    /// Its position in [`UplinkFailure::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Finds a rustls error anywhere in `error`'s cause chain (tokio-rustls wraps it in an `io::Error`, whose
/// `source` skips the wrapped error, so that is looked into too) and names its cause. `has_client_cert` tells a
/// missing client certificate from a refused one. `None`: no TLS error in the chain.
pub fn classify_tls_error(
    error: &(dyn std::error::Error + 'static),
    has_client_cert: bool,
) -> Option<UplinkFailure> {
    let mut cause = Some(error);
    while let Some(current) = cause {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return Some(classify_rustls(tls, has_client_cert));
        }
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            if let Some(tls) = io
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return Some(classify_rustls(tls, has_client_cert));
            }
        }
        cause = current.source();
    }
    None
}

/// Names the cause of one rustls error.
pub(super) fn classify_rustls(error: &rustls::Error, has_client_cert: bool) -> UplinkFailure {
    let client_side = if has_client_cert {
        UplinkFailure::ClientCertificateRefused
    } else {
        UplinkFailure::ClientCertificateMissing
    };
    match error {
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::UnknownIssuer | CertificateError::BadSignature => {
                UplinkFailure::UnknownCa
            }
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                UplinkFailure::Expired
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                UplinkFailure::NotYetValid
            }
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
                UplinkFailure::HostnameMismatch
            }
            _ => UplinkFailure::OtherTls,
        },
        rustls::Error::AlertReceived(alert) => match alert {
            AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::CertificateRevoked
            | AlertDescription::CertificateExpired
            | AlertDescription::UnsupportedCertificate
            | AlertDescription::AccessDenied => client_side,
            // OpenSSL-based brokers (Mosquitto) answer a missing client certificate under TLS 1.2 so.
            AlertDescription::HandshakeFailure if !has_client_cert => client_side,
            _ => UplinkFailure::OtherTls,
        },
        _ => UplinkFailure::OtherTls,
    }
}
