//! The Mosquitto side of the local brokers: spawning `mosquitto` with a temporary config (optionally with a
//! packet-size limit or an ACL), and killing or restarting it on the same port for fault tests.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::Context;

use super::{usable_port, wait_until_listening, Broker, BrokerError, BrokerKind};

#[derive(Debug)]
pub(super) struct MosquittoProcess {
    /// `None` after [`Broker::kill`].
    pub(super) child: Option<Child>,
    pub(super) work_dir: PathBuf,
    settings: MosquittoSettings,
}

/// Extra Mosquitto settings for tests that need a broker with limits.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MosquittoSettings {
    /// `max_packet_size`: Mosquitto disconnects a client that sends a larger packet (and announces the limit
    /// to MQTT 5 clients in its CONNACK).
    pub max_packet_size: Option<u32>,
    /// Text of an `acl_file` (anonymous clients get the `topic` lines before any `user` line). A QoS 1
    /// PUBLISH the ACL denies is answered with PUBACK reason 0x87 (not authorized) for MQTT 5 clients.
    pub acl: Option<String>,
}

impl Broker {
    /// Kills a Mosquitto broker with SIGKILL and waits for it to exit; its port stops accepting connections.
    /// Errors for an in-process broker, which cannot be stopped.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        let process = self
            .mosquitto
            .as_mut()
            .context("only a Mosquitto broker can be killed")?;
        if let Some(mut child) = process.child.take() {
            child.kill().context("killing mosquitto")?;
            child.wait().context("waiting for mosquitto to exit")?;
        }
        tracing::info!(port = self.port, "Mosquitto killed.");
        Ok(())
    }

    /// Starts Mosquitto again on the same port with the same settings (killing it first if it still runs).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        let settings = self
            .mosquitto
            .as_ref()
            .map(|process| process.settings.clone())
            .unwrap_or_default();
        self.restart_with(&settings)
    }

    /// Starts Mosquitto again on the same port with new settings (e.g. a corrected ACL), killing it first.
    pub fn restart_with(&mut self, settings: &MosquittoSettings) -> anyhow::Result<()> {
        self.kill()?;
        let fresh = spawn_mosquitto_with(self.port, settings)?;
        // Swap processes; the old (dead) one's work directory is removed by dropping it.
        *self = fresh;
        Ok(())
    }
}

/// Spawns `mosquitto -c <temp config>` listening on `127.0.0.1:port` (0 picks a free port), without
/// persistence, anonymous access allowed. Returns once the port accepts TCP connections; the child is
/// killed when the returned [`Broker`] is dropped.
pub fn spawn_mosquitto(port: u16) -> anyhow::Result<Broker> {
    spawn_mosquitto_with(port, &MosquittoSettings::default())
}

/// Whether a `mosquitto` executable is installed (tests that kill or restart the broker need one).
pub fn mosquitto_available() -> bool {
    find_mosquitto().is_some()
}

/// How many free ports [`spawn_mosquitto_with`] tries for port 0 before it gives up.
const PORT_PICKS: usize = 5;

