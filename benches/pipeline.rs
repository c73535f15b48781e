//! `cargo bench`: throughput of the pure core and of the store, printed as figures (no assertions).
//! Figures depend on the machine and the disk; README records the ones measured on the reference box.

use std::time::{Duration, Instant};

use shopfloor_agent::logic::calendar::{Calendar, UnknownTime};
use shopfloor_agent::logic::counter::{CounterConfig, CounterState, OnDecrease, StepKind};
use shopfloor_agent::logic::kpi;
use shopfloor_agent::logic::rollup::{Channel, MachineState, MachineWindows};
use shopfloor_agent::logic::targets::Targets;
use shopfloor_agent::logic::window::Period;
use shopfloor_agent::store::{CycleWrite, DeltaRow, OutboxDraft, Store, StoreOptions};

fn main() {
    println!("shopfloor-agent benchmarks (release build)");
    core_throughput();
    store_commit_throughput();
}

/// Counter steps + window accumulation + KPI computation for one machine at a 1 s poll.
fn core_throughput() {
    let tz = jiff::tz::TimeZone::get("Asia/Seoul").expect("bundled tz database");
    let periods = ["1m", "15m", "1h"]
        .iter()
        .map(|p| Period::parse(p).expect("valid period"))
        .collect::<Vec<_>>();
    let counter = CounterConfig {
        modulus: 1 << 32,
        wrap: true,
        on_decrease: OnDecrease::Reset,
        design_rate: None,
    };
    let mut windows = MachineWindows::new(
        "m".into(),
        periods,
        10_000,
        72 * 3_600_000,
        Calendar::all_planned(tz),
    );
    let mut produced = CounterState::default();
    let mut defective = CounterState::default();
    let samples: i64 = 500_000;
    let start_ms: i64 = 1_790_000_000_000;
    let started = Instant::now();
    let mut raw: u64 = u32::MAX as u64 - 1000;
    let mut closed = 0usize;
    for i in 0..samples {
        let at = start_ms + i * 1000;
        raw = (raw + 3) % (1 << 32);
        for (state, channel, value) in [
            (&mut produced, Channel::Produced, raw),
            (&mut defective, Channel::Defective, raw / 50),
        ] {
            let step = state.step(&counter, value, at);
            if step.delta > 0 {
                windows.add_count(
                    &channel,
                    step.delta,
                    step.t_from,
                    step.t_to,
                    step.kind.flag(),
                );
            }
        }
        windows.add_state(MachineState::Running, at - 1000, at);
        for record in windows.close_due(at) {
            let ideal = Some(std::time::Duration::from_millis(300));
            let _ = kpi::of_window(&record, ideal, &Targets::default(), UnknownTime::Loss);
            closed += 1;
        }
        let _ = windows.touched();
    }
    let elapsed = started.elapsed();
    println!(
        "core: {samples} samples (2 counters + state, 3 periods) in {:.2} s = {:.0} samples/s; {closed} windows closed",
        elapsed.as_secs_f64(),
        samples as f64 / elapsed.as_secs_f64()
    );
}

/// One poll cycle's transaction: 3 counters, 3 deltas, 3 window upserts, and one outbox row every
/// 60 cycles (a 1-minute rollup), with synchronous=FULL on the local disk.
fn store_commit_throughput() {
    let dir = std::env::temp_dir().join(format!("shopfloor-bench-{}", std::process::id()));
    let path = dir.join("bench.db");
    let mut store = Store::open(&path, &StoreOptions::default()).expect("store opens");
    let cycles = 2_000;
    let body = serde_json::json!({"schema": "shopfloor.rollup/1", "counts": {"produced": 100}});
    let one_minute = shopfloor_agent::logic::window::Period::parse("1m").expect("a valid period");
    let started = Instant::now();
    let mut latencies: Vec<Duration> = Vec::with_capacity(cycles);
    for i in 0..cycles {
        let now = 1_790_000_000_000 + i as i64 * 1000;
        let cycle = CycleWrite {
            counters: (0..3)
                .map(|c| (format!("m{c}/produced"), format!("{{\"last\":{i}}}")))
                .collect(),
            deltas: (0..3)
                .map(|c| DeltaRow {
                    key: format!("m{c}/produced"),
                    kind: StepKind::Normal,
                    delta: 1,
                    raw: i as u64,
                    t_from: now - 1000,
                    t_to: now,
                })
                .collect(),
            windows: (0..3)
                .map(|c| {
                    (
                        format!("m{c}/1m/{}", now / 60_000),
                        "{\"sums\":{}}".to_string(),
                    )
                })
                .collect(),
            outbox: if i % 60 == 0 {
                vec![OutboxDraft::rollup(
                    "shopfloor/v1/s/l/m/rollup/1m".into(),
                    body.clone(),
                    &one_minute,
                )]
            } else {
                Vec::new()
            },
            now,
        };
        let t = Instant::now();
        store.commit_cycle(&cycle).expect("commit succeeds");
        latencies.push(t.elapsed());
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize];
    println!(
        "store: {cycles} poll-cycle transactions in {:.2} s = {:.0} cycles/s; latency p50 {:.2} ms, p99 {:.2} ms",
        elapsed.as_secs_f64(),
        cycles as f64 / elapsed.as_secs_f64(),
        pct(0.5).as_secs_f64() * 1000.0,
        pct(0.99).as_secs_f64() * 1000.0
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}
