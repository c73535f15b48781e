//! The processor against a real SQLite store, fed with samples built here instead of a poller: a counter
//! that reads as an error while the state register reads fine, and a payload limit below every draft.
//! Tests run on a current-thread runtime so that a thread-local tracing subscriber sees what the
//! processor logs.

use std::io::Write;
use std::sync::Mutex;

use super::*;
use crate::poller::TagError;
use crate::store::{DraftOwner, DroppedRange, RefusedDraft, Store, StoreOptions};

/// 2026-11-28T00:00:00Z.
pub(super) const T0: Millis = 1_795_824_000_000;
pub(super) const SECOND: Millis = 1_000;
pub(super) const MINUTE: Millis = 60_000;

const CONFIG: &str = r#"
[agent]
site = "acme"
gateway = "gw-01"
timezone = "UTC"
data_dir = "/tmp/unused"
periods = ["1m"]

[[plc]]
id = "plc-a"
address = "127.0.0.1:502"

[[machine]]
id = "press-01"
line = "line-a"
plc = "plc-a"
counters.produced = { table = "holding", address = 0, type = "u16" }
state = { table = "holding", address = 10, type = "u16", running = [1], planned_stop = [2], unplanned_stop = [3] }
"#;

/// A processor over a real store in a temporary directory, and what a poller of its one PLC would send.
pub(super) struct Harness {
    pub(super) processor: Processor,
    pub(super) store: StoreHandle,
    plan: ReadPlan,
    /// The monotonic instant that goes with `T0`, so that samples show no step of the wall clock.
    pub(super) mono_at_t0: Instant,
    seq: u64,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub(super) async fn new(max_payload_bytes: u64) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let config = Arc::new(Config::from_toml(CONFIG, "test.toml", false).unwrap());
        let options = StoreOptions {
            max_payload_bytes,
            ..StoreOptions::default()
        };
        let store = Store::open(&dir.path().join("agent.db"), &options).unwrap();
        let store = StoreHandle::spawn(store);
        let plan = ReadPlan::for_plc(&config, 0);
        let identity = crate::supervisor::identity(&config);
        let clock = crate::clock::system();
        let processor =
            Processor::new(config, identity, std::slice::from_ref(&plan), &store, clock)
                .await
                .unwrap();
        Harness {
            processor,
            store,
            plan,
            mono_at_t0: Instant::now(),
            seq: 0,
            _dir: dir,
        }
    }

    /// One poll cycle at `at`: the produced counter and the state register read as given.
    pub(super) fn poll(
        &mut self,
        at: Millis,
        produced: Result<u16, TagError>,
        state: Result<u16, TagError>,
    ) {
        let machine = &self.processor.config.machines[0];
        let mut readings = vec![Err(TagError::Transport("unread".into())); self.plan.tags.len()];
        let produced_index = self.plan.index_of(&machine.produced.tag).unwrap();
        let state_tag = &machine.state.as_ref().unwrap().tag;
        let state_index = self.plan.index_of(state_tag).unwrap();
        readings[produced_index] = produced.map(|value| vec![value]);
        readings[state_index] = state.map(|value| vec![value]);
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

    /// The processor as a restart after a crash builds it: from what the store holds, the work since
    /// the last commit lost.
    pub(super) async fn restart(&mut self) {
        let config = self.processor.config.clone();
        let identity = crate::supervisor::identity(&config);
        let clock = crate::clock::system();
        self.processor = Processor::new(
            config,
            identity,
            std::slice::from_ref(&self.plan),
            &self.store,
            clock,
        )
        .await
        .unwrap();
    }

    /// Loads the windows late facts wait for, closes what is due at `now` and commits, as the
    /// processor task does after each sample; returns how many windows closed.
    async fn close_and_commit(&mut self, now: Millis) -> usize {
        self.processor.load_deferred(&self.store).await.unwrap();
        let closed = self.processor.close_due(now);
        self.processor.commit(&self.store, now).await.unwrap();
        closed
    }

    /// The window records in the store, by start.
    pub(super) async fn stored_windows(&self) -> Vec<WindowRecord> {
        let texts = self
            .store
            .call(|s| s.load_windows_between("press-01", "1m", 0, Millis::MAX))
            .await
            .unwrap()
            .unwrap();
        let mut records: Vec<WindowRecord> = texts
            .iter()
            .map(|text| serde_json::from_str(text).unwrap())
            .collect();
        records.sort_by_key(|record| record.start);
        records
    }
}

fn disabled() -> TagError {
    TagError::Disabled {
        code: 2,
        name: "illegal data address".into(),
    }
}

pub(super) const RUNNING: u16 = 1;

