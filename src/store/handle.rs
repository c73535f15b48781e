//! [`StoreHandle`]: async access to the [`Store`] owned by one dedicated OS thread, so SQLite calls (and their
//! fsyncs) never run on a tokio worker. Requests travel over a bounded channel and answer on a oneshot.

use anyhow::Context as _;
use tokio::sync::{mpsc, oneshot, watch};

use super::Store;

/// Requests that may wait for the store thread before `call` itself waits (backpressure, invariant 7).
const REQUEST_QUEUE_CAPACITY: usize = 64;

type Request = Box<dyn FnOnce(&mut Store) + Send>;

/// Cloneable async front of the store thread. The thread, and with it the SQLite connection, ends once every
/// clone has been dropped or closed.
#[derive(Debug, Clone)]
pub struct StoreHandle {
    request_tx: mpsc::Sender<Request>,
    /// Closed by the store thread when it has dropped the [`Store`]; lets [`StoreHandle::close`] wait for it.
    stopped_rx: watch::Receiver<()>,
}

impl StoreHandle {
    /// Moves `store` onto a new thread named `store` and returns the first handle to it.
    pub fn spawn(store: Store) -> StoreHandle {
        let (request_tx, request_rx) = mpsc::channel(REQUEST_QUEUE_CAPACITY);
        let (stopped_tx, stopped_rx) = watch::channel(());
        std::thread::Builder::new()
            .name("store".to_owned())
            .spawn(move || serve(store, request_rx, stopped_tx))
            .expect(
                "the OS must let us start the store thread; without it nothing can be persisted",
            );
        StoreHandle {
            request_tx,
            stopped_rx,
        }
    }

    /// Runs `f` on the store thread and returns its result; requests run one at a time in arrival order.
    pub async fn call<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Store) -> R + Send + 'static,
    ) -> anyhow::Result<R> {
        let (reply_tx, reply_rx) = oneshot::channel();
        let request: Request = Box::new(move |store| {
            // The caller may have given up (its future was dropped); the result then has nobody to go to.
            let _ = reply_tx.send(f(store));
        });
        self.request_tx
            .send(request)
            .await
            .map_err(|_| anyhow::anyhow!("the store thread has stopped"))?;
        reply_rx
            .await
            .context("the store thread stopped before answering")
    }

    /// Drops this handle and waits until the store thread has closed the database. The wait ends only when
    /// every other clone is gone too, so call it from the last owner (e.g. the supervisor after its tasks ended).
    pub async fn close(self) {
        let StoreHandle {
            request_tx,
            mut stopped_rx,
        } = self;
        drop(request_tx);
        // `changed` fails once the thread has dropped its sender, i.e. after the Store was dropped.
        while stopped_rx.changed().await.is_ok() {}
    }
}

/// Body of the store thread: serve requests until every handle is gone, then close the connection.
fn serve(mut store: Store, mut request_rx: mpsc::Receiver<Request>, stopped_tx: watch::Sender<()>) {
    while let Some(request) = request_rx.blocking_recv() {
        request(&mut store);
    }
    let path = store.path().to_path_buf();
    drop(store);
    tracing::debug!(path = %path.display(), "Store closed.");
    drop(stopped_tx);
}
