//! Unit tests of the TLS material: files, certificate facts, the key check, and real in-memory handshakes
//! (rustls client against a rustls server) for the verifier and the failure causes.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::cause::classify_rustls;
use super::testing::{ca, leaf, write};
use super::*;

fn settings(ca_file: PathBuf, server_name: Option<&str>) -> TlsSettings {
    TlsSettings {
        ca: CaSource::File(ca_file),
        server_name: server_name.map(str::to_string),
        client: None,
    }
}

/// Runs a full handshake in memory between `client` and a rustls server presenting `cert`/`key`; returns
/// the first error either side raised (the client's when both did).
fn handshake(
    client: Arc<ClientConfig>,
    dialled: &str,
    cert: &str,
    key: &str,
) -> Result<(), rustls::Error> {
    let chain = vec![CertificateDer::from_pem_slice(cert.as_bytes()).unwrap()];
    let key = PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let server = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let mut server = rustls::ServerConnection::new(Arc::new(server)).unwrap();
    let name = ServerName::try_from(dialled.to_string()).unwrap();
    let mut client = rustls::ClientConnection::new(client, name).unwrap();
    for _ in 0..10 {
        let mut buffer = Vec::new();
        while client.wants_write() {
            client.write_tls(&mut buffer).unwrap();
        }
        server.read_tls(&mut buffer.as_slice()).unwrap();
        let server_result = server.process_new_packets().map(|_| ());
        let mut buffer = Vec::new();
        while server.wants_write() {
            server.write_tls(&mut buffer).unwrap();
        }
        client.read_tls(&mut buffer.as_slice()).unwrap();
        client.process_new_packets()?;
        server_result?;
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(());
        }
    }
    panic!("handshake did not finish");
}

#[test]
fn given_a_broker_certificate_for_a_name_when_dialled_by_ip_then_server_name_decides() {
    let dir = tempfile::tempdir().unwrap();
    let authority = ca("Test CA");
    let ca_file = write(dir.path(), "ca.pem", &authority.pem);
    let (cert, key) = leaf(&authority, &["broker.example.org"], (2020, 2090));

    let named = load(
        &settings(ca_file.clone(), Some("broker.example.org")),
        "127.0.0.1",
    )
    .unwrap();
    assert_eq!(handshake(named.config, "127.0.0.1", &cert, &key), Ok(()));

    let by_ip = load(&settings(ca_file, None), "127.0.0.1").unwrap();
    let error = handshake(by_ip.config, "127.0.0.1", &cert, &key).unwrap_err();
    assert_eq!(
        classify_rustls(&error, false),
        UplinkFailure::HostnameMismatch
    );
}

#[test]
fn given_faulty_broker_certificates_when_handshaking_then_each_cause_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let authority = ca("Test CA");
    let other = ca("Other CA");
    let ca_file = write(dir.path(), "ca.pem", &authority.pem);
    let loaded = load(&settings(ca_file, None), "localhost").unwrap();
    let cases = [
        (
            leaf(&other, &["localhost"], (2020, 2090)),
            UplinkFailure::UnknownCa,
        ),
        (
            leaf(&authority, &["localhost"], (2001, 2002)),
            UplinkFailure::Expired,
        ),
        (
            leaf(&authority, &["localhost"], (2080, 2090)),
            UplinkFailure::NotYetValid,
        ),
        (
            leaf(&authority, &["elsewhere.example"], (2020, 2090)),
            UplinkFailure::HostnameMismatch,
        ),
    ];
    for ((cert, key), expected) in cases {
        let error = handshake(loaded.config.clone(), "localhost", &cert, &key).unwrap_err();
        assert_eq!(classify_rustls(&error, true), expected, "{error}");
        // The same error as tokio-rustls hands it on: inside an io::Error inside the caller's error.
        let wrapped = std::io::Error::new(std::io::ErrorKind::InvalidData, error);
        assert_eq!(classify_tls_error(&wrapped, true), Some(expected));
    }
}

#[test]
fn given_refusal_alerts_when_classified_then_missing_and_refused_client_certificates_differ() {
    let alert = rustls::Error::AlertReceived(rustls::AlertDescription::CertificateRequired);
    assert_eq!(
        classify_rustls(&alert, false),
        UplinkFailure::ClientCertificateMissing
    );
    assert_eq!(
        classify_rustls(&alert, true),
        UplinkFailure::ClientCertificateRefused
    );
    let unknown = rustls::Error::AlertReceived(rustls::AlertDescription::UnknownCA);
    assert_eq!(
        classify_rustls(&unknown, true),
        UplinkFailure::ClientCertificateRefused
    );
    let plain = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
    assert_eq!(classify_tls_error(&plain, true), None);
}

