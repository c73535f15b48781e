//! Validation of the secure uplink keys of `[mqtt]`: TLS roots, server name, client identity and login. Every
//! configured file must exist, be readable and parse, and a client key must match its certificate; problems
//! name the TOML path and the file, never a secret. Relative file names are looked up in
//! `$CREDENTIALS_DIRECTORY` (systemd `LoadCredential=`) first, then next to the config file.

use std::path::{Path, PathBuf};

use super::super::raw::RawMqtt;
use super::Validator;
use crate::tls::{self, CaSource, ClientIdentityFiles, Credentials, TlsSettings};

/// Where relative file names are resolved.
pub(in crate::config) struct FileRoots {
    /// `$CREDENTIALS_DIRECTORY`, when set.
    pub(in crate::config) credentials_dir: Option<PathBuf>,
    /// The directory of the config file.
    pub(in crate::config) config_dir: PathBuf,
}

impl FileRoots {
    /// The roots for the config file `file`, with `$CREDENTIALS_DIRECTORY` from the environment.
    pub(in crate::config) fn for_config_file(file: &str) -> Self {
        FileRoots {
            credentials_dir: std::env::var_os(tls::CREDENTIALS_DIRECTORY).map(PathBuf::from),
            config_dir: Path::new(file)
                .parent()
                .map(Path::to_path_buf)
                .unwrap_or_default(),
        }
    }

    fn resolve(&self, configured: &str) -> PathBuf {
        tls::resolve_file(
            Path::new(configured),
            self.credentials_dir.as_deref(),
            &self.config_dir,
        )
    }
}

