//! Retiring acknowledged rows without stalling the link: a retirement runs as its own task on the store thread
//! while the session keeps submitting and reading acknowledgements, at most one at a time; the rows acked
//! meanwhile make the next batch (`publisher::retire` says when it is due). At the end of a session the running
//! retirement is awaited and whatever is still queued is retired, so a clean shutdown leaves no delivered row
//! behind.

use std::sync::atomic::Ordering;

use tokio::task::JoinHandle;

use super::Session;
use crate::publisher::retire::RetireBatch;
use crate::publisher::store_fault::StoreCall;
use crate::publisher::PublishError;
use crate::store::StoreError;

/// What a retiring task answers: the store call's own result, or the store thread's end.
type RetireResult = anyhow::Result<Result<usize, StoreError>>;

/// The retirement running on the store thread.
pub(super) struct Retiring {
    task: JoinHandle<RetireResult>,
    /// Its acknowledged rows, put back when the store refuses the transaction.
    acked: Vec<i64>,
}

impl Session<'_, '_> {
    /// Starts the next retirement if it is due (see `publisher::retire`) and the store is not backing off.
    pub(super) fn retire_if_due(&mut self) {
        let now = std::time::Instant::now();
        let quiet = self.inflight.outstanding() == 0;
        if !self.retire.due(now, self.retiring.is_some(), quiet) || self.state.store.holding(now) {
            return;
        }
        let batch = self.retire.take();
        self.retiring = Some(self.spawn_retiring(batch));
    }

    /// Sends `batch` to the store thread as one retiring transaction, from a task of its own.
    fn spawn_retiring(&self, batch: RetireBatch) -> Retiring {
        let RetireBatch { acked, released } = batch;
        let to_retire = acked.clone();
        let store = self.shared.store.clone();
        let task = tokio::spawn(async move {
            store
                .call(move |store| {
                    store.release(&released);
                    store.retire(&to_retire)
                })
                .await
        });
        Retiring { task, acked }
    }

    /// When the queued rows become due by age, unless a retirement runs (its end wakes the session) or the store
    /// backs off (its retry wakes the session).
    pub(super) fn retire_deadline(&self) -> Option<std::time::Instant> {
        if self.retiring.is_some() || self.state.store.holding(std::time::Instant::now()) {
            return None;
        }
        self.retire.deadline()
    }

    /// Notes how the running retirement ended: counted when it committed, its rows queued again when the store
    /// refused it (retried after the store's backoff), the end of the publisher when the store thread is gone.
    pub(super) fn on_retired(
        &mut self,
        acked: Vec<i64>,
        result: Result<RetireResult, tokio::task::JoinError>,
    ) -> Result<(), PublishError> {
        let result = result
            .map_err(|error| PublishError::StoreGone(anyhow::Error::new(error)))?
            .map_err(PublishError::StoreGone)?;
        let count = acked.len() as u64;
        match super::note_store_result(
            &mut self.state.store,
            self.shared.stats,
            StoreCall::Retire,
            result,
        ) {
            Some(_) => {
                self.shared.stats.acked.fetch_add(count, Ordering::Relaxed);
            }
            None => self.retire.restore(acked, std::time::Instant::now()),
        }
        Ok(())
    }

    /// Awaits the running retirement, if any, and handles its end.
    pub(super) async fn await_retiring(&mut self) -> Result<(), PublishError> {
        if let Some(Retiring { task, acked }) = self.retiring.take() {
            let result = task.await;
            self.on_retired(acked, result)?;
        }
        Ok(())
    }

    /// End of the session: awaits the running retirement and retires what is still queued (unless the store is
    /// backing off: those rows stay in the outbox and are sent again, a duplicate, on the next connection).
    pub(super) async fn finish_retiring(&mut self) -> Result<(), PublishError> {
        self.await_retiring().await?;
        if self.retire.is_empty() || self.state.store.holding(std::time::Instant::now()) {
            return Ok(());
        }
        let batch = self.retire.take();
        self.retiring = Some(self.spawn_retiring(batch));
        self.await_retiring().await
    }
}

/// Resolves when the running retirement ends (never while none runs); cancel-safe, so it sits in the session's
/// `select!`.
pub(super) async fn retired(
    slot: &mut Option<Retiring>,
) -> (Vec<i64>, Result<RetireResult, tokio::task::JoinError>) {
    match slot {
        Some(retiring) => {
            let result = (&mut retiring.task).await;
            let acked = slot
                .take()
                .map(|retiring| retiring.acked)
                .unwrap_or_default();
            (acked, result)
        }
        None => std::future::pending().await,
    }
}
