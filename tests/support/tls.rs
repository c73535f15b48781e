//! A Mosquitto broker with TLS, client certificates and passwords, for the secure-uplink tests.
//!
//! - [`Pki`]: certificates generated at test time (rcgen) and written as PEM files in a temporary directory: a
//!   CA, a server certificate for `localhost` and 127.0.0.1, an expired one, one for another host name, client
//!   certificates with known serials, and a second CA with a client certificate of its own.
//! - [`TlsBroker`]: a real Mosquitto with TLS listeners that all require a client certificate signed by the CA
//!   (`require_certificate true`), a password file made with `mosquitto_passwd`, a per-user ACL file and a log
//!   file the test reads. Listeners: `port` (the server certificate of [`BrokerSetup::server`], password
//!   login), `identity_port` (the good server certificate, `use_identity_as_username`: the client
//!   certificate's CN is the user name, so the broker's log names the certificate a client presented), and
//!   `expired_port` / `wrong_name_port` (an expired server certificate, one for another host name). The ACL and
//!   the password file can be changed and reloaded (SIGHUP) without dropping connections, or the broker
//!   restarted on the same ports with a different server certificate.
//! - [`Switch`]: a TCP relay the agent connects to; the test points it at another listener or cuts the
//!   current connections (the broker "drops the connection"), so only the agent is affected, never the
//!   recording subscriber.
//! - [`client_options`]: a rumqttc TLS client (the recording subscriber, the harness self-tests).
//! - [`settle_child`]: the end-to-end oracle for the agent binary: every enqueued seq at the subscriber, final
//!   rollups equal to the simulator's truth, the store's integrity after the agent stopped.
//! - [`Secrets`]: greps every file the agent wrote, and everything it published, for its password and keys.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use rumqttc::{MqttOptions, TlsConfiguration, Transport};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use simulators::Truth;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;
use tokio_util::task::AbortOnDropHandle;

use super::agent::{assert_matches_truth, wait_for_last_windows, Plant};
use super::child::ChildAgent;
use super::counting::{CountingReport, Enqueued};
use super::recorder::Recorder;

/// Overall safety net of the waits here; never an expectation about speed.
const PATIENCE: Duration = Duration::from_secs(60);

/// A certificate and its private key, as PEM files and in memory.
#[derive(Clone)]
pub(crate) struct Identity {
    /// The subject's common name (for a client: the user name under `use_identity_as_username`).
    pub cn: String,
    /// The serial number the certificate was issued with.
    pub serial: u64,
    /// PEM certificate file.
    pub cert_path: PathBuf,
    /// PEM private key file (PKCS#8).
    pub key_path: PathBuf,
    /// The certificate, PEM.
    pub cert_pem: String,
    /// The private key, PEM: a secret the agent must never write anywhere.
    pub key_pem: String,
    cert_der: CertificateDer<'static>,
    key_der: Vec<u8>,
}

/// A CA: its certificate file and the key that signs the certificates issued below it.
pub(crate) struct Authority {
    /// PEM certificate file of the CA.
    pub cert_path: PathBuf,
    cert_der: CertificateDer<'static>,
    cert: rcgen::Certificate,
    key: KeyPair,
}

/// Every certificate the TLS tests use, generated at test time into one temporary directory.
pub(crate) struct Pki {
    dir: tempfile::TempDir,
    /// The CA the broker and the agent trust.
    pub ca: Authority,
    /// Another CA nobody trusts.
    pub other_ca: Authority,
    /// Server certificate for `localhost` and 127.0.0.1.
    pub server: Identity,
    /// Server certificate for `localhost` and 127.0.0.1 that expired in 2021.
    pub server_expired: Identity,
    /// Server certificate for `broker.elsewhere.example` only.
    pub server_wrong_name: Identity,
    /// The recording subscriber's client certificate (CN `recorder`).
    pub recorder: Identity,
    next_serial: AtomicU64,
}

/// Which server certificate the broker's main listener presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServerCert {
    /// Valid, for `localhost` and 127.0.0.1.
    Good,
    /// For the right names, expired.
    Expired,
    /// Valid, for another host name.
    WrongName,
}

