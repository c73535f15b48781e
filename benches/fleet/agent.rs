//! The agent under test as the real release binary in a child process: its configuration for a simulated
//! fleet, its `/metrics` endpoint scraped over HTTP, and how it is stopped (SIGTERM) or killed (SIGKILL).

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context as _;

use crate::measure::Usage;

/// The agent binary `cargo bench` built with this benchmark (release profile).
pub const AGENT_BINARY: &str = env!("CARGO_BIN_EXE_shopfloor-agent");

/// Runs another build of the agent instead (e.g. the production build, or one with another profile).
pub const AGENT_BINARY_ENV: &str = "SHOPFLOOR_BENCH_AGENT";

/// The agent binary the benchmark runs: [`AGENT_BINARY_ENV`] when set, else [`AGENT_BINARY`].
pub fn agent_binary() -> std::path::PathBuf {
    std::env::var_os(AGENT_BINARY_ENV).map_or_else(|| AGENT_BINARY.into(), Into::into)
}

/// The environment the packaged systemd unit gives the agent (its `Environment=` lines, e.g. glibc's
/// `MALLOC_ARENA_MAX`), so that the benchmark measures the agent as a gateway runs it.
fn unit_environment() -> Vec<(&'static str, &'static str)> {
    include_str!("../../systemd/shopfloor-agent.service")
        .lines()
        .filter_map(|line| line.strip_prefix("Environment="))
        .filter_map(|assignment| assignment.split_once('='))
        .collect()
}

/// The fleet the agent is configured for and how it runs.
#[derive(Debug, Clone)]
pub struct FleetConfig {
    /// One `[[plc]]` per address, ids `plc-0000`, `plc-0001`, ...
    pub plcs: Vec<SocketAddr>,
    /// Machines per PLC, unit ids 1..=M, ids `m-PPPP-U`, each mapped to the simulator's register layout
    /// (produced u32 at 0, defective u32 at 2, two reasons at 10 and 11, state at 20).
    pub machines_per_plc: u8,
    /// `poll_interval` of every PLC.
    pub poll_interval: Duration,
    /// The broker's port on 127.0.0.1.
    pub mqtt_port: u16,
    /// `agent.periods`, as TOML, e.g. `["1m"]`.
    pub periods: String,
    /// Extra lines for `[agent]`, `[mqtt]` and `[store]` (e.g. `drain_rate = 500`).
    pub agent_extra: String,
    /// Extra lines for `[mqtt]`.
    pub mqtt_extra: String,
    /// Extra lines for `[store]`.
    pub store_extra: String,
    /// Extra lines for every `[[machine]]` (e.g. more tags, to read more registers per PLC).
    pub machine_extra: String,
}

impl FleetConfig {
    /// A fleet of `plcs` with `machines_per_plc` machines each, polled every `poll_interval`, publishing to
    /// the broker on `mqtt_port`, with 1-minute windows and everything else at its default.
    pub fn new(
        plcs: Vec<SocketAddr>,
        machines_per_plc: u8,
        poll_interval: Duration,
        mqtt_port: u16,
    ) -> FleetConfig {
        FleetConfig {
            plcs,
            machines_per_plc,
            poll_interval,
            mqtt_port,
            periods: r#"["1m"]"#.to_string(),
            agent_extra: String::new(),
            mqtt_extra: String::new(),
            store_extra: String::new(),
            machine_extra: String::new(),
        }
    }

