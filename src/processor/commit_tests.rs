//! Group commit against a real SQLite store, with synthetic time: the processor settles after every poll
//! as its task does, and the store's transactions are counted from the process's metrics.

use super::commit_policy::CommitPolicy;
use super::tests::{Harness, MINUTE, RUNNING, SECOND, T0};
use super::*;
use crate::clock::Now;
use crate::store::StoreOptions;

/// Polls every 200 ms over 75 s: the 1-minute window starting at `T0` closes on the way (10 s grace).
const POLL_EVERY: Millis = 200;
const END: Millis = T0 + MINUTE + 15 * SECOND;

/// What a run of polls left: how many polls, transactions and outbox rows, and when the first rollup was
/// committed.
struct Run {
    polls: u64,
    commits: u64,
    first_rows_at: Option<Millis>,
}

impl Harness {
    fn now(&self, at: Millis) -> Now {
        Now {
            mono: self.mono_at_t0 + Duration::from_millis((at - T0) as u64),
            utc: at,
        }
    }

    /// Polls the counter, rising by one per poll from `raw`, from `from` until `until`, settling after each
    /// poll with `policy`; returns the run and the next raw value.
    async fn polls(
        &mut self,
        policy: &mut CommitPolicy,
        from: Millis,
        until: Millis,
        raw: u16,
    ) -> (Run, u16) {
        let metrics = Arc::new(crate::metrics::Metrics::new());
        self.processor.metrics = metrics.clone();
        let mut run = Run {
            polls: 0,
            commits: 0,
            first_rows_at: None,
        };
        let (mut at, mut raw) = (from, raw);
        while at < until {
            self.poll(at, Ok(raw), Ok(RUNNING));
            let settled = self
                .processor
                .settle(&self.store, policy, self.now(at))
                .await;
            if let Some(rows) = settled {
                if rows.unwrap() > 0 && run.first_rows_at.is_none() {
                    run.first_rows_at = Some(at);
                }
            }
            run.polls += 1;
            raw += 1;
            at += POLL_EVERY;
        }
        run.commits = commits(&metrics);
        (run, raw)
    }
}

impl Harness {
    /// Settles a second after the last poll, with no sample in between (the task's commit timer), and
    /// checks that nothing is left pending.
    async fn settle_last(&mut self, policy: &mut CommitPolicy) {
        let last = self.now(END + SECOND);
        if let Some(committed) = self.processor.settle(&self.store, policy, last).await {
            committed.unwrap();
        }
        assert_eq!(self.processor.work(), commit_policy::Work::Nothing);
        assert_eq!(policy.next_due(), None);
    }
}

/// `shopfloor_store_commits_total` of `metrics`.
fn commits(metrics: &crate::metrics::Metrics) -> u64 {
    metrics
        .encode()
        .lines()
        .find_map(|line| {
            line.strip_prefix("shopfloor_store_commits_total ")?
                .parse()
                .ok()
        })
        .expect("the commit counter is exported")
}

/// The close of the 1-minute window starting at `T0`: its end plus the default grace.
fn closes_at(harness: &Harness) -> Millis {
    let grace = harness.processor.config.agent.periods[0].grace;
    T0 + MINUTE + config::arith::millis(grace)
}

#[tokio::test(flavor = "current_thread")]
async fn given_a_one_second_interval_when_polls_come_every_200ms_then_one_transaction_covers_five_and_rollups_commit_at_once(
) {
    // Given a processor that commits at most once a second,
    let mut harness = Harness::new(StoreOptions::default().max_payload_bytes).await;
    let mut policy = CommitPolicy::new(Duration::from_secs(1));
    // When 375 polls arrive 200 ms apart,
    let (run, raw) = harness.polls(&mut policy, T0, END, 100).await;
    // then at least five polls share a transaction (the oldest work waits a second: one transaction per
    // six polls, and one more for the closed window),
    assert_eq!(run.polls, 375);
    assert!(
        run.commits * 5 <= run.polls,
        "{} transactions for {} polls",
        run.commits,
        run.polls
    );
    assert!(
        run.commits >= 50,
        "{} transactions for {} polls",
        run.commits,
        run.polls
    );
    // the closed window's rollup was committed by the first settle after its close, without waiting,
    let close = closes_at(&harness);
    let first = run
        .first_rows_at
        .expect("the closed window's rollup was committed");
    assert!(
        first >= close && first < close + POLL_EVERY,
        "committed at {first}, closed at {close}"
    );
    // and once the last interval is committed the stored window holds every count of its minute.
    harness.settle_last(&mut policy).await;
    let minute = harness.stored_windows().await;
    let produced: u64 = minute.iter().map(|w| w.sums.produced).sum();
    assert_eq!(produced, u64::from(raw - 1 - 100));
}

