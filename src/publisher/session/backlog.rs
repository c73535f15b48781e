//! Reading the backlog ahead: the next page of backlog rows is claimed by a task of its own on the store thread
//! while the buffered page is sent, so a drain never waits for the store between two pages (the store thread may
//! be busy with a retirement). At most one read runs; its rows join the backlog lane when it ends.

use tokio::task::JoinHandle;

use super::Session;
use crate::publisher::store_fault::StoreCall;
use crate::publisher::PublishError;
use crate::store::{OutboxRow, StoreError};

/// What a backlog read answers: the store call's own result, or the store thread's end.
pub(super) type ReadResult = anyhow::Result<Result<Vec<OutboxRow>, StoreError>>;

impl Session<'_, '_> {
    /// Starts reading the next backlog page when the lane asks for one and none is being read.
    pub(super) fn read_backlog_ahead(&mut self) {
        if self.backlog_read.is_some() {
            return;
        }
        let Some((after_seq, limit)) = self.lanes.backlog_query() else {
            return;
        };
        self.lanes.backlog_read_started();
        let store = self.shared.store.clone();
        self.backlog_read = Some(tokio::spawn(async move {
            store.call(move |store| store.claim(after_seq, limit)).await
        }));
    }

    /// Hands the rows of a finished backlog read to the lane; a refused read is asked for again after the
    /// store's backoff, and a stopped store thread ends the publisher.
    pub(super) fn on_backlog_read(
        &mut self,
        result: Result<ReadResult, tokio::task::JoinError>,
    ) -> Result<(), PublishError> {
        let result = result
            .map_err(|error| PublishError::StoreGone(anyhow::Error::new(error)))?
            .map_err(PublishError::StoreGone)?;
        match super::note_store_result(
            &mut self.state.store,
            self.shared.stats,
            StoreCall::Claim,
            result,
        ) {
            Some(rows) => self.lanes.accept_backlog(rows),
            None => self.lanes.backlog_read_failed(),
        }
        Ok(())
    }
}

/// Resolves when the running backlog read ends (never while none runs); cancel-safe, so it sits in the
/// session's `select!`.
pub(super) async fn backlog_read(
    slot: &mut Option<JoinHandle<ReadResult>>,
) -> Result<ReadResult, tokio::task::JoinError> {
    match slot {
        Some(task) => {
            let result = task.await;
            *slot = None;
            result
        }
        None => std::future::pending().await,
    }
}
