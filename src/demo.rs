//! `shopfloor-agent demo`: simulated PLCs + an in-process MQTT broker + the real agent + a live table.
//! It needs no files and no servers; the store lives in a temporary directory removed at exit.

use std::io::{IsTerminal, Write};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context as _;
use simulators::{MachineSpec, PlcSimulator};
use tokio_util::sync::CancellationToken;

use crate::broker;
use crate::config::Config;
use crate::logic::kpi::NullReason;
use crate::logic::rollup::MachineState;
use crate::processor::MachineView;
use crate::supervisor::{self, Observers};

/// The demo's configuration, embedded so the demo needs no files.
pub const DEMO_CONFIG: &str = include_str!("../config/demo.toml");

/// How often the terminal table refreshes.
const REFRESH: Duration = Duration::from_secs(2);

/// Starts the simulators, the broker and the agent, and draws the table until `shutdown`.
pub async fn run(preferred_mqtt_port: u16, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut config = Config::from_toml(DEMO_CONFIG, "embedded demo config", false)
        .context("the embedded demo config is invalid")?;

    let reasons = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let line_a = PlcSimulator::start(
        "127.0.0.1:0",
        vec![
            MachineSpec {
                cycle_time: Duration::from_millis(500),
                defect_probability: 0.05,
                stop_probability: 0.01,
                reasons: reasons(&["scratch", "dent", "misfeed"]),
                ..MachineSpec::new(1)
            },
            MachineSpec {
                cycle_time: Duration::from_millis(700),
                defect_probability: 0.03,
                stop_probability: 0.02,
                initial_produced: 4_294_967_000, // wraps past 2^32 within minutes
                reasons: reasons(&["scratch", "dent", "misfeed"]),
                ..MachineSpec::new(2)
            },
        ],
        42,
    )
    .await
    .context("cannot start the simulated PLC of line A")?;
    let line_b = PlcSimulator::start(
        "127.0.0.1:0",
        vec![MachineSpec {
            cycle_time: Duration::from_millis(1000),
            defect_probability: 0.04,
            stop_probability: 0.01,
            reasons: reasons(&["porosity", "crack"]),
            ..MachineSpec::new(1)
        }],
        7,
    )
    .await
    .context("cannot start the simulated PLC of line B")?;
    config.plcs[0].address = line_a.local_addr().to_string();
    config.plcs[1].address = line_b.local_addr().to_string();

    let broker = match broker::start_in_process(preferred_mqtt_port) {
        Ok(broker) => broker,
        Err(_) => broker::start_in_process(0).context("cannot start the in-process MQTT broker")?,
    };
    config.mqtt.host = "127.0.0.1".into();
    config.mqtt.port = broker.port;

    let data_dir =
        std::env::temp_dir().join(format!("shopfloor-agent-demo-{}", std::process::id()));
    config.agent.data_dir = data_dir.clone();

    println!("shopfloor-agent demo: 3 simulated machines on 2 simulated PLCs");
    println!("  PLC line A (Modbus/TCP): {}", line_a.local_addr());
    println!("  PLC line B (Modbus/TCP): {}", line_b.local_addr());
    println!("  MQTT broker (in-process): 127.0.0.1:{}", broker.port);
    println!("  store: {}", data_dir.display());
    println!(
        "Watch the topics:  mosquitto_sub -h 127.0.0.1 -p {} -t 'shopfloor/#' -v",
        broker.port
    );
    println!(
        "Rollups of the 1-minute windows appear shortly after each minute closes. Ctrl-C stops.\n"
    );

    let result = supervisor::run(config, shutdown.clone(), move |observers| {
        tokio::spawn(draw_loop(observers, shutdown));
    })
    .await;

    line_a.shutdown().await;
    line_b.shutdown().await;
    drop(broker);
    let _ = std::fs::remove_dir_all(&data_dir);
    result
}