/// Issues certificates with increasing serials into one directory.
struct Minter<'a> {
    dir: &'a Path,
    next_serial: &'a AtomicU64,
}

impl Minter<'_> {
    fn client(&self, file: &str, cn: &str, ca: &Authority, not_after_year: i32) -> Identity {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(cn);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        set_validity(&mut params, false);
        params.not_after = rcgen::date_time_ymd(not_after_year, 1, 1);
        self.sign(file, cn, params, ca)
    }

    fn server(&self, file: &str, names: &[&str], expired: bool, ca: &Authority) -> Identity {
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("valid server names");
        params.distinguished_name = dn(&names[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        set_validity(&mut params, expired);
        self.sign(file, &names[0], params, ca)
    }

    fn sign(
        &self,
        file: &str,
        cn: &str,
        mut params: CertificateParams,
        ca: &Authority,
    ) -> Identity {
        let serial = self.next_serial.fetch_add(1, Ordering::Relaxed);
        params.serial_number = Some(serial_number(serial));
        let key = KeyPair::generate().expect("a key pair");
        let cert = params
            .signed_by(&key, &ca.cert, &ca.key)
            .expect("the CA signs the certificate");
        let cert_path = self.dir.join(format!("{file}.pem"));
        let key_path = self.dir.join(format!("{file}.key"));
        std::fs::write(&cert_path, cert.pem()).expect("write the certificate");
        write_private(&key_path, key.serialize_pem().as_bytes());
        Identity {
            cn: cn.to_string(),
            serial,
            cert_path,
            key_path,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            cert_der: cert.der().clone(),
            key_der: key.serialize_der(),
        }
    }
}

/// Certificates are valid until 1 January of this year unless a test asks otherwise.
pub(crate) const VALID_UNTIL: i32 = 2120;

/// Valid from 2020 to [`VALID_UNTIL`], or expired since 2021.
fn set_validity(params: &mut CertificateParams, expired: bool) {
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    let until = if expired { 2021 } else { VALID_UNTIL };
    params.not_after = rcgen::date_time_ymd(until, 1, 1);
}

impl Pki {
    /// Generates the CAs, the server certificates and the recorder's client certificate.
    pub(crate) fn generate() -> Pki {
        let dir = tempfile::tempdir().expect("a temporary directory for the PKI");
        let next_serial = AtomicU64::new(0x1001);
        let ca = authority(dir.path(), "ca", "shopfloor test CA");
        let other_ca = authority(dir.path(), "other-ca", "some other CA");
        let minter = Minter {
            dir: dir.path(),
            next_serial: &next_serial,
        };
        let names = ["localhost", "127.0.0.1"];
        let server = minter.server("server", &names, false, &ca);
        let server_expired = minter.server("server-expired", &names, true, &ca);
        let server_wrong_name = minter.server(
            "server-wrong-name",
            &["broker.elsewhere.example"],
            false,
            &ca,
        );
        let recorder = minter.client("recorder", "recorder", &ca, VALID_UNTIL);
        Pki {
            dir,
            ca,
            other_ca,
            server,
            server_expired,
            server_wrong_name,
            recorder,
            next_serial,
        }
    }

    fn minter(&self) -> Minter<'_> {
        Minter {
            dir: self.dir.path(),
            next_serial: &self.next_serial,
        }
    }

    /// A client certificate with common name `cn`, signed by the trusted CA, written as `{file}.pem` and
    /// `{file}.key`; each one gets a new serial.
    pub(crate) fn client(&self, file: &str, cn: &str) -> Identity {
        self.minter().client(file, cn, &self.ca, VALID_UNTIL)
    }

    /// Like [`Pki::client`], valid until 1 January of `year` (a replacement told apart by its expiry).
    pub(crate) fn client_until(&self, file: &str, cn: &str, year: i32) -> Identity {
        self.minter().client(file, cn, &self.ca, year)
    }

    /// A client certificate with common name `cn` signed by the CA nobody trusts.
    pub(crate) fn client_of_other_ca(&self, file: &str, cn: &str) -> Identity {
        self.minter().client(file, cn, &self.other_ca, VALID_UNTIL)
    }

    /// The server certificate `which` names.
    pub(crate) fn server_cert(&self, which: ServerCert) -> &Identity {
        match which {
            ServerCert::Good => &self.server,
            ServerCert::Expired => &self.server_expired,
            ServerCert::WrongName => &self.server_wrong_name,
        }
    }
}

