//! The `shopfloor-agent` binary: command line, exit codes; logging is set up by `logging`. Everything else lives in the library.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use shopfloor_agent::config::{Config, ConfigError, LogFormat};
use shopfloor_agent::{logging, poller, supervisor};
use tokio_util::sync::CancellationToken;

/// Edge agent: polls PLCs over Modbus/TCP, buffers facts in SQLite, publishes KPI rollups over MQTT.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent (the daemon).
    Run {
        /// The TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Check a configuration file; print every problem with its TOML path and the read plan.
    Validate {
        /// The TOML configuration file.
        #[arg(long)]
        config: PathBuf,
    },
    /// Feed recorded poll values (CSV) through the agent's processor, with time from the samples, and
    /// print every closed rollup as one JSON line. Opens no store, needs no broker or PLC.
    Replay {
        /// The TOML configuration file (machines, counter rules, state mapping, periods).
        #[arg(long)]
        config: PathBuf,
        /// The samples: header `utc,machine,produced,defective,state[,<defect reason>...]`.
        #[arg(long)]
        samples: PathBuf,
    },
    /// Counter deltas the plausibility guard quarantined: list them, or release one to be counted.
    /// Works while the agent runs; it reads the agent's database and never changes anything else.
    Quarantine {
        #[command(subcommand)]
        action: QuarantineAction,
    },
    /// What the agent is doing, from its database (read-only; works while it runs): backlog, last publish,
    /// drops, PLCs and units up or down, quarantined deltas, last restart.
    Status {
        /// The agent's TOML configuration file (for its data_dir and time zone).
        #[arg(long)]
        config: PathBuf,
        /// Print JSON (stable field names; README, "Status and metrics") instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Simulated PLCs + local MQTT broker + agent + live figures in the terminal. Needs no files.
    #[cfg(feature = "demo")]
    Demo {
        /// Stop by itself after this many seconds (default: run until Ctrl-C).
        #[arg(long)]
        seconds: Option<u64>,
        /// Preferred MQTT port of the in-process broker (a free one is used when it is taken).
        #[arg(long, default_value_t = 1883)]
        mqtt_port: u16,
    },
    /// Read-only commissioning aid: read a register range and print every plausible interpretation
    /// (u16/i16; u32/i32/f32 in ABCD, CDAB, BADC, DCBA), refused addresses, and counter candidates.
    Probe {
        /// PLC or gateway address, host:port.
        #[arg(long)]
        address: String,
        /// Unit id (slave id).
        #[arg(long, default_value_t = 1)]
        unit: u8,
        /// Table: coil, discrete, input or holding.
        #[arg(long, default_value = "holding", value_parser = shopfloor_agent::probe::parse_table)]
        table: shopfloor_agent::logic::decode::Table,
        /// First 0-based address (holding register 40001 is address 0).
        #[arg(long)]
        start: u16,
        /// Number of registers (or bits) to read.
        #[arg(long)]
        count: u16,
        /// Timeout of the connect and of every request.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
        /// Samples to take; with 2 or more, increasing values are listed as counter candidates.
        #[arg(long, default_value_t = 2)]
        samples: u32,
        /// Time between samples.
        #[arg(long, default_value = "2s", value_parser = humantime::parse_duration)]
        interval: std::time::Duration,
        /// Mark the interpretations equal to this value (e.g. the count shown on the machine's HMI).
        #[arg(long)]
        find: Option<f64>,
    },
}

/// What `quarantine` does.
#[derive(Subcommand)]
enum QuarantineAction {
    /// List the quarantined deltas (id, machine, counter, interval, amount, status).
    List {
        /// The agent's TOML configuration file (for its data_dir, counter names and time zone).
        #[arg(long)]
        config: PathBuf,
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Release one quarantined delta: the agent counts it over its original interval and restates those windows.
    Release {
        /// The agent's TOML configuration file.
        #[arg(long)]
        config: PathBuf,
        /// The delta's id, as `quarantine list` shows it.
        #[arg(long)]
        id: i64,
    },
}

/// Exit code for an invalid configuration, or bad replay input.
const EXIT_CONFIG: u8 = 2;
/// Exit code for a runtime failure.
const EXIT_FAILURE: u8 = 1;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // `run` logs in the format its configuration asks for, so its subscriber starts once that is loaded (a
    // configuration error is printed on stderr either way).
    match &cli.command {
        Command::Run { .. } => {}
        #[cfg(feature = "demo")]
        Command::Demo { .. } => logging::init(LogFormat::Text, "warn,rumqttd=off"),
        _ => logging::init(LogFormat::Text, "info"),
    }

    match cli.command {
        Command::Validate { config } => validate(&config),
        Command::Run { config: path } => {
            let config = match Config::load(&path) {
                Ok(config) => config,
                Err(error) => return config_error(&error),
            };
            logging::init(config.agent.log_format, "info");
            exit(runtime().block_on(async {
                let shutdown = CancellationToken::new();
                tokio::spawn(stop_on_signal(shutdown.clone()));
                let reloads = reload_on_hangup(path)?;
                supervisor::run_reloading(config, reloads, shutdown).await
            }))
        }
        Command::Replay { config, samples } => replay(&config, &samples),
        Command::Probe {
            address,
            unit,
            table,
            start,
            count,
            timeout,
            samples,
            interval,
            find,
        } => {
            let request = shopfloor_agent::probe::ProbeRequest {
                address,
                unit_id: unit,
                table,
                start,
                count,
                timeout,
            };
            exit(runtime().block_on(async {
                let text = shopfloor_agent::probe::run(&request, samples, interval, find).await?;
                print_out(&text);
                Ok(())
            }))
        }
        Command::Quarantine { action } => quarantine(action),
        Command::Status { config, json } => match Config::load(&config) {
            Ok(config) => exit(
                shopfloor_agent::status::run(&config, json, poller::now_millis())
                    .map(|text| print_out(&text)),
            ),
            Err(error) => config_error(&error),
        },
        #[cfg(feature = "demo")]
        Command::Demo { seconds, mqtt_port } => exit(runtime().block_on(async {
            let shutdown = CancellationToken::new();
            tokio::spawn(stop_on_signal(shutdown.clone()));
            if let Some(seconds) = seconds {
                let token = shutdown.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
                    token.cancel();
                });
            }
            shopfloor_agent::demo::run(mqtt_port, shutdown).await
        })),
    }
}