#[tokio::test(flavor = "current_thread")]
async fn given_a_zero_interval_when_polls_arrive_then_every_poll_is_one_transaction() {
    let mut harness = Harness::new(StoreOptions::default().max_payload_bytes).await;
    let mut policy = CommitPolicy::new(Duration::ZERO);
    let (run, _) = harness.polls(&mut policy, T0, T0 + 20 * SECOND, 100).await;
    assert_eq!(run.polls, 100);
    assert_eq!(run.commits, 100);
}

#[tokio::test(flavor = "current_thread")]
async fn given_uncommitted_polls_when_the_processor_is_lost_then_the_next_poll_carries_their_counts(
) {
    // Given polls committed once a second, and 800 ms of polls after the last commit,
    let mut harness = Harness::new(StoreOptions::default().max_payload_bytes).await;
    let mut policy = CommitPolicy::new(Duration::from_secs(1));
    let (_, raw) = harness
        .polls(&mut policy, T0, T0 + 10 * SECOND + 800, 100)
        .await;
    // when the processor is lost without a final commit (a crash) and rebuilt from the store,
    harness.restart().await;
    let mut policy = CommitPolicy::new(Duration::from_secs(1));
    // and polling goes on until the window closed and everything is committed,
    let (_, raw) = harness.polls(&mut policy, T0 + 11 * SECOND, END, raw).await;
    harness.settle_last(&mut policy).await;
    // then no unit is lost: the counts of the lost polls came with the first poll after the restart.
    let windows = harness.stored_windows().await;
    let produced: u64 = windows.iter().map(|w| w.sums.produced).sum();
    assert_eq!(produced, u64::from(raw - 1 - 100));
}

#[test]
fn given_pending_work_when_its_transaction_fails_then_everything_moved_into_it_is_pending_again() {
    // Given baselines, a window record, a rollup and an event waiting for a commit.
    let mut pending = Pending::default();
    pending
        .counters
        .insert("m1/produced".into(), r#"{"last":7}"#.into());
    pending
        .windows
        .insert("m1/1m/0".into(), r#"{"start":0}"#.into());
    let draft = |topic: &str| OutboxDraft {
        topic: topic.into(),
        body: serde_json::json!({ "topic": topic }),
        class: crate::store::DropClass::Durable,
    };
    pending.push_rollup(draft("p/rollup/1m"));
    pending.push(draft("p/event"));
    let (counters, windows) = (pending.counters.clone(), pending.windows.clone());

    // When they are moved into a transaction's write, the transaction fails, and they are put back.
    let (cycle, roles) = pending.take_cycle(T0);
    assert!(pending.counters.is_empty() && pending.windows.is_empty() && pending.outbox.is_empty());
    assert_eq!(
        (
            cycle.counters.len(),
            cycle.windows.len(),
            cycle.outbox.len()
        ),
        (1, 1, 2)
    );
    assert_eq!(roles, vec![DraftRole::Rollup, DraftRole::Event]);
    pending.restore_cycle(cycle, roles);

    // Then the pending work is what it was, drafts in order with their roles.
    assert_eq!((pending.counters, pending.windows), (counters, windows));
    let drafts: Vec<(String, DraftRole)> = pending
        .outbox
        .iter()
        .map(|queued| (queued.draft.topic.clone(), queued.role))
        .collect();
    assert_eq!(
        drafts,
        vec![
            ("p/rollup/1m".to_owned(), DraftRole::Rollup),
            ("p/event".to_owned(), DraftRole::Event)
        ]
    );
}
