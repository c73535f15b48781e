//! `plc-sim`: runs a [`PlcSimulator`] with N machines (unit ids 1..=N) and prints the ground truth every few
//! seconds until Ctrl-C. Thin on purpose: argument parsing and printing only; the simulator lives in the library.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser;
use simulators::{CounterLayout, MachineSpec, PlcSimulator};

/// Modbus/TCP PLC simulator with ground truth.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5020")]
    listen: String,
    /// Number of machines; they answer to unit ids 1..=N.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u8).range(1..))]
    machines: u8,
    /// Seed of the production model.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Cycle time of every machine, in milliseconds.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(1..))]
    cycle_ms: u64,
    /// Probability that a unit is defective.
    #[arg(long, default_value_t = 0.05)]
    defect_probability: f64,
    /// Probability per running cycle that a stop starts.
    #[arg(long, default_value_t = 0.01)]
    stop_probability: f64,
    /// Base address of every machine's register block.
    #[arg(long, default_value_t = 0)]
    base_address: u16,
    /// Raw produced counter at start (e.g. 4294967000 to see a wrap soon).
    #[arg(long, default_value_t = 0)]
    initial_produced: u32,
    /// Word and byte order of the u32 counters: abcd (default), cdab, badc or dcba.
    #[arg(long, default_value = "abcd", value_parser = parse_layout)]
    counter_layout: CounterLayout,
    /// Seconds between ground-truth reports.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..))]
    print_every_s: u64,
}

fn parse_layout(text: &str) -> Result<CounterLayout, String> {
    CounterLayout::parse(text)
        .ok_or_else(|| format!("{text:?} is not one of abcd, cdab, badc, dcba"))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("plc-sim: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("plc-sim: {error:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let specs = (1..=args.machines)
        .map(|unit_id| MachineSpec {
            base_address: args.base_address,
            cycle_time: Duration::from_millis(args.cycle_ms),
            defect_probability: args.defect_probability,
            stop_probability: args.stop_probability,
            initial_produced: args.initial_produced,
            counter_layout: args.counter_layout,
            ..MachineSpec::new(unit_id)
        })
        .collect();
    let simulator = PlcSimulator::start(&args.listen, specs, args.seed).await?;
    println!(
        "plc-sim: serving units 1..={} on {} (seed {}, cycle {} ms); Ctrl-C stops",
        args.machines,
        simulator.local_addr(),
        args.seed,
        args.cycle_ms
    );
    let mut report = tokio::time::interval(Duration::from_secs(args.print_every_s));
    report.tick().await;
    loop {
        tokio::select! {
            signal = tokio::signal::ctrl_c() => {
                signal.context("cannot listen for Ctrl-C")?;
                break;
            }
            _ = report.tick() => print_truth(&simulator),
        }
    }
    print_truth(&simulator);
    simulator.shutdown().await;
    Ok(())
}

/// One line per unit: ground truth next to the raw register values a poller sees.
fn print_truth(simulator: &PlcSimulator) {
    for unit_id in simulator.units() {
        let snapshot = simulator.snapshot(unit_id);
        let truth = &snapshot.truth;
        let reasons: Vec<String> = truth
            .by_reason
            .iter()
            .map(|(reason, count)| format!("{reason}={count}"))
            .collect();
        let raw_produced = simulator.raw_produced(unit_id);
        println!(
            "unit={unit_id} produced={} defective={} by_reason=[{}] raw_produced={raw_produced} state={:?}",
            truth.produced,
            truth.defective,
            reasons.join(","),
            snapshot.state
        );
    }
}
