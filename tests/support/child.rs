//! The real agent binary as a child process, for checks that must see only the agent (its own resident memory,
//! its exit status) rather than the test process, which other tests share.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

const BINARY: &str = env!("CARGO_BIN_EXE_shopfloor-agent");

/// A running `shopfloor-agent run` child, logging to `agent.log` next to its configuration; killed on drop if
/// it is still running.
pub(crate) struct ChildAgent {
    child: Child,
    log: PathBuf,
}

impl ChildAgent {
    /// Writes `config_text` to `dir/agent.toml` and starts the binary on it, logging at info level.
    pub(crate) fn start(dir: &Path, config_text: &str) -> ChildAgent {
        let config = dir.join("agent.toml");
        std::fs::write(&config, config_text).expect("write the agent configuration");
        let log = dir.join("agent.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new(BINARY)
            .args(["run", "--config"])
            .arg(&config)
            .env("SHOPFLOOR_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("the agent binary starts");
        ChildAgent { child, log }
    }

    /// Like [`ChildAgent::start`], with `env` added to the agent's environment and `WATCHDOG_PID` set to the
    /// agent's own pid (as systemd sets it): a shell exports its pid and `exec`s the binary, keeping the pid.
    pub(crate) fn start_with_env(
        dir: &Path,
        config_text: &str,
        env: &[(&str, &str)],
    ) -> ChildAgent {
        let config = dir.join("agent.toml");
        std::fs::write(&config, config_text).expect("write the agent configuration");
        let log = dir.join("agent.log");
        let log_file = std::fs::File::create(&log).expect("log file");
        let child = Command::new("sh")
            .args([
                "-c",
                "WATCHDOG_PID=$$ exec \"$0\" run --config \"$1\"",
                BINARY,
            ])
            .arg(&config)
            .env("SHOPFLOOR_LOG", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("the agent binary starts");
        ChildAgent { child, log }
    }

    /// VmRSS of the agent in KiB; 0 where /proc is missing, or once it has exited.
    pub(crate) fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|status| {
                status
                    .lines()
                    .find_map(|line| line.strip_prefix("VmRSS:"))
                    .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            })
            .unwrap_or(0)
    }

    /// Whether the agent is still running (it must never end on its own).
    pub(crate) fn running(&mut self) -> bool {
        self.child.try_wait().expect("wait on the agent").is_none()
    }

    /// What the agent has logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends `signal` (a `kill` name such as `HUP`) to the agent.
    pub(crate) fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// Sends SIGTERM and waits (15 s at most, then SIGKILL and a panic) for the exit status.
    pub(crate) async fn stop(mut self) -> ExitStatus {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        for _ in 0..300 {
            if let Some(status) = self.child.try_wait().expect("wait on the agent") {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = self.child.kill();
        panic!(
            "the agent did not stop within 15 s of SIGTERM; log:\n{}",
            self.log()
        );
    }
}

impl Drop for ChildAgent {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