fn quarantine(action: QuarantineAction) -> ExitCode {
    use shopfloor_agent::quarantine;
    let (QuarantineAction::List { config: path, .. }
    | QuarantineAction::Release { config: path, .. }) = &action;
    let config = match Config::load(path) {
        Ok(config) => config,
        Err(error) => return config_error(&error),
    };
    let report = match action {
        QuarantineAction::List { json, .. } => quarantine::list(&config, json),
        QuarantineAction::Release { id, .. } => {
            quarantine::release(&config, id, shopfloor_agent::poller::now_millis())
        }
    };
    exit(report.map(|text| print_out(&text)))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("the tokio runtime starts")
}

fn validate(path: &std::path::Path) -> ExitCode {
    use std::fmt::Write as _;
    match Config::load(path) {
        Ok(config) => {
            let mut text = format!(
                "{}: OK (config hash {})\n",
                path.display(),
                config.config_hash
            );
            for (index, plc) in config.plcs.iter().enumerate() {
                let plan = poller::ReadPlan::for_plc(&config, index);
                let _ = writeln!(
                    text,
                    "plc {} at {}: {} tag(s) in {} request(s) every {:?}",
                    plc.id,
                    plc.address,
                    plan.tags.len(),
                    plan.requests.len(),
                    plc.poll_interval
                );
                for request in &plan.requests {
                    let _ = writeln!(
                        text,
                        "  unit {:>3} {:<8} start {:>5} count {:>4}  (40001-style: {})",
                        request.unit_id,
                        request.table.name(),
                        request.start,
                        request.count,
                        shopfloor_agent::probe::reference(request.table, request.start)
                    );
                }
            }
            tls_report(&config, &mut text);
            print_out(&text);
            ExitCode::SUCCESS
        }
        Err(error) => config_error(&error),
    }
}