#[test]
fn given_a_client_key_of_another_certificate_when_loaded_then_it_is_a_key_mismatch() {
    let dir = tempfile::tempdir().unwrap();
    let authority = ca("Test CA");
    let ca_file = write(dir.path(), "ca.pem", &authority.pem);
    let (cert, _) = leaf(&authority, &["gw-01"], (2020, 2090));
    let (_, other_key) = leaf(&authority, &["gw-01"], (2020, 2090));
    let mut tls = settings(ca_file, None);
    tls.client = Some(ClientIdentityFiles {
        cert_file: write(dir.path(), "client.pem", &cert),
        key_file: write(dir.path(), "client.key", &other_key),
    });
    let error = load(&tls, "localhost").unwrap_err();
    assert!(matches!(error, TlsError::KeyMismatch { .. }), "{error}");
    let message = error.to_string();
    assert!(
        message.contains("client.key") && message.contains("client.pem"),
        "{message}"
    );
    assert!(!message.contains("PRIVATE KEY"), "{message}");
}

#[test]
fn given_a_matching_client_identity_when_loaded_then_its_facts_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let authority = ca("Test CA");
    let ca_file = write(dir.path(), "ca.pem", &authority.pem);
    let (cert, key) = leaf(&authority, &["gw-01"], (2020, 2090));
    let mut tls = settings(ca_file, None);
    tls.client = Some(ClientIdentityFiles {
        cert_file: write(dir.path(), "client.pem", &cert),
        key_file: write(dir.path(), "client.key", &key),
    });
    let loaded = load(&tls, "localhost").unwrap();
    let client = loaded.client_cert.unwrap();
    assert_eq!(client.subject, "CN=gw-01");
    assert_eq!(client.not_after, "2090-01-01T00:00:00Z".parse().unwrap());
    assert_eq!(loaded.ca.unwrap().subject, "CN=Test CA");
}

#[test]
fn given_missing_or_garbage_files_when_loaded_then_the_error_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    assert!(matches!(load_certs(&missing), Err(TlsError::Read { .. })));
    let garbage = write(dir.path(), "garbage.pem", "not a certificate\n");
    let error = load_certs(&garbage).unwrap_err();
    assert!(error.to_string().contains("garbage.pem"), "{error}");
    assert!(matches!(
        load_key(&garbage),
        Err(TlsError::NoPem {
            what: "private key",
            ..
        })
    ));
}

#[test]
fn given_a_password_file_when_read_then_the_line_break_is_dropped_and_debug_hides_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "mqtt.pass", "s3cret-Value\r\n");
    let secret = load_password(&path).unwrap();
    assert_eq!(secret.expose(), "s3cret-Value");
    assert!(!format!("{secret:?}").contains("s3cret"));
    let empty = write(dir.path(), "empty.pass", "\n");
    assert!(matches!(
        load_password(&empty),
        Err(TlsError::EmptyPassword { .. })
    ));
}

#[test]
fn given_a_relative_file_when_resolved_then_the_credentials_directory_comes_first() {
    let credentials = tempfile::tempdir().unwrap();
    let config_dir = tempfile::tempdir().unwrap();
    write(credentials.path(), "client.key", "k");
    let key = Path::new("client.key");
    let pass = Path::new("mqtt.pass");
    assert_eq!(
        resolve_file(key, Some(credentials.path()), config_dir.path()),
        credentials.path().join("client.key")
    );
    assert_eq!(
        resolve_file(pass, Some(credentials.path()), config_dir.path()),
        config_dir.path().join("mqtt.pass")
    );
    assert_eq!(
        resolve_file(key, None, config_dir.path()),
        config_dir.path().join("client.key")
    );
    assert_eq!(
        resolve_file(
            Path::new("/etc/ca.pem"),
            Some(credentials.path()),
            config_dir.path()
        ),
        PathBuf::from("/etc/ca.pem")
    );
}

#[test]
fn given_file_modes_when_checked_then_group_or_world_readable_is_reported() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "mqtt.pass", "x");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(readable_by_others(&path), Some(false));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert_eq!(readable_by_others(&path), Some(true));
}
