//! TLS material for the MQTT uplink: reads the PEM files named in `[mqtt]` (CA, client certificate and key,
//! password), builds the rustls `ClientConfig` (hostname verification always on, no insecure switch), reports
//! certificate facts (subject, expiry) and names the cause of a failed handshake. Files are read on every call,
//! so a replaced file is picked up at the next connection. It opens no sockets.

mod cause;
#[cfg(test)]
pub(crate) mod testing;
#[cfg(test)]
mod tests;
mod verify;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::{ClientConfig, RootCertStore};

pub use cause::{classify_tls_error, UplinkFailure};

/// The environment variable systemd sets to the directory of `LoadCredential=` files.
pub const CREDENTIALS_DIRECTORY: &str = "CREDENTIALS_DIRECTORY";

/// Where the trusted certificate authorities come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// A PEM file with one or more CA certificates (`[mqtt] ca_file`).
    File(PathBuf),
    /// The platform's trust store (`[mqtt] ca = "system"`).
    System,
}

/// A client certificate chain and its private key, both PEM files (`[mqtt] cert_file`, `key_file`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIdentityFiles {
    /// PEM certificate chain, leaf first.
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, or the RSA/EC legacy forms).
    pub key_file: PathBuf,
}

/// Validated TLS settings of the uplink; the files behind them are read when a connection is made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// Trusted CAs.
    pub ca: CaSource,
    /// The name the broker's certificate must carry, when it differs from `[mqtt] host` (an IP address).
    pub server_name: Option<String>,
    /// mTLS identity, when configured.
    pub client: Option<ClientIdentityFiles>,
}

/// An MQTT login: the username and the file its password is read from at each connection attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    /// MQTT username.
    pub username: String,
    /// File holding the password (resolved path).
    pub password_file: PathBuf,
}

/// A password read from a file; its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret text, for the one place that hands it to the MQTT client.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// Facts about one certificate, for `validate`, the start-up log and the health topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertFacts {
    /// Subject distinguished name, as text.
    pub subject: String,
    /// Serial number, hex.
    pub serial: String,
    /// Start of validity.
    pub not_before: jiff::Timestamp,
    /// End of validity.
    pub not_after: jiff::Timestamp,
}

/// A TLS file could not be used. Messages name the file and never quote its contents.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file is missing or unreadable.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The operating system's answer.
        source: std::io::Error,
    },
    /// The file holds no PEM block of the expected kind, or a damaged one.
    #[error("{} holds no usable {what} (expected PEM)", path.display())]
    NoPem {
        /// The file.
        path: PathBuf,
        /// "certificate" or "private key".
        what: &'static str,
    },
    /// A certificate did not parse as X.509.
    #[error("{} holds a certificate that does not parse as X.509", path.display())]
    BadCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The private key does not belong to the certificate.
    #[error("the private key in {} does not match the certificate in {}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// rustls refused the key or the trust anchors.
    #[error("{} cannot be used for TLS: {reason}", path.display())]
    Unusable {
        /// The file.
        path: PathBuf,
        /// rustls's reason (it never contains key material).
        reason: String,
    },
    /// The platform trust store could not be read or was empty.
    #[error("the platform's trust store is unusable: {0}")]
    SystemRoots(String),
    /// The password file is empty.
    #[error("{} is empty", path.display())]
    EmptyPassword {
        /// The file.
        path: PathBuf,
    },
    /// `server_name` (or the host) is not a valid DNS name or IP address.
    #[error("{0:?} is not a valid server name")]
    ServerName(String),
}

/// Resolves a configured file name: absolute as is; relative in `credentials_dir` (systemd's
/// `$CREDENTIALS_DIRECTORY`) when a file of that name is there, else relative to the config file's directory.
pub fn resolve_file(
    configured: &Path,
    credentials_dir: Option<&Path>,
    config_dir: &Path,
) -> PathBuf {
    if configured.is_absolute() {
        return configured.to_path_buf();
    }
    if let Some(dir) = credentials_dir {
        let candidate = dir.join(configured);
        if candidate.exists() {
            return candidate;
        }
    }
    config_dir.join(configured)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads every certificate of a PEM file (at least one).
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = read(path)?;
    let no_pem = || TlsError::NoPem {
        path: path.to_path_buf(),
        what: "certificate",
    };
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| no_pem())?;
    if certs.is_empty() {
        return Err(no_pem());
    }
    for cert in &certs {
        cert_facts(cert).ok_or_else(|| TlsError::BadCertificate {
            path: path.to_path_buf(),
        })?;
    }
    Ok(certs)
}

/// Reads the first private key of a PEM file (PKCS#8, PKCS#1 RSA or SEC1 EC).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let bytes = read(path)?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|_| TlsError::NoPem {
        path: path.to_path_buf(),
        what: "private key",
    })
}

/// Reads a password file: its text without the trailing line break; an empty password is an error.
pub fn load_password(path: &Path) -> Result<Secret, TlsError> {
    let bytes = read(path)?;
    let text = String::from_utf8(bytes).map_err(|_| TlsError::Read {
        path: path.to_path_buf(),
        source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"),
    })?;
    let password = text.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        return Err(TlsError::EmptyPassword {
            path: path.to_path_buf(),
        });
    }
    Ok(Secret(password.to_string()))
}