fn authority(dir: &Path, file: &str, cn: &str) -> Authority {
    let mut params = CertificateParams::default();
    params.distinguished_name = dn(cn);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    set_validity(&mut params, false);
    let key = KeyPair::generate().expect("a CA key pair");
    let cert = params.self_signed(&key).expect("a self-signed CA");
    let cert_path = dir.join(format!("{file}.pem"));
    std::fs::write(&cert_path, cert.pem()).expect("write the CA certificate");
    Authority {
        cert_path,
        cert_der: cert.der().clone(),
        cert,
        key,
    }
}

fn dn(cn: &str) -> rcgen::DistinguishedName {
    let mut name = rcgen::DistinguishedName::new();
    name.push(DnType::CommonName, cn);
    name
}

/// A positive DER serial: the big-endian bytes without leading zeros (the values used stay below 2^63).
fn serial_number(serial: u64) -> SerialNumber {
    let bytes = serial.to_be_bytes();
    let first = bytes.iter().position(|byte| *byte != 0).unwrap_or(7);
    SerialNumber::from_slice(&bytes[first..])
}

/// Writes a secrets file readable by its owner only (the agent warns about anything looser).
pub(crate) fn write_private(path: &Path, contents: &[u8]) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, contents).expect("write a secrets file");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .expect("restrict the secrets file");
}

/// Copies `identity`'s certificate and key over `cert_path` and `key_path` (a rotation, or a fault, on disk).
pub(crate) fn install_identity(identity: &Identity, cert_path: &Path, key_path: &Path) {
    std::fs::write(cert_path, &identity.cert_pem).expect("write the certificate");
    write_private(key_path, identity.key_pem.as_bytes());
}

/// What a [`TlsBroker`] is started with.
#[derive(Debug, Clone)]
pub(crate) struct BrokerSetup {
    /// The server certificate of the main listener (`port`).
    pub server: ServerCert,
    /// User names and passwords of the password file (hashed by `mosquitto_passwd -U`).
    pub users: Vec<(String, String)>,
    /// Text of the ACL file (`user` sections with `topic read|write|readwrite` lines).
    pub acl: String,
}

/// An ACL giving each of `users` read and write access to `filter`, and the recorder read access to every
/// topic.
pub(crate) fn acl_for(users: &[&str], filter: &str) -> String {
    let mut text = String::new();
    for user in users {
        text.push_str(&format!("user {user}\ntopic readwrite {filter}\n\n"));
    }
    text.push_str("user recorder\ntopic read #\n");
    text
}

/// A running Mosquitto with TLS listeners (see the module header); killed when dropped.
pub(crate) struct TlsBroker {
    /// Main listener: the server certificate of the setup, client certificate and password required.
    pub port: u16,
    /// The good server certificate; the client certificate's CN is the user name.
    pub identity_port: u16,
    /// An expired server certificate; otherwise like `port`.
    pub expired_port: u16,
    /// A server certificate for another host name; otherwise like `port`.
    pub wrong_name_port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
    setup: BrokerSetup,
}

impl TlsBroker {
    /// Starts Mosquitto with the certificates of `pki` and `setup`; returns once every listener accepts
    /// TCP connections. `None` (after saying so) when Mosquitto is not installed, unless
    /// `SHOPFLOOR_TEST_BROKER=mosquitto` demands it (as CI does).
    pub(crate) fn start(pki: &Pki, setup: BrokerSetup) -> Option<TlsBroker> {
        let demanded = std::env::var(shopfloor_agent::broker::TEST_BROKER_ENV)
            .is_ok_and(|choice| choice.trim().eq_ignore_ascii_case("mosquitto"));
        if find_executable("mosquitto").is_none() && !demanded {
            eprintln!("skipped: this test needs Mosquitto, which is not installed");
            return None;
        }
        let dir = tempfile::tempdir().expect("a temporary directory for mosquitto");
        let mut broker = TlsBroker {
            port: super::free_port(),
            identity_port: super::free_port(),
            expired_port: super::free_port(),
            wrong_name_port: super::free_port(),
            dir,
            child: None,
            setup,
        };
        broker.spawn(pki);
        Some(broker)
    }