async fn draw_loop(observers: Observers, shutdown: CancellationToken) {
    let interactive = std::io::stdout().is_terminal();
    let mut tick = tokio::time::interval(REFRESH);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let views = observers.view_rx.borrow().clone();
        if views.is_empty() {
            continue;
        }
        let backlog = match observers.store.call(|s| s.backlog()).await {
            Ok(Ok(backlog)) => backlog.rows.to_string(),
            _ => "?".into(),
        };
        let stats = &observers.publisher_stats;
        let (plcs_up, plcs) = {
            let board = observers
                .plc_health
                .lock()
                .expect("health board lock is never poisoned");
            (board.iter().filter(|h| h.up).count(), board.len())
        };
        let mut out = String::new();
        if interactive {
            out.push_str("\x1b[2J\x1b[H");
        }
        out.push_str(&render_table(&views));
        out.push_str(&format!(
            "\nMQTT {}  |  acked {}  |  backlog {} row(s)  |  PLCs up {}/{}\n",
            if stats.connected.load(Ordering::Relaxed) {
                "connected"
            } else {
                "disconnected"
            },
            stats.acked.load(Ordering::Relaxed),
            backlog,
            plcs_up,
            plcs,
        ));
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }
}

/// Renders the live table: one row per machine, figures of its current (longest) window.
pub fn render_table(views: &[MachineView]) -> String {
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", v * 100.0));
    // A goal stays blank until the window holds enough units to mean anything (docs/kpi.md#too-few-units).
    let goal = |v: &Result<f64, NullReason>| match v {
        Ok(value) => format!("{:.1}%", value * 100.0),
        Err(NullReason::TooFewUnits) => "few units".to_string(),
        Err(NullReason::NoTarget) => "no target".to_string(),
        Err(_) => "-".to_string(),
    };
    let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
    let mut out = format!(
        "{:<10} {:<8} {:<15} {:>6} {:>9} {:>8} {:>10} {:>8} {:>10} {:>11}\n",
        "machine",
        "line",
        "state",
        "window",
        "produced",
        "defect%",
        "good/h",
        "avail%",
        "goal:prod",
        "goal:defect"
    );
    for view in views {
        let state = match view.state {
            Some(MachineState::Running) => "running",
            Some(MachineState::PlannedStop) => "planned stop",
            Some(MachineState::UnplannedStop) => "unplanned stop",
            Some(MachineState::Unknown) | None => "unknown",
        };
        out.push_str(&format!(
            "{:<10} {:<8} {:<15} {:>6} {:>9} {:>8} {:>10} {:>8} {:>10} {:>11}\n",
            view.machine,
            view.line,
            state,
            view.period,
            view.produced,
            pct(view.defect_rate),
            num(view.productivity),
            pct(view.availability),
            goal(&view.productivity_attainment),
            goal(&view.defect_rate_attainment),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(
        produced: u64,
        productivity_attainment: Result<f64, NullReason>,
        defect_rate_attainment: Result<f64, NullReason>,
    ) -> MachineView {
        MachineView {
            machine: "weld-01".into(),
            line: "line-b".into(),
            state: Some(MachineState::Running),
            period: "1h".into(),
            produced,
            defective: produced,
            defect_rate: Some(1.0),
            productivity: Some(3600.0),
            availability: Some(1.0),
            productivity_attainment,
            defect_rate_attainment,
        }
    }

    #[test]
    fn given_one_unit_in_the_window_when_the_table_is_drawn_then_goals_say_few_units() {
        // Given one defective unit: its attainment against 6 % → 2 % would read −2350 %.
        let table = render_table(&[view(
            1,
            Err(NullReason::TooFewUnits),
            Err(NullReason::TooFewUnits),
        )]);

        assert!(table.contains("few units"), "{table}");
        assert!(!table.contains("-2350"), "{table}");
    }

    #[test]
    fn given_enough_units_and_a_missing_target_when_drawn_then_figure_and_no_target_show() {
        let table = render_table(&[view(500, Ok(0.6), Err(NullReason::NoTarget))]);

        assert!(table.contains("60.0%"), "{table}");
        assert!(table.contains("no target"), "{table}");
    }
}
