//! The secure uplink against a real Mosquitto with TLS, client certificates (`require_certificate true`), a
//! password file and a per-user ACL (see `support::tls`). Certificates are generated at test time.
//!
//! - `harness`: the broker itself, with a bare rumqttc TLS client: the right certificate and password connect
//!   and publish; a wrong password is refused with its CONNACK reason; a certificate from another CA, an
//!   expired server certificate and a server certificate for another name fail the handshake; a restart
//!   with a different server certificate, a password file reload and an ACL reload take effect.
//! - `agent`: the agent binary with mTLS and a password (its credentials in files): the final rollups equal
//!   the simulator's truth in every case, after an ACL refusal after login, an expired server certificate, a
//!   server certificate for another name, a wrong CA file, a client certificate of another CA, no client
//!   certificate, a wrong password (each refused, named in the agent's log, retried, survived), and a client
//!   certificate rotated on disk (the broker logs the new certificate's CN); nothing the agent wrote or
//!   published, nor `validate`'s output, holds its password or key material.

use std::time::Duration;

use std::path::{Path, PathBuf};

use rumqttc::{AsyncClient, ConnectReturnCode, ConnectionError, Event, MqttOptions, Packet, QoS};
use simulators::Truth;

use crate::support::agent::{freeze_before_boundary, Plant, Tuning};
use crate::support::child::ChildAgent;
use crate::support::tls::{
    acl_for, client_options, install_identity, recorder, settle_child, write_private, BrokerSetup,
    Identity, Pki, Secrets, ServerCert, Switch, TlsBroker,
};
use crate::support::{self, Recorder};
use shopfloor_agent::tls::UplinkFailure;

/// Overall safety net of every wait; never an expectation about speed.
const PATIENCE: Duration = Duration::from_secs(60);
/// The agent's user name in the broker's password file and ACL.
const USER: &str = "gw-01";
/// Its password (a secret: it must never appear in anything the agent writes).
const PASSWORD: &str = "s3cret-Pa55word-never-logged";

fn setup() -> BrokerSetup {
    BrokerSetup {
        server: ServerCert::Good,
        users: vec![(USER.to_string(), PASSWORD.to_string())],
        acl: acl_for(&[USER], "shopfloor/#"),
    }
}

/// Connects with `options` and returns the first outcome: `Ok` on CONNACK success, else the error.
async fn try_connect(options: MqttOptions) -> Result<AsyncClient, ConnectionError> {
    let (client, mut event_loop) = AsyncClient::new(options, 16);
    let outcome = tokio::time::timeout(PATIENCE, async {
        loop {
            match event_loop.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(error) => return Err(error),
            }
        }
    })
    .await
    .expect("the connection attempt ends");
    outcome?;
    tokio::spawn(async move { while event_loop.poll().await.is_ok() {} });
    Ok(client)
}