impl Validator<'_> {
    /// `[mqtt] tls`, `ca_file`/`ca`, `server_name`, `cert_file`/`key_file`.
    pub(super) fn mqtt_tls(&mut self, raw: &RawMqtt, roots: &FileRoots) -> Option<TlsSettings> {
        if !raw.tls {
            for (key, set) in [
                ("mqtt.ca_file", raw.ca_file.is_some()),
                ("mqtt.ca", raw.ca.is_some()),
                ("mqtt.server_name", raw.server_name.is_some()),
                ("mqtt.cert_file", raw.cert_file.is_some()),
                ("mqtt.key_file", raw.key_file.is_some()),
            ] {
                if set {
                    self.problem(
                        key,
                        "only used with tls = true; set tls = true or remove it",
                    );
                }
            }
            return None;
        }
        // Every file is checked, also when the CA is unusable, so that one run names every problem.
        let ca = self.ca_source(raw, roots);
        if let Some(name) = &raw.server_name {
            if rustls::pki_types::ServerName::try_from(name.as_str()).is_err() {
                self.problem(
                    "mqtt.server_name",
                    format!("{name:?} is not a DNS name or IP address"),
                );
            }
        }
        let client = self.client_identity(raw, roots);
        let settings = TlsSettings {
            ca: ca?,
            server_name: raw.server_name.clone(),
            client,
        };
        // The whole configuration as a connection would build it: catches a key that is not its
        // certificate's, and roots rustls refuses.
        if let Err(error) = tls::load(&settings, &raw.host) {
            let path = match &error {
                tls::TlsError::KeyMismatch { .. } => "mqtt.key_file",
                tls::TlsError::ServerName(_) => "mqtt.server_name",
                _ if settings.client.is_some() => "mqtt.cert_file",
                _ => "mqtt.ca_file",
            };
            let fix = match &error {
                tls::TlsError::KeyMismatch { .. } => {
                    "; configure the key that was issued with this certificate"
                }
                _ => "",
            };
            self.problem(path, format!("{error}{fix}"));
            return None;
        }
        Some(settings)
    }

    fn ca_source(&mut self, raw: &RawMqtt, roots: &FileRoots) -> Option<CaSource> {
        match (&raw.ca_file, &raw.ca) {
            (Some(_), Some(_)) => {
                self.problem("mqtt.ca", "set either ca_file or ca = \"system\", not both");
                None
            }
            (None, None) => {
                self.problem(
                    "mqtt.ca_file",
                    "tls = true needs the broker's CA: ca_file = \"ca.pem\" or ca = \"system\"",
                );
                None
            }
            (None, Some(ca)) if ca == "system" => Some(CaSource::System),
            (None, Some(other)) => {
                self.problem(
                    "mqtt.ca",
                    format!("{other:?} is not \"system\"; use ca_file for a CA file"),
                );
                None
            }
            (Some(file), None) => {
                let path = roots.resolve(file);
                match tls::load_certs(&path) {
                    Ok(_) => Some(CaSource::File(path)),
                    Err(error) => {
                        self.problem("mqtt.ca_file", error.to_string());
                        None
                    }
                }
            }
        }
    }

    fn client_identity(&mut self, raw: &RawMqtt, roots: &FileRoots) -> Option<ClientIdentityFiles> {
        match (&raw.cert_file, &raw.key_file) {
            (None, None) => None,
            (Some(_), None) => {
                self.problem(
                    "mqtt.key_file",
                    "cert_file needs its key_file (mTLS takes both)",
                );
                None
            }
            (None, Some(_)) => {
                self.problem(
                    "mqtt.cert_file",
                    "key_file needs its cert_file (mTLS takes both)",
                );
                None
            }
            (Some(cert), Some(key)) => {
                let cert_file = roots.resolve(cert);
                let key_file = roots.resolve(key);
                let cert_ok =
                    self.file_check("mqtt.cert_file", tls::load_certs(&cert_file).map(drop));
                let key_ok = self.file_check("mqtt.key_file", tls::load_key(&key_file).map(drop));
                (cert_ok && key_ok).then_some(ClientIdentityFiles {
                    cert_file,
                    key_file,
                })
            }
        }
    }

    /// `[mqtt] username` + `password_file`; an inline `password` is refused.
    pub(super) fn mqtt_login(&mut self, raw: &RawMqtt, roots: &FileRoots) -> Option<Credentials> {
        if raw.password.is_some() {
            self.problem(
                "mqtt.password",
                "a password is never written in the config; put it in a file readable only by the agent \
                 (or a systemd credential: LoadCredential=mqtt.pass:/etc/shopfloor/mqtt.pass) and set \
                 password_file = \"mqtt.pass\"",
            );
        }
        match (&raw.username, &raw.password_file) {
            (None, None) => None,
            (Some(_), None) => {
                if raw.password.is_none() {
                    self.problem("mqtt.password_file", "username needs a password_file");
                }
                None
            }
            (None, Some(_)) => {
                self.problem("mqtt.username", "password_file needs a username");
                None
            }
            (Some(username), Some(file)) => {
                if username.is_empty() {
                    self.problem("mqtt.username", "must not be empty");
                }
                let password_file = roots.resolve(file);
                let ok = self.file_check(
                    "mqtt.password_file",
                    tls::load_password(&password_file).map(drop),
                );
                ok.then(|| Credentials {
                    username: username.clone(),
                    password_file,
                })
            }
        }
    }

    fn file_check(&mut self, path: &str, result: Result<(), tls::TlsError>) -> bool {
        match result {
            Ok(()) => true,
            Err(error) => {
                let fix = match &error {
                    tls::TlsError::Read { .. } => {
                        "; a relative path is looked up in $CREDENTIALS_DIRECTORY (when set), then next to \
                         the config file: put the file there or give an absolute path"
                    }
                    _ => "",
                };
                self.problem(path, format!("{error}{fix}"));
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, ConfigError};
    use crate::tls::testing::{ca, leaf, write};
    use crate::tls::CaSource;

    const REST: &str = r#"
[agent]
site = "acme"
gateway = "gw-01"
data_dir = "/tmp/x"

[[plc]]
id = "plc-a"
address = "127.0.0.1:502"

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
counters.produced = { address = 100, type = "u32" }
"#;

    /// Validates a config whose `[mqtt]` section is `mqtt`, as the file `dir/agent.toml`.
    fn validate(dir: &std::path::Path, mqtt: &str) -> Result<Config, Vec<(String, String)>> {
        let text = format!("[mqtt]\n{mqtt}\n{REST}");
        let file = dir.join("agent.toml");
        match Config::from_toml(&text, &file.display().to_string(), false) {
            Ok(config) => Ok(config),
            Err(ConfigError::Invalid { problems, .. }) => {
                Err(problems.into_iter().map(|p| (p.path, p.message)).collect())
            }
            Err(other) => panic!("{other}"),
        }
    }

    fn has(problems: &[(String, String)], path: &str, words: &str) -> bool {
        problems.iter().any(|(p, m)| p == path && m.contains(words))
    }

    #[test]
    fn given_tls_with_files_next_to_the_config_when_validated_then_paths_resolve_there() {
        let dir = tempfile::tempdir().unwrap();
        let authority = ca("Test CA");
        write(dir.path(), "ca.pem", &authority.pem);
        let (cert, key) = leaf(&authority, &["gw-01"], (2020, 2090));
        write(dir.path(), "client.pem", &cert);
        write(dir.path(), "client.key", &key);
        write(dir.path(), "mqtt.pass", "pw\n");
        let config = validate(
            dir.path(),
            "tls = true\nca_file = \"ca.pem\"\ncert_file = \"client.pem\"\nkey_file = \"client.key\"\n\
             username = \"gw-01\"\npassword_file = \"mqtt.pass\"",
        )
        .unwrap();
        let tls = config.mqtt.tls.unwrap();
        assert_eq!(tls.ca, CaSource::File(dir.path().join("ca.pem")));
        assert_eq!(tls.client.unwrap().key_file, dir.path().join("client.key"));
        assert_eq!(
            config.mqtt.credentials.unwrap().password_file,
            dir.path().join("mqtt.pass")
        );
    }

    #[test]
    fn given_a_missing_key_a_mismatched_key_or_an_inline_password_then_each_names_its_path_and_a_fix(
    ) {
        let dir = tempfile::tempdir().unwrap();
        let authority = ca("Test CA");
        write(dir.path(), "ca.pem", &authority.pem);
        let (cert, _) = leaf(&authority, &["gw-01"], (2020, 2090));
        let (_, other_key) = leaf(&authority, &["gw-01"], (2020, 2090));
        write(dir.path(), "client.pem", &cert);
        write(dir.path(), "other.key", &other_key);

        let tls = "tls = true\nca_file = \"ca.pem\"\ncert_file = \"client.pem\"\n";
        let missing = validate(dir.path(), &format!("{tls}key_file = \"gone.key\"")).unwrap_err();
        assert!(has(&missing, "mqtt.key_file", "gone.key"), "{missing:?}");
        assert!(
            has(&missing, "mqtt.key_file", "absolute path"),
            "{missing:?}"
        );
        // A missing CA file does not hide a missing key file: one run names both.
        let both = validate(
            dir.path(),
            "tls = true\nca_file = \"no-ca.pem\"\ncert_file = \"client.pem\"\nkey_file = \"gone.key\"",
        )
        .unwrap_err();
        assert!(has(&both, "mqtt.ca_file", "no-ca.pem"), "{both:?}");
        assert!(has(&both, "mqtt.key_file", "gone.key"), "{both:?}");

        let mismatched =
            validate(dir.path(), &format!("{tls}key_file = \"other.key\"")).unwrap_err();
        assert!(
            has(&mismatched, "mqtt.key_file", "does not match"),
            "{mismatched:?}"
        );
        assert!(
            has(&mismatched, "mqtt.key_file", "issued with this certificate"),
            "{mismatched:?}"
        );

        let inline = validate(
            dir.path(),
            "username = \"gw-01\"\npassword = \"hunter2-secret\"",
        )
        .unwrap_err();
        assert!(has(&inline, "mqtt.password", "password_file"), "{inline:?}");
        assert_eq!(
            inline.len(),
            1,
            "one problem, not also an unknown key: {inline:?}"
        );
        assert!(!format!("{inline:?}").contains("hunter2-secret"));
    }

    #[test]
    fn given_incomplete_or_conflicting_tls_keys_when_validated_then_each_is_a_problem() {
        let dir = tempfile::tempdir().unwrap();
        let no_ca = validate(dir.path(), "tls = true").unwrap_err();
        assert!(has(&no_ca, "mqtt.ca_file", "ca = \"system\""), "{no_ca:?}");
        let both = validate(
            dir.path(),
            "tls = true\nca = \"system\"\nca_file = \"x.pem\"",
        )
        .unwrap_err();
        assert!(has(&both, "mqtt.ca", "not both"), "{both:?}");
        let half = validate(
            dir.path(),
            "tls = true\nca = \"system\"\ncert_file = \"c.pem\"",
        )
        .unwrap_err();
        assert!(has(&half, "mqtt.key_file", "both"), "{half:?}");
        let plain = validate(dir.path(), "ca_file = \"ca.pem\"").unwrap_err();
        assert!(has(&plain, "mqtt.ca_file", "tls = true"), "{plain:?}");
        let lonely = validate(dir.path(), "username = \"gw-01\"").unwrap_err();
        assert!(
            has(&lonely, "mqtt.password_file", "password_file"),
            "{lonely:?}"
        );
    }

    #[test]
    fn given_a_credentials_directory_when_resolving_then_it_wins_over_the_config_directory() {
        let credentials = tempfile::tempdir().unwrap();
        let config_dir = tempfile::tempdir().unwrap();
        write(credentials.path(), "mqtt.pass", "pw");
        let roots = super::FileRoots {
            credentials_dir: Some(credentials.path().to_path_buf()),
            config_dir: config_dir.path().to_path_buf(),
        };
        assert_eq!(
            roots.resolve("mqtt.pass"),
            credentials.path().join("mqtt.pass")
        );
        assert_eq!(roots.resolve("ca.pem"), config_dir.path().join("ca.pem"));
    }
}