/// `validate`'s lines about the secure uplink: every certificate's subject and expiry, and secrets files that
/// others can read.
fn tls_report(config: &Config, text: &mut String) {
    use std::fmt::Write as _;
    if let Some(tls) = &config.mqtt.tls {
        match shopfloor_agent::tls::certificate_report(tls) {
            Ok(lines) => {
                for line in lines {
                    let _ = writeln!(
                        text,
                        "tls {} certificate {}: subject {}, serial {}, valid until {}",
                        line.role,
                        line.file.display(),
                        line.facts.subject,
                        line.facts.serial,
                        line.facts.not_after
                    );
                }
            }
            Err(error) => {
                let _ = writeln!(text, "tls: {error}");
            }
        }
    }
    for file in config.mqtt.secret_files() {
        if shopfloor_agent::tls::readable_by_others(file) == Some(true) {
            let _ = writeln!(
                text,
                "warning: {} is readable by group or others; chmod 600 it (or use LoadCredential=)",
                file.display()
            );
        }
    }
}

/// Replays `samples` through the processor configured by `config`; bad input exits with
/// [`EXIT_CONFIG`], naming its line and column.
fn replay(config: &std::path::Path, samples: &std::path::Path) -> ExitCode {
    use shopfloor_agent::replay::{self, ReplayError};
    let config = match Config::load(config) {
        Ok(config) => std::sync::Arc::new(config),
        Err(error) => return config_error(&error),
    };
    let file = match std::fs::File::open(samples) {
        Ok(file) => std::io::BufReader::new(file),
        Err(error) => {
            eprintln!("error: cannot open {}: {error}", samples.display());
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    let stdout = std::io::BufWriter::new(std::io::stdout().lock());
    match replay::replay(config, file, stdout) {
        Ok(summary) => {
            tracing::info!(
                records = summary.records,
                rollups = summary.rollups,
                events = summary.events,
                "Replay done."
            );
            ExitCode::SUCCESS
        }
        Err(ReplayError::Input(error)) => {
            eprintln!("error: {}: {error}", samples.display());
            ExitCode::from(EXIT_CONFIG)
        }
        // A reader that closed the pipe early (`replay | head`) took what it wanted.
        Err(ReplayError::Write(error)) if error.kind() == std::io::ErrorKind::BrokenPipe => {
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Writes a command's report to stdout. A reader that closed the pipe early (`validate | head`) is not an
/// error: `print!` would panic on it, and a panic aborts.
fn print_out(text: &str) {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    if let Err(error) = stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        if error.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("error: cannot write to stdout: {error}");
        }
    }
}

fn config_error(error: &ConfigError) -> ExitCode {
    eprintln!("error: {error}");
    ExitCode::from(EXIT_CONFIG)
}

fn exit(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn stop_on_signal(shutdown: CancellationToken) {
    wait_for_signal().await;
    shutdown.cancel();
    // A second signal means "now": skip the orderly shutdown (the store stays consistent anyway).
    wait_for_signal().await;
    eprintln!("second stop signal: exiting immediately");
    std::process::exit(130);
}

/// Reload requests, one per SIGHUP, each reading `path` again (with the `SHOPFLOOR__` overrides). The
/// handler is installed before this returns, so a SIGHUP no longer ends the process.
#[cfg(unix)]
fn reload_on_hangup(path: PathBuf) -> anyhow::Result<supervisor::Reloads> {
    use anyhow::Context as _;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    // One waiting request is enough: requests while one waits read the same file anyway.
    let (requests_tx, requests) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while hangup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading the configuration.");
            let _ = requests_tx.try_send(());
        }
    });
    Ok(supervisor::Reloads {
        requests,
        load: Box::new(move || Config::load(&path)),
    })
}

/// Without SIGHUP there are no reload requests.
#[cfg(not(unix))]
fn reload_on_hangup(path: PathBuf) -> anyhow::Result<supervisor::Reloads> {
    let (_requests_tx, requests) = tokio::sync::mpsc::channel(1);
    Ok(supervisor::Reloads {
        requests,
        load: Box::new(move || Config::load(&path)),
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