    /// Mosquitto's log so far (connections, refusals with their OpenSSL or CONNACK cause, ACL denials).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }

    /// Replaces the ACL and reloads it (SIGHUP); connections stay up. Returns once Mosquitto says it reloaded.
    pub(crate) async fn set_acl(&mut self, acl: &str) {
        self.setup.acl = acl.to_string();
        std::fs::write(self.dir.path().join("acl"), acl).expect("write the ACL file");
        self.reload().await;
    }

    /// Replaces the password file and reloads it (SIGHUP); connections stay up.
    pub(crate) async fn set_users(&mut self, users: &[(&str, &str)]) {
        self.setup.users = users
            .iter()
            .map(|(user, password)| (user.to_string(), password.to_string()))
            .collect();
        write_password_file(&self.dir.path().join("passwd"), &self.setup.users);
        self.reload().await;
    }

    async fn reload(&self) {
        const RELOADED: &str = "Reloading config";
        let before = self.log().matches(RELOADED).count();
        let pid = self.child.as_ref().expect("mosquitto runs").id();
        let status = Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGHUP to mosquitto failed");
        super::wait_until(PATIENCE, "mosquitto to reload its configuration", || {
            self.log().matches(RELOADED).count() > before
        })
        .await;
    }

    /// Kills Mosquitto and starts it again on the same ports with `server` on the main listener; every
    /// client loses its connection.
    pub(crate) fn restart_with(&mut self, pki: &Pki, server: ServerCert) {
        self.stop();
        self.setup.server = server;
        self.spawn(pki);
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn spawn(&mut self, pki: &Pki) {
        let dir = self.dir.path();
        write_password_file(&dir.join("passwd"), &self.setup.users);
        std::fs::write(dir.join("acl"), &self.setup.acl).expect("write the ACL file");
        let config = dir.join("mosquitto.conf");
        std::fs::write(&config, self.config_text(pki)).expect("write mosquitto.conf");
        let output = std::fs::File::create(dir.join("mosquitto.out")).expect("mosquitto.out");
        let executable = find_executable("mosquitto").expect("mosquitto is installed");
        let child = Command::new(executable)
            .arg("-c")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(output.try_clone().expect("duplicate the output handle"))
            .stderr(output)
            .spawn()
            .expect("mosquitto starts");
        self.child = Some(child);
        for port in [
            self.port,
            self.identity_port,
            self.expired_port,
            self.wrong_name_port,
        ] {
            self.wait_listening(port);
        }
        announce(self.port);
    }

    fn wait_listening(&mut self, port: u16) {
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            let child = self.child.as_mut().expect("mosquitto was spawned");
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "mosquitto exited ({status}): {}\n{}",
                    std::fs::read_to_string(self.dir.path().join("mosquitto.out"))
                        .unwrap_or_default(),
                    self.log()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "mosquitto did not listen on {port}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn config_text(&self, pki: &Pki) -> String {
        let dir = self.dir.path();
        // Started as root, Mosquitto would switch to its own user, which cannot read the temporary files.
        let user = if running_as_root() { "user root\n" } else { "" };
        let mut text = format!(
            "per_listener_settings false\nallow_anonymous false\npersistence false\n{user}\
             password_file {passwd}\nacl_file {acl}\nlog_dest file {log}\nlog_type all\n\
             connection_messages true\nlog_timestamp_format %Y-%m-%dT%H:%M:%S\n\
             max_queued_messages 10000000\n",
            passwd = dir.join("passwd").display(),
            acl = dir.join("acl").display(),
            log = dir.join("mosquitto.log").display(),
        );
        let listeners = [
            (self.port, pki.server_cert(self.setup.server), false),
            (self.identity_port, &pki.server, true),
            (self.expired_port, &pki.server_expired, false),
            (self.wrong_name_port, &pki.server_wrong_name, false),
        ];
        for (port, server, identity) in listeners {
            text.push_str(&format!(
                "\nlistener {port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n\
                 require_certificate true\nuse_identity_as_username {identity}\n",
                ca = pki.ca.cert_path.display(),
                cert = server.cert_path.display(),
                key = server.key_path.display(),
            ));
        }
        text
    }
}

impl Drop for TlsBroker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// Writes `users` as `name:password` lines and hashes them in place with `mosquitto_passwd -U`.
fn write_password_file(path: &Path, users: &[(String, String)]) {
    let text: String = users
        .iter()
        .map(|(user, password)| format!("{user}:{password}\n"))
        .collect();
    write_private(path, text.as_bytes());
    let status = Command::new(mosquitto_passwd())
        .arg("-U")
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .expect("mosquitto_passwd runs");
    assert!(status.success(), "mosquitto_passwd -U failed: {status}");
}

/// Says on stderr, and in `SHOPFLOOR_TEST_BROKER_LOG` when set, that a test runs against Mosquitto (CI checks).
fn announce(port: u16) {
    let line = format!("broker: mosquitto (TLS) on 127.0.0.1:{port}");
    eprintln!("test {line}");
    if let Ok(path) = std::env::var("SHOPFLOOR_TEST_BROKER_LOG") {
        use std::io::Write;
        if let Ok(mut file) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(file, "{line}");
        }
    }
}