/// Subject, serial and validity of a DER certificate; `None` when it does not parse.
pub fn cert_facts(cert: &CertificateDer<'_>) -> Option<CertFacts> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let validity = parsed.validity();
    let at =
        |time: &x509_parser::time::ASN1Time| jiff::Timestamp::from_second(time.timestamp()).ok();
    Some(CertFacts {
        subject: parsed.subject().to_string(),
        serial: parsed.raw_serial_as_string(),
        not_before: at(&validity.not_before)?,
        not_after: at(&validity.not_after)?,
    })
}

/// Whether a secrets file can be read by its group or by others (Unix mode bits); `None` when unknown.
pub fn readable_by_others(path: &Path) -> Option<bool> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    Some(mode & 0o044 != 0)
}

/// The TLS configuration of one connection and the facts of the certificates it was built from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The rustls client configuration.
    pub config: Arc<ClientConfig>,
    /// The client certificate (leaf), when mTLS is configured.
    pub client_cert: Option<CertFacts>,
    /// The CA certificate that expires first, when the CAs come from a file.
    pub ca: Option<CertFacts>,
}

/// Reads the files of `settings` now and builds the rustls configuration: TLS 1.2+, the ring provider, the
/// configured roots, the name to verify (`server_name`, else `host`), and the client identity when configured
/// (a key that does not match its certificate is an error).
pub fn load(settings: &TlsSettings, host: &str) -> Result<Loaded, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (roots, ca) = roots(&settings.ca)?;
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|error| TlsError::SystemRoots(error.to_string()))?;
    let name = settings.server_name.as_deref().unwrap_or(host);
    let expected = ServerName::try_from(name.to_string())
        .map_err(|_| TlsError::ServerName(name.to_string()))?;
    let verifier = verify::NamedServerVerifier::new(
        Arc::new(roots),
        provider,
        expected,
        ca_path(&settings.ca),
    )?;
    let builder = builder
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier));
    let (config, client_cert) = match &settings.client {
        None => (builder.with_no_client_auth(), None),
        Some(files) => {
            let chain = load_certs(&files.cert_file)?;
            let key = load_key(&files.key_file)?;
            let facts = cert_facts(&chain[0]).ok_or_else(|| TlsError::BadCertificate {
                path: files.cert_file.clone(),
            })?;
            let config = builder
                .with_client_auth_cert(chain, key)
                .map_err(|error| key_error(files, error))?;
            (config, Some(facts))
        }
    };
    Ok(Loaded {
        config: Arc::new(config),
        client_cert,
        ca,
    })
}

fn ca_path(ca: &CaSource) -> PathBuf {
    match ca {
        CaSource::File(path) => path.clone(),
        CaSource::System => PathBuf::from("the platform trust store"),
    }
}

fn key_error(files: &ClientIdentityFiles, error: rustls::Error) -> TlsError {
    match error {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: files.cert_file.clone(),
            key: files.key_file.clone(),
        },
        // rustls reads the certificate to compare keys; a certificate it cannot use (X.509 v1, say) fails here.
        other => TlsError::Unusable {
            path: files.cert_file.clone(),
            reason: other.to_string(),
        },
    }
}

/// The trust anchors, and the facts of the file CA that expires first.
fn roots(ca: &CaSource) -> Result<(RootCertStore, Option<CertFacts>), TlsError> {
    let mut store = RootCertStore::empty();
    match ca {
        CaSource::File(path) => {
            let certs = load_certs(path)?;
            let mut first_to_expire: Option<CertFacts> = None;
            for cert in certs {
                let facts = cert_facts(&cert)
                    .ok_or_else(|| TlsError::BadCertificate { path: path.clone() })?;
                if first_to_expire
                    .as_ref()
                    .is_none_or(|f| facts.not_after < f.not_after)
                {
                    first_to_expire = Some(facts);
                }
                store.add(cert).map_err(|error| TlsError::Unusable {
                    path: path.clone(),
                    reason: error.to_string(),
                })?;
            }
            Ok((store, first_to_expire))
        }
        CaSource::System => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                let detail = found
                    .errors
                    .first()
                    .map_or_else(|| "no certificates found".to_string(), |e| e.to_string());
                return Err(TlsError::SystemRoots(detail));
            }
            Ok((store, None))
        }
    }
}

/// One certificate of the configured files, for `validate` and the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateLine {
    /// "ca" or "client".
    pub role: &'static str,
    /// The file it was read from.
    pub file: PathBuf,
    /// Its facts.
    pub facts: CertFacts,
}

/// Every certificate in the configured CA file and the client certificate chain, read now.
pub fn certificate_report(settings: &TlsSettings) -> Result<Vec<CertificateLine>, TlsError> {
    let mut lines = Vec::new();
    let mut add = |role: &'static str, file: &Path| -> Result<(), TlsError> {
        for cert in load_certs(file)? {
            let facts = cert_facts(&cert).ok_or_else(|| TlsError::BadCertificate {
                path: file.to_path_buf(),
            })?;
            lines.push(CertificateLine {
                role,
                file: file.to_path_buf(),
                facts,
            });
        }
        Ok(())
    };
    if let CaSource::File(path) = &settings.ca {
        add("ca", path)?;
    }
    if let Some(client) = &settings.client {
        add("client", &client.cert_file)?;
    }
    Ok(lines)
}
