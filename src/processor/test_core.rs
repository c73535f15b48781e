//! A processor without a store for unit tests: restored from nothing by [`Processor::restore`] and fed
//! samples built here, it queues the rollups and events `run` would commit.

use super::*;
use crate::poller::TagError;
use serde_json::Value as Json;

/// 2026-11-28T00:00:00Z.
pub(super) const T0: Millis = 1_795_824_000_000;
pub(super) const SECOND: Millis = 1_000;
pub(super) const MINUTE: Millis = 60_000;
/// The state register value the test configurations map to `running`.
pub(super) const RUNNING: u16 = 1;

/// A processor restored from nothing, and what a poller of its one PLC would send.
pub(super) struct Core {
    pub(super) processor: Processor,
    plan: ReadPlan,
    mono_at_t0: Instant,
    seq: u64,
}

/// What one poll read of the machine.
pub(super) enum Read {
    /// The connection failed: every tag is a transport error.
    Lost,
    /// The produced counter and, when configured, the state register.
    Values { produced: u16, state: Option<u16> },
}

impl Core {
    pub(super) fn new(toml: &str) -> Core {
        let config = Arc::new(Config::from_toml(toml, "test.toml", false).unwrap());
        let plan = ReadPlan::for_plc(&config, 0);
        let identity = crate::supervisor::identity(&config);
        let processor = Processor::restore(
            config,
            identity,
            std::slice::from_ref(&plan),
            BTreeMap::new(),
            Vec::new(),
            crate::clock::system(),
        );
        Core {
            processor,
            plan,
            mono_at_t0: Instant::now(),
            seq: 0,
        }
    }

    pub(super) fn poll(&mut self, at: Millis, read: Read) {
        let machine = &self.processor.config.machines[0];
        let lost = || Err(TagError::Transport("connection refused".into()));
        let mut readings = vec![lost(); self.plan.tags.len()];
        if let Read::Values { produced, state } = read {
            readings[self.plan.index_of(&machine.produced.tag).unwrap()] = Ok(vec![produced]);
            if let (Some(value), Some(tag)) = (state, &machine.state) {
                readings[self.plan.index_of(&tag.tag).unwrap()] = Ok(vec![value]);
            }
        }
        self.seq += 1;
        let sample = Sample {
            plc: 0,
            seq: self.seq,
            mono: self.mono_at_t0 + Duration::from_millis((at - T0) as u64),
            utc: at,
            readings,
            events: Vec::new(),
        };
        self.processor.on_sample(&sample);
    }

    /// Takes the configuration `toml` as a reload does: rebuilt from what a commit would have stored (the
    /// counter baselines, trackers and open windows), then carrying over the running state.
    pub(super) fn reconfigure(&mut self, toml: &str) {
        let config = Arc::new(Config::from_toml(toml, "test.toml", false).unwrap());
        let plan = ReadPlan::for_plc(&config, 0);
        // A reload commits first, which applies every deferred change (no store: nothing to load).
        self.processor.load_deferred_with(|_, _| Vec::new());
        let old = &self.processor;
        let mut counters = BTreeMap::new();
        let mut records = Vec::new();
        for machine in &old.machines {
            for channel in &machine.counters {
                counters.insert(
                    channel.key.clone(),
                    serde_json::to_string(&channel.state).unwrap(),
                );
            }
            let tracker = serde_json::to_string(&machine.tracker).unwrap();
            counters.insert(machine.tracker_key.clone(), tracker);
            for acc in &machine.windows {
                records.extend(acc.open_windows().into_iter().cloned());
            }
        }
        let identity = crate::supervisor::identity(&config);
        let next = Processor::restore(
            config,
            identity,
            std::slice::from_ref(&plan),
            counters,
            records,
            crate::clock::system(),
        );
        let old = std::mem::replace(&mut self.processor, next);
        self.processor.carry_over(old);
        self.plan = plan;
    }

    /// One poll at `at` of a running machine whose produced counter reads `produced`.
    pub(super) fn poll_running(&mut self, at: Millis, produced: u16) {
        self.poll(at, values(produced, Some(RUNNING)));
    }

    /// Closes what is due at `now` and returns (rollups, events) queued since the last call. No store
    /// is behind this processor, so no window ever left memory: an empty answer to its loads is exact.
    pub(super) fn close(&mut self, now: Millis) -> (Vec<Json>, Vec<Json>) {
        self.processor.load_deferred_with(|_, _| Vec::new());
        self.processor.close_due(now);
        let queued = std::mem::take(&mut self.processor.pending.outbox);
        queued
            .into_iter()
            .map(|q| q.draft.body)
            .partition(|body| body.get("window").is_some())
    }
}

/// What one poll read: the produced counter and, when configured, the state register.
pub(super) fn values(produced: u16, state: Option<u16>) -> Read {
    Read::Values { produced, state }
}

/// A rollup's flags, in payload order.
pub(super) fn flags(rollup: &Json) -> Vec<&str> {
    rollup["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect()
}

/// A one-PLC, one-machine configuration: the `periods` array, `sections` placed after `[agent]` (a
/// `[calendar]`), the PLC's `poll_interval`, and the machine's own lines after its id, line and plc.
pub(super) fn one_machine(
    periods: &str,
    sections: &str,
    poll_interval: &str,
    machine: &str,
) -> String {
    format!(
        r#"{agent}
{sections}
[[plc]]
id = "plc-a"
address = "127.0.0.1:502"
poll_interval = "{poll_interval}"

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
{machine}
"#,
        agent = agent_section(periods)
    )
}

/// The `[agent]` section of the test configurations (site acme, gateway gw-01, UTC) with the `periods` array.
pub(super) fn agent_section(periods: &str) -> String {
    format!(
        r#"
[agent]
site = "acme"
gateway = "gw-01"
timezone = "UTC"
data_dir = "/tmp/unused"
periods = [{periods}]
"#
    )
}

/// The state register the test machines use: 1 running, 2 planned stop, 3 unplanned stop.
pub(super) const STATE_LINE: &str = r#"state = { table = "holding", address = 10, type = "u16", running = [1], planned_stop = [2], unplanned_stop = [3] }"#;