fn mosquitto_passwd() -> PathBuf {
    find_executable("mosquitto_passwd").expect("mosquitto_passwd is installed with mosquitto")
}

/// `name` on PATH, else in the sbin and bin directories a non-root PATH often lacks.
fn find_executable(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A TCP relay on 127.0.0.1: each connection goes to the upstream port set when it was accepted; the test
/// re-points it or cuts the current connections.
pub(crate) struct Switch {
    /// The port clients connect to.
    pub port: u16,
    upstream: Arc<AtomicU16>,
    accepted: Arc<AtomicU64>,
    connections: Arc<Mutex<Vec<AbortHandle>>>,
    _accept: AbortOnDropHandle<()>,
}

impl Switch {
    /// Listens on a free port and relays to 127.0.0.1:`upstream`.
    pub(crate) async fn start(upstream: u16) -> Switch {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("a free port for the switch");
        let port = listener.local_addr().expect("bound address").port();
        let upstream = Arc::new(AtomicU16::new(upstream));
        let connections: Arc<Mutex<Vec<AbortHandle>>> = Arc::default();
        let accepted = Arc::new(AtomicU64::new(0));
        let (task_upstream, task_connections) = (upstream.clone(), connections.clone());
        let task_accepted = accepted.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                task_accepted.fetch_add(1, Ordering::Relaxed);
                let target = task_upstream.load(Ordering::Relaxed);
                let relay = tokio::spawn(async move {
                    let Ok(mut server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let mut client = client;
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                });
                let mut open = task_connections.lock().expect("switch lock");
                open.retain(|handle| !handle.is_finished());
                open.push(relay.abort_handle());
            }
        });
        Switch {
            port,
            upstream,
            accepted,
            connections,
            _accept: AbortOnDropHandle::new(accept),
        }
    }

    /// New connections go to 127.0.0.1:`upstream`; existing ones are left alone.
    pub(crate) fn point_to(&self, upstream: u16) {
        self.upstream.store(upstream, Ordering::Relaxed);
    }

    /// Connections accepted so far (each one a connection attempt of the client).
    pub(crate) fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    /// Closes every relayed connection (the client sees the broker drop it).
    pub(crate) fn cut(&self) {
        for handle in self.connections.lock().expect("switch lock").drain(..) {
            handle.abort();
        }
    }
}