    /// The configuration file's text, keeping data in `data_dir` and serving metrics on `metrics_port`.
    pub fn toml(&self, data_dir: &Path, metrics_port: u16) -> String {
        let mut text = format!(
            "[agent]\nsite = \"bench\"\ngateway = \"gw-bench\"\ntimezone = \"UTC\"\ndata_dir = {:?}\n\
             periods = {}\n{}\n\
             [mqtt]\nhost = \"127.0.0.1\"\nport = {}\n{}\n\
             [store]\nmax_bytes = \"2GiB\"\n{}\n\
             [http]\nlisten = \"127.0.0.1:{metrics_port}\"\n",
            data_dir.display().to_string(),
            self.periods,
            self.agent_extra,
            self.mqtt_port,
            self.mqtt_extra,
            self.store_extra,
        );
        let interval = humantime::format_duration(self.poll_interval);
        // The default 500 ms request timeout, or ten poll intervals where that is less (the most validate
        // accepts): the ceiling scenario polls every 20 ms and faster.
        let timeout = humantime::format_duration(
            Duration::from_millis(500).min(self.poll_interval.saturating_mul(10)),
        );
        for (index, address) in self.plcs.iter().enumerate() {
            text.push_str(&format!(
                "\n[[plc]]\nid = \"plc-{index:04}\"\naddress = \"{address}\"\npoll_interval = \"{interval}\"\n\
                 timeout = \"{timeout}\"\n"
            ));
            for unit in 1..=self.machines_per_plc {
                text.push_str(&format!(
                    "\n[[machine]]\nid = \"m-{index:04}-{unit}\"\nline = \"line-{index:04}\"\n\
                     plc = \"plc-{index:04}\"\nunit_id = {unit}\nideal_cycle_time = \"1s\"\n\
                     counters.produced = {{ table = \"holding\", address = 0, type = \"u32\", word_order = \"big\" }}\n\
                     counters.defective = {{ table = \"holding\", address = 2, type = \"u32\", word_order = \"big\" }}\n\
                     defect_reasons = {{ scratch = {{ address = 10, type = \"u16\" }}, dent = {{ address = 11, type = \"u16\" }} }}\n\
                     state = {{ table = \"holding\", address = 20, type = \"u16\", running = [1], planned_stop = [2], unplanned_stop = [3] }}\n\
                     {}\n",
                    self.machine_extra
                ));
            }
        }
        text
    }
}

/// A running agent process with its own data directory; killed (SIGKILL) when dropped.
pub struct AgentProcess {
    child: Child,
    /// Where its configuration, database and log are.
    pub dir: PathBuf,
    /// Port of its `/metrics` endpoint on 127.0.0.1.
    pub metrics_port: u16,
    /// When the process was spawned.
    pub started: Instant,
}

impl AgentProcess {
    /// Writes `config` into `dir` (created; its database goes there too) and starts `shopfloor-agent run`.
    /// Its log goes to `dir/agent.log`.
    pub fn spawn(config: &FleetConfig, dir: &Path) -> anyhow::Result<AgentProcess> {
        let metrics_port = shopfloor_agent::broker::free_local_port()?;
        AgentProcess::spawn_on(config, dir, metrics_port)
    }

