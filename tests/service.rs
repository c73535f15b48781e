//! The agent binary under a service manager: `READY=1`, `STATUS=` lines and `WATCHDOG=1` pings on a notify socket
//! the test binds (as systemd would), the pings stopping for good once the processor stalls (fault switch), the
//! stalled loop named in the log, and no colour escape codes in a log that is not a terminal.

use std::time::{Duration, Instant};

use tokio::net::UnixDatagram;

use crate::support::child::ChildAgent;

/// The watchdog period the test asks for (`WATCHDOG_USEC`): pings are due every second.
const WATCHDOG_USEC: &str = "2000000";
/// When the fault switch stops the processor, in seconds after its loop started.
const STALL_AFTER_SECONDS: &str = "4";
/// The log line `notify` writes once on a stall.
const STALL_LOG: &str = "A loop stopped making progress";

/// A PLC and a broker that both refuse connections: the loops still run, and the test needs neither.
fn config_text(data_dir: &std::path::Path) -> String {
    format!(
        r#"
[agent]
site = "acme"
gateway = "gw-notify"
data_dir = "{}"
live_interval = "1s"
health_interval = "1s"

[mqtt]
host = "127.0.0.1"
port = 1
connect_timeout = "1s"

[[plc]]
id = "plc-a"
address = "127.0.0.1:1"
timeout = "200ms"
backoff_max = "1s"

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
counters.produced = {{ address = 100, type = "u32" }}
"#,
        data_dir.display()
    )
}

/// Every datagram received so far, in order.
struct Notifications {
    socket: UnixDatagram,
    received: Vec<String>,
}

impl Notifications {
    /// Receives for up to `window`; returns the datagrams that arrived.
    async fn receive_for(&mut self, window: Duration) -> Vec<String> {
        let mut fresh = Vec::new();
        let end = tokio::time::Instant::now() + window;
        let mut buffer = vec![0u8; 4096];
        while let Ok(Ok(length)) = tokio::time::timeout_at(end, self.socket.recv(&mut buffer)).await
        {
            fresh.push(String::from_utf8_lossy(&buffer[..length]).into_owned());
        }
        self.received.extend(fresh.iter().cloned());
        fresh
    }

    /// Takes whatever is already queued on the socket, without waiting.
    fn drain(&mut self) {
        let mut buffer = vec![0u8; 4096];
        while let Ok(length) = self.socket.try_recv(&mut buffer) {
            self.received
                .push(String::from_utf8_lossy(&buffer[..length]).into_owned());
        }
    }

    fn count(&self, line: &str) -> usize {
        self.received
            .iter()
            .filter(|datagram| datagram.lines().any(|l| l == line))
            .count()
    }

    fn status_lines(&self) -> Vec<&str> {
        self.received
            .iter()
            .flat_map(|datagram| datagram.lines())
            .filter_map(|line| line.strip_prefix("STATUS="))
            .collect()
    }
}

#[tokio::test]
async fn the_watchdog_is_pinged_while_the_loops_progress_and_never_after_the_processor_stalls() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let mut notifications = Notifications {
        socket: UnixDatagram::bind(&socket_path).unwrap(),
        received: Vec::new(),
    };
    let socket_text = socket_path.to_str().unwrap();
    // Given the agent under a notify socket with a 2 s watchdog and the processor set to stall after 4 s,
    let mut agent = ChildAgent::start_with_env(
        dir.path(),
        &config_text(&dir.path().join("data")),
        &[
            ("NOTIFY_SOCKET", socket_text),
            ("WATCHDOG_USEC", WATCHDOG_USEC),
            ("SHOPFLOOR_FAULT_STALL_PROCESSOR_AFTER", STALL_AFTER_SECONDS),
        ],
    );
    // then it says it is ready, reports its backlog and pings the watchdog while its loops progress;
    let deadline = Instant::now() + Duration::from_secs(60);
    while notifications.count("READY=1") == 0
        || notifications.count("WATCHDOG=1") < 2
        || notifications.status_lines().is_empty()
    {
        assert!(
            Instant::now() < deadline && agent.running(),
            "no READY, status and two pings: {:?}\n{}",
            notifications.received,
            agent.log()
        );
        notifications.receive_for(Duration::from_millis(500)).await;
    }
    let status = notifications.status_lines()[0].to_string();
    assert!(
        status.starts_with("backlog ") && status.contains("0/1 PLCs up, broker not connected"),
        "{status}"
    );
    // when the processor stops making progress, the stall is logged once, naming it,
    while !agent.log().contains(STALL_LOG) {
        assert!(
            Instant::now() < deadline && agent.running(),
            "the stall was not reported; log:\n{}",
            agent.log()
        );
        notifications.receive_for(Duration::from_millis(500)).await;
    }
    let log = agent.log();
    let stall_line = log.lines().find(|line| line.contains(STALL_LOG)).unwrap();
    assert!(stall_line.contains("component=processor"), "{stall_line}");
    assert_eq!(log.matches(STALL_LOG).count(), 1, "{log}");
    // (pings sent before that line are already queued on the socket)
    notifications.drain();
    // and no ping follows for more than three half periods while the agent still runs.
    let after = notifications
        .receive_for(Duration::from_millis(3_500))
        .await;
    assert!(
        !after
            .iter()
            .any(|datagram| datagram.lines().any(|l| l == "WATCHDOG=1")),
        "pinged after the stall: {after:?}"
    );
    assert!(
        agent.running(),
        "the agent must still run (systemd restarts it)"
    );
    // The log is a file, not a terminal: no colour escape codes.
    assert!(!agent.log().contains("\x1b["), "escape codes in the log");
}