/// Like [`spawn_mosquitto`], with extra [`MosquittoSettings`].
///
/// For port 0 the port is one that was free a moment ago, so a broker that another test starts at the same
/// time can take it first. The spawned Mosquitto then fails to bind while the start-up probe reaches the
/// other broker; a test would talk to a broker that goes away with the other test. So the listener must
/// belong to the spawned child, and for port 0 a lost race is retried on a fresh port.
pub fn spawn_mosquitto_with(port: u16, settings: &MosquittoSettings) -> anyhow::Result<Broker> {
    let executable = find_mosquitto().ok_or(BrokerError::MosquittoMissing)?;
    let picks = if port == 0 { PORT_PICKS } else { 1 };
    let mut attempt = 1;
    loop {
        match spawn_on(&executable, usable_port(port)?, settings) {
            Err(error) if attempt < picks && lost_port_race(&error) => {
                tracing::warn!(%error, attempt, "Mosquitto lost its port to another process; picking another.");
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

/// Whether a failed start is the port race described at [`spawn_mosquitto_with`].
fn lost_port_race(error: &anyhow::Error) -> bool {
    matches!(
        error.downcast_ref::<BrokerError>(),
        Some(BrokerError::MosquittoExited { .. } | BrokerError::PortTaken { .. })
    )
}

fn spawn_on(executable: &Path, port: u16, settings: &MosquittoSettings) -> anyhow::Result<Broker> {
    let work_dir = unique_work_dir(port)?;
    let config_path = work_dir.join("mosquitto.conf");
    let log_path = work_dir.join("mosquitto.log");
    let io = |what: &str| {
        let what = what.to_string();
        move |source| BrokerError::Io { what, source }
    };
    // A slow test subscriber must not lose QoS 1 messages to the broker's default queue cap of 1000, which
    // would look like a publisher bug. Not 0 ("no limit"): Mosquitto 2.0 compares its out-packet count with
    // the limit after an ACL-denied PUBLISH and, with 0, disconnects the client instead of only refusing.
    let mut config = format!(
        "listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n\
         max_queued_messages 10000000\nlog_type error\nlog_type warning\n"
    );
    if let Some(max) = settings.max_packet_size {
        config.push_str(&format!("max_packet_size {max}\n"));
    }
    if let Some(acl) = &settings.acl {
        let acl_path = work_dir.join("acl");
        std::fs::write(&acl_path, acl).map_err(io("writing the ACL file"))?;
        config.push_str(&format!("acl_file {}\n", acl_path.display()));
    }
    std::fs::write(&config_path, config).map_err(io("writing mosquitto.conf"))?;
    let log = std::fs::File::create(&log_path).map_err(io("creating mosquitto.log"))?;
    let log_for_stdout = log.try_clone().map_err(io("duplicating the log handle"))?;
    let child = Command::new(executable)
        .arg("-c")
        .arg(&config_path)
        .stdin(Stdio::null())
        .stdout(log_for_stdout)
        .stderr(log)
        .spawn()
        .map_err(io("spawning mosquitto"))
        .with_context(|| format!("executable {}", executable.display()))?;

    // From here on the Broker owns the child, so any error below still kills it on drop.
    let mut broker = Broker {
        port,
        kind: BrokerKind::Mosquitto,
        mosquitto: Some(MosquittoProcess {
            child: Some(child),
            work_dir,
            settings: settings.clone(),
        }),
    };
    let child = broker
        .mosquitto
        .as_mut()
        .and_then(|process| process.child.as_mut())
        .expect("the Broker was just built with a running mosquitto process");
    wait_until_listening(port, || match child.try_wait() {
        Ok(Some(status)) => Err(BrokerError::MosquittoExited {
            status,
            output: read_to_string_lossy(&log_path),
        }),
        Ok(None) => Ok(()),
        Err(source) => Err(BrokerError::Io {
            what: "checking on the mosquitto child".into(),
            source,
        }),
    })?;
    if listener_owner_is(child.id(), port) == Some(false) {
        return Err(BrokerError::PortTaken { port }.into());
    }
    tracing::info!(port, "Mosquitto broker listening.");
    Ok(broker)
}

/// Whether process `pid` holds the socket listening on 127.0.0.1:`port`: the listener's inode from
/// `/proc/net/tcp` among the process's file descriptors. `None` where `/proc` cannot tell (not Linux).
fn listener_owner_is(pid: u32, port: u16) -> Option<bool> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    // The kernel prints the address as the hex of its in-memory (network order) 32 bits.
    let local = format!(
        "{:08X}:{port:04X}",
        u32::from_ne_bytes(std::net::Ipv4Addr::LOCALHOST.octets())
    );
    const LISTEN: &str = "0A";
    let inode = table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let listening = fields.get(1) == Some(&local.as_str()) && fields.get(3) == Some(&LISTEN);
        listening.then(|| fields.get(9).map(|inode| format!("socket:[{inode}]")))?
    });
    let Some(socket) = inode else {
        return Some(false);
    };
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    Some(fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| target.as_os_str() == socket.as_str())
    }))
}

/// Finds the `mosquitto` executable on PATH, then in the sbin directories that a non-root PATH often lacks.
pub(super) fn find_mosquitto() -> Option<PathBuf> {
    let path_dirs = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    path_dirs
        .into_iter()
        .chain(["/usr/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join("mosquitto"))
        .find(|candidate| candidate.is_file())
}

fn unique_work_dir(port: u16) -> Result<PathBuf, BrokerError> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let serial = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!(
        "shopfloor-mosquitto-{}-{port}-{serial}",
        std::process::id()
    ));
    std::fs::create_dir_all(&dir).map_err(|source| BrokerError::Io {
        what: format!("creating {}", dir.display()),
        source,
    })?;
    Ok(dir)
}

fn read_to_string_lossy(path: &Path) -> String {
    let mut bytes = Vec::new();
    match std::fs::File::open(path).and_then(|mut file| file.read_to_end(&mut bytes)) {
        Ok(_) => String::from_utf8_lossy(&bytes).trim().to_string(),
        Err(error) => format!("(log unreadable: {error})"),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, TcpListener};

    use super::*;

    #[test]
    fn given_a_spawned_mosquitto_then_its_listener_is_found_among_its_fds_and_a_strangers_is_not() {
        if !mosquitto_available() {
            eprintln!("skipped: mosquitto is not installed");
            return;
        }
        let mut broker = spawn_mosquitto(0).unwrap();
        let stranger = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let stranger_port = stranger.local_addr().unwrap().port();
        let pid = broker
            .mosquitto
            .as_ref()
            .and_then(|process| process.child.as_ref())
            .unwrap()
            .id();
        assert_eq!(listener_owner_is(pid, broker.port), Some(true));
        assert_eq!(listener_owner_is(pid, stranger_port), Some(false));
        assert_eq!(
            listener_owner_is(std::process::id(), stranger_port),
            Some(true)
        );
        broker.kill().unwrap();
        assert_eq!(listener_owner_is(pid, broker.port), Some(false));
    }
}