    /// Like [`AgentProcess::spawn`] with a given metrics port (a restart on the same database and port).
    pub fn spawn_on(
        config: &FleetConfig,
        dir: &Path,
        metrics_port: u16,
    ) -> anyhow::Result<AgentProcess> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("agent.toml");
        std::fs::write(&path, config.toml(&dir.join("data"), metrics_port))
            .with_context(|| format!("cannot write {}", path.display()))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("agent.log"))?;
        let started = Instant::now();
        let binary = agent_binary();
        let child = Command::new(&binary)
            .arg("run")
            .arg("--config")
            .arg(&path)
            .envs(unit_environment())
            .env("SHOPFLOOR_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        Ok(AgentProcess {
            child,
            dir: dir.to_path_buf(),
            metrics_port,
            started,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its CPU, memory and disk counters now.
    pub fn usage(&self) -> anyhow::Result<Usage> {
        Usage::of(self.pid())
    }

    /// Scrapes `/metrics`.
    pub fn metrics(&self) -> anyhow::Result<Metrics> {
        Metrics::scrape(self.metrics_port)
    }

    /// Waits until `/metrics` answers (the agent has wired everything), at most `patience`.
    pub fn wait_ready(&self, patience: Duration) -> anyhow::Result<Metrics> {
        let deadline = Instant::now() + patience;
        loop {
            match self.metrics() {
                Ok(metrics) => return Ok(metrics),
                Err(error) if Instant::now() >= deadline => {
                    return Err(error.context(format!(
                        "the agent did not serve /metrics within {patience:?}; see {}",
                        self.dir.join("agent.log").display()
                    )))
                }
                Err(_) => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    /// SIGTERM, then waits for a clean exit (at most 20 s, then SIGKILL).
    pub fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.child.kill()?;
        anyhow::bail!("the agent did not stop within 20 s of SIGTERM")
    }

    /// SIGKILL and reap: the power-cut case.
    pub fn kill(mut self) -> anyhow::Result<()> {
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        // Best effort on the way out (after `stop` or `kill` the child is already reaped).
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One scrape of the agent's Prometheus text exposition.
#[derive(Debug, Clone, Default)]
pub struct Metrics {
    /// Every sample: (metric name, labels as written between the braces, value).
    samples: Vec<(String, String, f64)>,
}

impl Metrics {
    /// `GET /metrics` on 127.0.0.1:`port`.
    pub fn scrape(port: u16) -> anyhow::Result<Metrics> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream
            .write_all(b"GET /metrics HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        let (head, body) = response
            .split_once("\r\n\r\n")
            .context("no HTTP header end")?;
        anyhow::ensure!(head.starts_with("HTTP/1.1 200"), "GET /metrics: {head}");
        Ok(Metrics::parse(body))
    }

    /// Parses the text format (comments skipped).
    pub fn parse(text: &str) -> Metrics {
        let samples = text
            .lines()
            .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
            .filter_map(|line| {
                let (series, value) = line.rsplit_once(' ')?;
                let value: f64 = value.parse().ok()?;
                let (name, labels) = match series.split_once('{') {
                    Some((name, rest)) => (name, rest.trim_end_matches('}')),
                    None => (series, ""),
                };
                Some((name.to_string(), labels.to_string(), value))
            })
            .collect();
        Metrics { samples }
    }

    /// The sum of every series named `name` (all label sets), 0 when there is none.
    pub fn sum(&self, name: &str) -> f64 {
        self.samples
            .iter()
            .filter(|(n, _, _)| n == name)
            .map(|(_, _, v)| v)
            .sum()
    }

    /// The `q` quantile of histogram `name` over all its label sets (buckets added up), interpolated
    /// linearly inside the bucket; `None` without observations.
    pub fn histogram_quantile(&self, name: &str, q: f64) -> Option<f64> {
        let bucket = format!("{name}_bucket");
        let mut cumulative: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
        for (n, labels, value) in &self.samples {
            if *n != bucket {
                continue;
            }
            let le = labels
                .split(',')
                .find_map(|label| label.trim().strip_prefix("le="))
                .map(|v| v.trim_matches('"'))?;
            let bound = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            cumulative.entry(bound.to_bits()).or_insert((bound, 0.0)).1 += value;
        }
        let mut buckets: Vec<(f64, f64)> = cumulative.into_values().collect();
        buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = buckets.last()?.1;
        if total <= 0.0 {
            return None;
        }
        let target = q * total;
        let mut previous = (0.0, 0.0);
        for (bound, count) in buckets {
            if count >= target {
                if bound.is_infinite() {
                    return Some(previous.0);
                }
                let inside = (count - previous.1).max(1e-9);
                return Some(previous.0 + (bound - previous.0) * (target - previous.1) / inside);
            }
            previous = (bound, count);
        }
        None
    }

    /// Whether any series named `name` was exposed.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }

    /// Every series of this scrape minus the same series (name and labels) of `earlier`: counters and
    /// histogram buckets over the span between the two scrapes (a series new since `earlier` counts whole).
    pub fn minus(&self, earlier: &Metrics) -> Metrics {
        let before: std::collections::HashMap<(&str, &str), f64> = earlier
            .samples
            .iter()
            .map(|(n, l, v)| ((n.as_str(), l.as_str()), *v))
            .collect();
        let samples = self
            .samples
            .iter()
            .map(|(name, labels, value)| {
                let then = before
                    .get(&(name.as_str(), labels.as_str()))
                    .copied()
                    .unwrap_or(0.0);
                (name.clone(), labels.clone(), value - then)
            })
            .collect();
        Metrics { samples }
    }
}