mod harness {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_the_right_certificate_and_password_when_a_client_publishes_then_the_subscriber_gets_it(
    ) {
        let pki = Pki::generate();
        let Some(broker) = TlsBroker::start(&pki, setup()) else {
            return;
        };
        let recorder = recorder(&pki, &broker, "shopfloor/#").await;
        let identity = pki.client("gw-01", USER);
        let options = client_options(
            &pki,
            broker.port,
            "selftest",
            Some(&identity),
            Some((USER, PASSWORD)),
        );

        let client = try_connect(options)
            .await
            .expect("the right credentials connect");
        client
            .publish("shopfloor/v1/selftest", QoS::AtLeastOnce, false, "hello")
            .await
            .expect("request channel open");

        support::wait_until(PATIENCE, "the message at the subscriber", || {
            !recorder.messages_matching("selftest").is_empty()
        })
        .await;
        // The broker's log names both logins: the password user, and the recorder by its certificate's CN.
        let log = broker.log();
        assert!(log.contains(&format!("u'{USER}'")), "{log}");
        assert!(log.contains("u'recorder'"), "{log}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_a_wrong_password_or_a_foreign_certificate_when_a_client_connects_then_it_is_refused_with_its_cause(
    ) {
        let pki = Pki::generate();
        let Some(mut broker) = TlsBroker::start(&pki, setup()) else {
            return;
        };
        let identity = pki.client("gw-01", USER);

        // A wrong password: the broker answers CONNACK with a refusal reason.
        let wrong = client_options(
            &pki,
            broker.port,
            "wrong-pw",
            Some(&identity),
            Some((USER, "nope")),
        );
        let refused = try_connect(wrong)
            .await
            .expect_err("a wrong password is refused");
        assert!(
            matches!(
                refused,
                ConnectionError::ConnectionRefused(
                    ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized
                )
            ),
            "{refused:?}"
        );
        support::report(&format!("tls harness: wrong password refused: {refused:?}"));
        // The password file changed and reloaded: the same password is accepted now.
        broker.set_users(&[(USER, "nope")]).await;
        let reloaded = client_options(
            &pki,
            broker.port,
            "wrong-pw",
            Some(&identity),
            Some((USER, "nope")),
        );
        try_connect(reloaded)
            .await
            .expect("the reloaded password file accepts it");

        // A client certificate from another CA: the broker fails the handshake.
        let foreign = pki.client_of_other_ca("foreign", USER);
        let options = client_options(
            &pki,
            broker.port,
            "foreign",
            Some(&foreign),
            Some((USER, PASSWORD)),
        );
        let refused = try_connect(options)
            .await
            .expect_err("a foreign certificate is refused");
        assert!(
            !matches!(refused, ConnectionError::ConnectionRefused(_)),
            "{refused:?}"
        );
        support::report(&format!(
            "tls harness: client certificate of another CA: {refused:?}"
        ));
        support::wait_until(
            PATIENCE,
            "the broker to log the refused certificate",
            || broker.log().contains("certificate verify failed"),
        )
        .await;

        // No client certificate at all: the broker requires one.
        let options = client_options(&pki, broker.port, "no-cert", None, Some((USER, PASSWORD)));
        let refused = try_connect(options)
            .await
            .expect_err("a missing client certificate is refused");
        assert!(
            !matches!(refused, ConnectionError::ConnectionRefused(_)),
            "{refused:?}"
        );
        support::report(&format!("tls harness: no client certificate: {refused:?}"));
        support::wait_until(
            PATIENCE,
            "the broker to log the missing certificate",
            || broker.log().contains("peer did not return a certificate"),
        )
        .await;

        // The expired server certificate and the one for another name fail on the client's side.
        for (port, cause) in [
            (broker.expired_port, "Expired"),
            (broker.wrong_name_port, "NotValidForName"),
        ] {
            let options = client_options(
                &pki,
                port,
                "bad-server",
                Some(&identity),
                Some((USER, PASSWORD)),
            );
            let refused = try_connect(options)
                .await
                .expect_err("a bad server certificate is refused");
            assert!(
                format!("{refused:?}").contains(cause),
                "{cause}: {refused:?}"
            );
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_a_restart_with_an_expired_certificate_and_an_acl_reload_when_clients_connect_then_both_take_effect(
    ) {
        let pki = Pki::generate();
        let Some(mut broker) = TlsBroker::start(&pki, setup()) else {
            return;
        };
        let identity = pki.client("gw-01", USER);
        let port = broker.port;
        let options = || {
            client_options(
                &pki,
                port,
                "restart",
                Some(&identity),
                Some((USER, PASSWORD)),
            )
        };

        broker.restart_with(&pki, ServerCert::Expired);
        let refused = try_connect(options())
            .await
            .expect_err("the expired certificate is refused");
        assert!(format!("{refused:?}").contains("Expired"), "{refused:?}");
        broker.restart_with(&pki, ServerCert::WrongName);
        let refused = try_connect(options())
            .await
            .expect_err("the wrong name is refused");
        assert!(
            format!("{refused:?}").contains("NotValidForName"),
            "{refused:?}"
        );
        broker.restart_with(&pki, ServerCert::Good);
        let client = try_connect(options())
            .await
            .expect("the good certificate is accepted");

        // An ACL without the agent's topics, reloaded while connected: the broker logs the denied PUBLISH.
        broker.set_acl(&acl_for(&[USER], "elsewhere/#")).await;
        client
            .publish("shopfloor/v1/denied", QoS::AtLeastOnce, false, "x")
            .await
            .expect("request channel open");
        support::wait_until(PATIENCE, "the broker to deny the publish", || {
            broker.log().contains("Denied PUBLISH")
        })
        .await;
    }
}

/// The agent binary publishing over TLS with a client certificate and a password, through a [`Switch`] to
/// the broker, with simulated PLCs and a recording subscriber on the broker's identity listener.
struct Uplink {
    pki: Pki,
    broker: TlsBroker,
    switch: Switch,
    recorder: Recorder,
    plant: Plant,
    /// The agent's credential files: ca.pem, client.pem, client.key, mqtt.pass.
    creds: tempfile::TempDir,
    /// The agent's own directory: agent.toml, agent.log, data/ (everything it writes).
    dir: tempfile::TempDir,
    /// The client certificate installed at the start.
    identity: Identity,
}

/// What the agent is told about its client certificate.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClientCert {
    Configured,
    Left,
}

impl Uplink {
    /// The broker, the switch pointing at its main listener (or `identity_port` when `by_identity`), the
    /// recorder, the plant (frozen) and the credential files; `None` when Mosquitto is not installed.
    async fn start(seed: u64, by_identity: bool) -> Option<Uplink> {
        let pki = Pki::generate();
        let mut setup = setup();
        setup.acl = acl_for(&[USER, ROTATED], "shopfloor/#");
        let broker = TlsBroker::start(&pki, setup)?;
        let upstream = if by_identity {
            broker.identity_port
        } else {
            broker.port
        };
        let switch = Switch::start(upstream).await;
        let recorder = recorder(&pki, &broker, "shopfloor/#").await;
        let plant = Plant::start(seed).await;
        let creds = tempfile::tempdir().expect("a directory for the credentials");
        let identity = pki.client("gw-01", USER);
        let uplink = Uplink {
            pki,
            broker,
            switch,
            recorder,
            plant,
            creds,
            dir: tempfile::tempdir().expect("the agent's directory"),
            identity,
        };
        uplink.install_ca(&uplink.pki.ca.cert_path);
        install_identity(&uplink.identity, &uplink.cert_path(), &uplink.key_path());
        uplink.install_password(PASSWORD);
        Some(uplink)
    }

    fn cert_path(&self) -> PathBuf {
        self.creds.path().join("client.pem")
    }

    fn key_path(&self) -> PathBuf {
        self.creds.path().join("client.key")
    }

    fn install_ca(&self, ca: &Path) {
        std::fs::copy(ca, self.creds.path().join("ca.pem")).expect("install the CA file");
    }

    fn install_password(&self, password: &str) {
        write_private(
            &self.creds.path().join("mqtt.pass"),
            format!("{password}\n").as_bytes(),
        );
    }

    fn database(&self) -> PathBuf {
        self.dir
            .path()
            .join("data")
            .join(shopfloor_agent::store::DATABASE_FILE)
    }

    /// The agent's configuration: `[mqtt] tls = true` with the CA file, the password file and (when
    /// `Configured`) the client certificate and key.
    fn config(&self, cert: ClientCert) -> String {
        let creds = self.creds.path().display();
        let mut mqtt = format!(
            "tls = true\nca_file = \"{creds}/ca.pem\"\nusername = \"{USER}\"\n\
             password_file = \"{creds}/mqtt.pass\"\nconnect_timeout = \"2s\"\n"
        );
        if cert == ClientCert::Configured {
            mqtt.push_str(&format!(
                "cert_file = \"{creds}/client.pem\"\nkey_file = \"{creds}/client.key\"\n"
            ));
        }
        let tuning = Tuning {
            live_interval: "1s",
            mqtt: &mqtt,
            agent: "",
            store: "",
        };
        self.plant
            .config_text(self.switch.port, &tuning, &self.dir.path().join("data"))
    }

    fn start_agent(&self, cert: ClientCert) -> ChildAgent {
        ChildAgent::start(self.dir.path(), &self.config(cert))
    }

    /// Starts the agent, waits until every machine's first 2 s rollup arrived (so it polled and delivers),
    /// takes the truth and starts production.
    async fn start_producing(&self) -> (ChildAgent, Vec<Truth>) {
        let mut agent = self.start_agent(ClientCert::Configured);
        support::wait_until(PATIENCE, "a first rollup of every machine", || {
            assert!(agent.running(), "the agent ended:\n{}", agent.log());
            self.plant.machines().iter().all(|machine| {
                !self
                    .recorder
                    .messages_matching(&format!("/{machine}/rollup/2s"))
                    .is_empty()
            })
        })
        .await;
        let before = self.plant.truth();
        self.plant.set_producing(true);
        (agent, before)
    }

    /// Logins of `user` the broker has accepted so far.
    fn logins(&self, user: &str) -> usize {
        self.broker.log().matches(&format!("u'{user}'")).count()
    }

    /// Waits until the agent made two more connection attempts through the switch (so it retried) and is
    /// still running.
    async fn wait_refused_twice(&self, agent: &mut ChildAgent, fault: &str) {
        let before = self.switch.accepted();
        support::wait_until(PATIENCE, &format!("two attempts under: {fault}"), || {
            self.switch.accepted() >= before + 2
        })
        .await;
        assert!(
            agent.running(),
            "the agent ended under {fault}:\n{}",
            agent.log()
        );
    }

    /// Waits until the broker accepted one more login of `user` than `before` (the agent is back).
    async fn wait_login(&self, user: &str, before: usize) {
        support::wait_until(PATIENCE, &format!("a new login of {user}"), || {
            self.logins(user) > before
        })
        .await;
    }

    /// Injects a fault with `inject`, waits until the agent retried under it and named `cause` in a warning,
    /// repairs it with `repair`, then waits until it logged in again and its health topic counts at least two
    /// failures of `cause` (every attempt counted; it retried).
    async fn survive(
        &self,
        agent: &mut ChildAgent,
        cause: UplinkFailure,
        inject: impl FnOnce(),
        repair: impl FnOnce(),
    ) {
        let logins = self.logins(USER);
        inject();
        self.switch.cut();
        self.wait_refused_twice(agent, cause.as_str()).await;
        assert_logged(&agent.log(), cause);
        repair();
        self.wait_login(USER, logins).await;
        let what = format!("{} counted twice on the health topic", cause.as_str());
        support::wait_until(PATIENCE, &what, || {
            failures_on_health(&self.recorder, cause) >= 2
        })
        .await;
        support::report(&format!(
            "tls fault {cause}: refused, named in the log, retried, repaired; health tls.failures.{cause} = {}",
            failures_on_health(&self.recorder, cause),
            cause = cause.as_str(),
        ));
    }

    /// Runs `validate` on the agent's configuration (it must pass and print the certificate facts) and keeps
    /// its output in the agent's directory, so the secrets grep covers it too.
    fn validate_into_dir(&self, scenario: &str) {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_shopfloor-agent"))
            .args(["validate", "--config"])
            .arg(self.dir.path().join("agent.toml"))
            .output()
            .expect("validate runs");
        let text = [output.stdout, output.stderr].concat();
        std::fs::write(self.dir.path().join("validate.out"), &text)
            .expect("keep validate's output");
        let text = String::from_utf8_lossy(&text);
        assert!(
            output.status.success(),
            "[{scenario}] validate failed:\n{text}"
        );
        assert!(
            text.contains(&format!("CN={USER}")),
            "[{scenario}] validate names no certificate:\n{text}"
        );
    }

    /// Freezes production before a 10 s boundary, then runs the oracle and the secrets grep.
    async fn finish(
        self,
        scenario: &str,
        agent: ChildAgent,
        before: &[Truth],
        more: (&[&str], &[&Identity]),
    ) -> String {
        let frozen_at = freeze_before_boundary(&self.plant, Duration::from_secs(1)).await;
        let (_, log) = settle_child(
            scenario,
            &self.plant,
            agent,
            &self.recorder,
            before,
            frozen_at,
            &self.database(),
        )
        .await;
        assert!(!log.contains("panicked"), "[{scenario}] a panic:\n{log}");
        let health = self.recorder.messages_matching("/health");
        assert!(!health.is_empty(), "[{scenario}] no health message");
        for (_, body) in &health {
            support::assert_valid(&support::schema("health"), body);
        }
        self.validate_into_dir(scenario);
        let passwords: Vec<&str> = [PASSWORD].iter().chain(more.0).copied().collect();
        let keys: Vec<&Identity> = [&self.identity]
            .into_iter()
            .chain(more.1.iter().copied())
            .collect();
        let secrets = Secrets::new(&passwords, &keys);
        let searched = secrets.assert_absent(self.dir.path(), &self.recorder);
        support::report(&format!(
            "[{scenario}] secrets grep: no password or key material in {searched} bytes the agent wrote or published"
        ));
        self.plant.shutdown().await;
        log
    }
}

/// The agent's log names `cause` (its name on the health topic, as the agent logs it) in a warning.
fn assert_logged(log: &str, cause: UplinkFailure) {
    assert!(
        log.lines()
            .any(|line| line.contains(cause.as_str()) && line.contains("WARN")),
        "no warning in the agent's log names the cause {}:\n{log}",
        cause.as_str()
    );
}

/// `tls.failures.<cause>` of the latest health message, 0 when absent.
fn failures_on_health(recorder: &Recorder, cause: UplinkFailure) -> u64 {
    recorder
        .messages_matching("/health")
        .last()
        .and_then(|(_, body)| body["tls"]["failures"][cause.as_str()].as_u64())
        .unwrap_or(0)
}

/// A wrong password the agent is given for a while (a secret too).
const WRONG_PASSWORD: &str = "not-the-Pa55word-either";
/// The client certificate's CN after a rotation.
const ROTATED: &str = "gw-01-next";
/// The year the rotated client certificate expires in (the first one expires in `VALID_UNTIL`).
const ROTATED_UNTIL: i32 = 2110;

mod agent {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_mtls_and_a_password_when_an_acl_refuses_the_topics_after_login_then_no_row_is_lost_and_the_rollups_are_exact(
    ) {
        let Some(mut uplink) = Uplink::start(301, false).await else {
            return;
        };
        let (mut agent, before) = uplink.start_producing().await;
        assert!(uplink.logins(USER) >= 1, "{}", uplink.broker.log());

        // When the broker accepts the login but the ACL refuses every topic of the agent for a while,
        uplink
            .broker
            .set_acl(&acl_for(&[USER], "elsewhere/#"))
            .await;
        support::wait_until(PATIENCE, "the broker to deny several publishes", || {
            uplink.broker.log().matches("Denied PUBLISH").count() >= 5
        })
        .await;
        assert!(agent.running(), "{}", agent.log());
        uplink
            .broker
            .set_acl(&acl_for(&[USER], "shopfloor/#"))
            .await;

        // Then every row arrives and the final rollups equal the simulator's truth.
        let denied = uplink.broker.log().matches("Denied PUBLISH").count();
        let log = uplink
            .finish("tls acl refusal", agent, &before, (&[], &[]))
            .await;
        support::report(&format!(
            "[tls acl refusal] broker denied {denied} publishes; agent log {} bytes",
            log.len()
        ));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_an_expired_server_certificate_then_one_for_another_name_when_the_agent_reconnects_then_each_is_refused_named_and_survived(
    ) {
        let Some(uplink) = Uplink::start(302, false).await else {
            return;
        };
        let (mut agent, before) = uplink.start_producing().await;
        let good = uplink.broker.port;
        for (cause, port) in [
            (UplinkFailure::Expired, uplink.broker.expired_port),
            (
                UplinkFailure::HostnameMismatch,
                uplink.broker.wrong_name_port,
            ),
        ] {
            let switch = &uplink.switch;
            uplink
                .survive(
                    &mut agent,
                    cause,
                    || switch.point_to(port),
                    || switch.point_to(good),
                )
                .await;
        }
        uplink
            .finish("tls server certificate faults", agent, &before, (&[], &[]))
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_a_wrong_ca_file_then_a_client_certificate_of_another_ca_when_the_agent_reconnects_then_each_is_refused_named_and_survived(
    ) {
        let Some(uplink) = Uplink::start(303, false).await else {
            return;
        };
        let (mut agent, before) = uplink.start_producing().await;

        // The CA file replaced with another CA: the agent cannot verify the broker.
        let (ca, other_ca) = (&uplink.pki.ca.cert_path, &uplink.pki.other_ca.cert_path);
        uplink
            .survive(
                &mut agent,
                UplinkFailure::UnknownCa,
                || uplink.install_ca(other_ca),
                || uplink.install_ca(ca),
            )
            .await;

        // The client certificate replaced with one of another CA: the broker refuses it.
        let foreign = uplink.pki.client_of_other_ca("foreign", USER);
        let (cert, key) = (uplink.cert_path(), uplink.key_path());
        uplink
            .survive(
                &mut agent,
                UplinkFailure::ClientCertificateRefused,
                || install_identity(&foreign, &cert, &key),
                || install_identity(&uplink.identity, &cert, &key),
            )
            .await;

        uplink
            .finish("tls trust faults", agent, &before, (&[], &[&foreign]))
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_no_client_certificate_then_a_wrong_password_when_the_agent_connects_then_each_is_refused_named_and_survived(
    ) {
        let Some(uplink) = Uplink::start(304, false).await else {
            return;
        };
        let (agent, before) = uplink.start_producing().await;

        // The agent restarted without a client certificate: the broker requires one.
        assert!(agent.stop().await.success());
        let mut agent = uplink.start_agent(ClientCert::Left);
        uplink
            .wait_refused_twice(&mut agent, "no client certificate")
            .await;
        let first_log = agent.log();
        assert_logged(&first_log, UplinkFailure::ClientCertificateMissing);
        assert!(agent.stop().await.success());
        std::fs::write(uplink.dir.path().join("agent-without-cert.log"), &first_log)
            .expect("keep the first run's log for the secrets grep");

        // Restarted with its certificate: a wrong password in the file is refused at CONNACK, then repaired.
        let mut agent = uplink.start_agent(ClientCert::Configured);
        uplink
            .survive(
                &mut agent,
                UplinkFailure::BadCredentials,
                || uplink.install_password(WRONG_PASSWORD),
                || uplink.install_password(PASSWORD),
            )
            .await;

        uplink
            .finish("tls login faults", agent, &before, (&[WRONG_PASSWORD], &[]))
            .await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn given_a_client_certificate_replaced_on_disk_when_the_broker_drops_the_connection_then_the_agent_reconnects_with_the_new_one(
    ) {
        // The broker's identity listener takes the user name from the client certificate's CN.
        let Some(uplink) = Uplink::start(305, true).await else {
            return;
        };
        let (agent, before) = uplink.start_producing().await;
        assert!(uplink.logins(USER) >= 1, "{}", uplink.broker.log());

        // When the certificate is replaced on disk while the agent runs and the broker drops the connection,
        let next = uplink
            .pki
            .client_until("gw-01-next", ROTATED, ROTATED_UNTIL);
        install_identity(&next, &uplink.cert_path(), &uplink.key_path());
        uplink.switch.cut();

        // then the agent logs in with the new certificate, without a restart, and nothing is lost.
        uplink.wait_login(ROTATED, 0).await;
        // and says so on its health topic: the client certificate's expiry is the new one's.
        support::wait_until(
            PATIENCE,
            "the new certificate's expiry on the health topic",
            || {
                uplink
                    .recorder
                    .messages_matching("/health")
                    .last()
                    .and_then(|(_, body)| {
                        body["tls"]["client_cert_not_after"]
                            .as_str()
                            .map(str::to_string)
                    })
                    .is_some_and(|not_after| {
                        not_after.starts_with(&format!("{ROTATED_UNTIL}-01-01"))
                    })
            },
        )
        .await;
        support::report(&format!(
            "[tls rotation] client certificate serial {:#x} (CN {}) replaced by serial {:#x} (CN {}): the broker \
             logged the new identity",
            uplink.identity.serial, uplink.identity.cn, next.serial, next.cn
        ));
        uplink
            .finish("tls rotation", agent, &before, (&[], &[&next]))
            .await;
    }
}