#[tokio::test(flavor = "current_thread")]
async fn given_a_disabled_counter_and_a_readable_state_when_windows_close_then_they_carry_the_gap_flag(
) {
    // Given a machine whose counter reads fine in the first minute,
    let mut harness = Harness::new(StoreOptions::default().max_payload_bytes).await;
    let mut raw = 100_u16;
    let mut at = T0;
    while at < T0 + MINUTE {
        harness.poll(at, Ok(raw), Ok(RUNNING));
        raw += 1;
        at += 5 * SECOND;
    }
    // When the counter tag is disabled (exception 02) for the whole second minute while the state
    // register still reads "running",
    while at < T0 + 2 * MINUTE {
        harness.poll(at, Err(disabled()), Ok(RUNNING));
        raw += 1;
        at += 5 * SECOND;
    }
    // and it reads again in the third minute (its cumulative value carries the second minute's counts),
    while at < T0 + 3 * MINUTE {
        harness.poll(at, Ok(raw), Ok(RUNNING));
        raw += 1;
        at += 5 * SECOND;
    }
    let closed = harness.close_and_commit(T0 + 10 * MINUTE).await;
    assert_eq!(closed, 3);

    // Then the stored window of the second minute is flagged gap, the first one is not,
    let windows = harness.stored_windows().await;
    let at_start = |start: Millis| {
        windows
            .iter()
            .find(|w| w.start == start)
            .unwrap_or_else(|| panic!("no window at {start}: {windows:?}"))
    };
    let first = at_start(T0);
    let disabled_minute = at_start(T0 + MINUTE);
    assert!(!first.sums.flags.contains(&Flag::Gap), "{first:?}");
    assert!(
        disabled_minute.sums.flags.contains(&Flag::Gap),
        "the minute of the disabled counter must carry the gap flag: {disabled_minute:?}"
    );
    // and no unit is lost: the three minutes hold every increment of the counter.
    let produced: u64 = windows.iter().map(|w| w.sums.produced).sum();
    assert_eq!(produced, u64::from(raw - 1 - 100));
    // The state was read throughout: the disabled minute is running time, not unknown time.
    assert_eq!(disabled_minute.sums.running_ms, MINUTE);
}

/// Every log line (WARN and above) written on this thread while it is installed.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn install(&self) -> tracing::subscriber::DefaultGuard {
        let writer = self.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_default(subscriber)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    fn lines(&self) -> usize {
        self.text().lines().count()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn given_a_payload_limit_below_every_draft_when_many_cycles_commit_then_refusals_never_cascade(
) {
    // Given a store that refuses every draft (a 16-byte payload limit),
    let log = Captured::default();
    let _guard = log.install();
    let mut harness = Harness::new(16).await;

    // When 40 cycles each close one window (one rollup draft each) and commit,
    let mut rollups = 0;
    let mut raw = 0_u16;
    for cycle in 0..40 {
        let at = T0 + cycle * MINUTE + 30 * SECOND;
        harness.poll(at, Ok(raw), Ok(RUNNING));
        raw += 3;
        rollups += harness.close_and_commit(at).await as u64;
    }

    // Then each rollup was refused once and announced by one payload_refused event,
    let tally = &harness.processor.refusals;
    assert!(rollups >= 38, "{rollups} windows closed");
    assert_eq!(tally.events, rollups, "{tally:?}");
    // each announcement was refused once and counted, never announced again,
    let pending_alarms = harness
        .processor
        .pending
        .outbox
        .iter()
        .filter(|queued| queued.role == DraftRole::RefusalAlarm)
        .count() as u64;
    assert_eq!(tally.alarms + pending_alarms, tally.events, "{tally:?}");
    // so the store refused at most two drafts per rollup,
    let refused = harness.store.call(|s| s.drops().refused).await.unwrap();
    assert_eq!(refused, tally.drafts);
    assert!(
        refused <= 2 * rollups,
        "{refused} drafts refused for {rollups} rollups"
    );
    // and the processor logged a handful of lines, not one per refusal.
    assert!(
        log.lines() <= 5,
        "{} log lines: {}",
        log.lines(),
        log.text()
    );
}

/// A dropped range of one row on `topic`, whose payloads named `owner`.
fn dropped_range(topic: &str, owner: Option<DraftOwner>) -> DroppedRange {
    DroppedRange {
        topic: topic.into(),
        class: crate::store::DropClass::Rollup1m,
        first_seq: 1,
        last_seq: 1,
        rows: 1,
        first_enqueued_at: T0,
        last_enqueued_at: T0,
        produced: 3,
        defective: 0,
        owner,
    }
}

#[tokio::test(flavor = "current_thread")]
async fn given_dropped_and_refused_rows_when_announced_then_each_event_goes_to_the_machine_their_payload_named(
) {
    // Given a processor with machine press-01 on line-a,
    let mut harness = Harness::new(1 << 20).await;
    let identity = harness.processor.identity.clone();
    let press = payload::event_topic(&identity, "line-a", "press-01");
    let gateway = payload::gateway_event_topic(&identity);
    let named = |line: &str, machine: &str| {
        Some(DraftOwner {
            line: line.into(),
            machine: machine.into(),
        })
    };
    let rollup_topic = press.replace("/event", "/rollup/1m");

    // when the store reports dropped and refused rows with the machine their payloads named,
    // (topics that do not follow the machine's topic prefix, so only the reported owner can place them)
    let queued = harness.processor.pending.outbox.len();
    harness.processor.announce_drops(
        &[
            dropped_range(&rollup_topic, named("line-a", "press-01")),
            dropped_range("elsewhere/rollup/1m", named("line-a", "press-01")),
            dropped_range(&rollup_topic, named("line-b", "press-01")),
            dropped_range(&rollup_topic, None),
        ],
        T0,
    );
    let refused = RefusedDraft {
        index: 0,
        topic: "elsewhere/event".into(),
        bytes: 99,
        owner: named("line-a", "press-01"),
    };
    harness
        .processor
        .announce_refusals(&[refused], &[DraftRole::Event], T0);

    // then each event is on the named machine's event topic when that machine is ours, else the gateway's.
    let topics: Vec<&str> = harness.processor.pending.outbox[queued..]
        .iter()
        .map(|queued| queued.draft.topic.as_str())
        .collect();
    assert_eq!(
        topics,
        vec![
            press.as_str(),
            press.as_str(),
            gateway.as_str(),
            gateway.as_str(),
            press.as_str()
        ]
    );
}