/// rumqttc options for a TLS client on 127.0.0.1:`port` that trusts the CA of `pki`, presents `identity`
/// (none when `None`) and logs in as `login` when given; the host name checked is `localhost`.
pub(crate) fn client_options(
    pki: &Pki,
    port: u16,
    client_id: &str,
    identity: Option<&Identity>,
    login: Option<(&str, &str)>,
) -> MqttOptions {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(pki.ca.cert_der.clone())
        .expect("the CA certificate is usable as a root");
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("default TLS versions")
    .with_root_certificates(roots);
    let config = match identity {
        Some(identity) => {
            let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(identity.key_der.clone()));
            builder
                .with_client_auth_cert(vec![identity.cert_der.clone()], key)
                .expect("the client certificate and key match")
        }
        None => builder.with_no_client_auth(),
    };
    let mut options = MqttOptions::new(client_id, "localhost", port);
    options.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
        Arc::new(config),
    )));
    if let Some((username, password)) = login {
        options.set_credentials(username, password);
    }
    options
}

/// A recording subscriber on the broker's identity listener (user `recorder`, by its certificate), so
/// faults injected on the agent's side never touch it.
pub(crate) async fn recorder(pki: &Pki, broker: &TlsBroker, filter: &str) -> Recorder {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let id = format!(
        "tls-recorder-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    );
    let options = client_options(pki, broker.identity_port, &id, Some(&pki.recorder), None);
    Recorder::subscribe_with(options, filter).await
}

/// db_epoch, the highest seq ever assigned and the seqs still in the outbox of the agent's database, read
/// through a short read-only connection while the agent runs; `None` until the database exists.
pub(crate) fn enqueued_in_file(database: &Path) -> Option<Enqueued> {
    let conn =
        rusqlite::Connection::open_with_flags(database, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    let epoch: String = conn
        .query_row("SELECT value FROM meta WHERE key = 'db_epoch'", [], |row| {
            row.get(0)
        })
        .ok()?;
    let last_seq: i64 = conn
        .query_row(
            "SELECT coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'outbox'), 0)",
            [],
            |row| row.get(0),
        )
        .ok()?;
    let mut stmt = conn.prepare("SELECT seq FROM outbox").ok()?;
    let unsent: BTreeSet<i64> = stmt
        .query_map([], |row| row.get(0))
        .ok()?
        .collect::<Result<_, _>>()
        .ok()?;
    Some(Enqueued {
        epochs: [(epoch, (last_seq, unsent))].into(),
    })
}

/// The end-to-end oracle for the agent binary, run after production was frozen at `frozen_at`: waits until
/// the windows holding the last production are final and every enqueued row reached `recorder`, stops the
/// agent (exit status 0), checks the store's integrity, prints the counting report and asserts that nothing
/// is missing and that per machine and period the de-duplicated final rollups sum exactly to the truth
/// since `before`. Returns the report and what the agent logged.
pub(crate) async fn settle_child(
    scenario: &str,
    plant: &Plant,
    agent: ChildAgent,
    recorder: &Recorder,
    before: &[Truth],
    frozen_at: i64,
    database: &Path,
) -> (CountingReport, String) {
    wait_for_last_windows(plant, recorder, frozen_at).await;
    super::wait_until(PATIENCE, "every enqueued row at the subscriber", || {
        enqueued_in_file(database).is_some_and(|enqueued| {
            CountingReport::count(&recorder.messages(), &enqueued)
                .0
                .missing
                == 0
        })
    })
    .await;
    let after = plant.truth();
    let log = agent.log();
    let status = agent.stop().await;
    assert!(
        status.success(),
        "[{scenario}] exit status {status}; log:\n{log}"
    );
    let path = database.to_path_buf();
    let enqueued = tokio::task::spawn_blocking(move || {
        use shopfloor_agent::store::{Store, StoreOptions};
        let store = Store::open(&path, &StoreOptions::default()).expect("the database reopens");
        let problems = store.integrity_check().expect("integrity_check runs");
        assert!(problems.is_empty(), "integrity_check: {problems:?}");
        drop(store);
        enqueued_in_file(&path).expect("the database is readable")
    })
    .await
    .expect("reopen task");
    let report = assert_matches_truth(scenario, plant, recorder, &enqueued, before, &after);
    (report, log)
}

/// The secrets a test handed the agent, in the forms they could leak in.
pub(crate) struct Secrets {
    needles: Vec<(String, Vec<u8>)>,
}

impl Secrets {
    /// The passwords, and of each private key every base64 line of its PEM and its DER bytes in hex.
    pub(crate) fn new(passwords: &[&str], keys: &[&Identity]) -> Secrets {
        let mut needles: Vec<(String, Vec<u8>)> = passwords
            .iter()
            .map(|password| ("a password".to_string(), password.as_bytes().to_vec()))
            .collect();
        for key in keys {
            for line in key
                .key_pem
                .lines()
                .filter(|line| !line.starts_with("-----"))
            {
                // Short last lines could match by chance; the full 64-character lines cannot.
                if line.len() >= 40 {
                    needles.push((format!("key {} (PEM)", key.cn), line.as_bytes().to_vec()));
                }
            }
            let hex: String = key
                .key_der
                .iter()
                .map(|byte| format!("{byte:02x}"))
                .collect();
            needles.push((format!("key {} (hex)", key.cn), hex.into_bytes()));
        }
        Secrets { needles }
    }

    /// Panics naming the file (or message) and the secret if any file under `dir` or any message `recorder`
    /// received holds one of them. Returns how many bytes were searched.
    pub(crate) fn assert_absent(&self, dir: &Path, recorder: &Recorder) -> usize {
        let (mut searched, mut leaks) = self.leaks_in_files(dir);
        for message in recorder.messages() {
            let text = format!("{} {}", message.topic, message.body);
            searched += text.len();
            leaks.extend(self.found_in(text.as_bytes(), &format!("message on {}", message.topic)));
        }
        assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
        searched
    }

    /// Bytes searched, and "<secret> in <file>" for each secret found in a file under `dir`.
    fn leaks_in_files(&self, dir: &Path) -> (usize, Vec<String>) {
        let (mut searched, mut leaks) = (0, Vec::new());
        let mut paths = vec![dir.to_path_buf()];
        while let Some(path) = paths.pop() {
            if path.is_dir() {
                let entries = std::fs::read_dir(&path).expect("read a directory the agent wrote");
                paths.extend(entries.map(|entry| entry.expect("directory entry").path()));
                continue;
            }
            let bytes = std::fs::read(&path).expect("read a file the agent wrote");
            searched += bytes.len();
            leaks.extend(self.found_in(&bytes, &path.display().to_string()));
        }
        (searched, leaks)
    }

    fn found_in(&self, haystack: &[u8], place: &str) -> Vec<String> {
        self.needles
            .iter()
            .filter(|(_, needle)| {
                haystack
                    .windows(needle.len())
                    .any(|window| window == needle)
            })
            .map(|(what, _)| format!("{what} in {place}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn given_a_password_and_a_key_line_planted_in_files_when_searched_then_each_is_found_and_a_clean_file_passes(
    ) {
        let pki = Pki::generate();
        let key = pki.client("gw", "gw-01");
        let secrets = Secrets::new(&["hunter2-but-longer"], &[&key]);
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(
            dir.path().join("clean.log"),
            "connected to broker; cert CN gw-01\n",
        )
        .expect("write");
        assert_eq!(secrets.leaks_in_files(dir.path()).1, Vec::<String>::new());

        let key_line = key.key_pem.lines().nth(1).expect("a base64 line");
        std::fs::create_dir(dir.path().join("data")).expect("mkdir");
        std::fs::write(
            dir.path().join("data/a.log"),
            format!("error: bad key {key_line}"),
        )
        .expect("write");
        std::fs::write(dir.path().join("b.log"), "login hunter2-but-longer refused")
            .expect("write");
        let (searched, mut leaks) = secrets.leaks_in_files(dir.path());
        leaks.sort();
        assert!(searched > 0);
        assert_eq!(leaks.len(), 2, "{leaks:?}");
        assert!(
            leaks[1].starts_with("key gw-01 (PEM) in ") && leaks[1].ends_with("a.log"),
            "{leaks:?}"
        );
        assert!(
            leaks[0].starts_with("a password in ") && leaks[0].ends_with("b.log"),
            "{leaks:?}"
        );
    }
}
