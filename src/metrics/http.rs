//! The `[http] listen` endpoint: `GET /metrics` (Prometheus text) and `GET /healthz` (200 `ok`, or 503 with a
//! short reason). HTTP/1 only, a few connections at a time, each with a header deadline, so a slow or
//! forgotten client cannot hold the agent's resources. Nothing here can change the agent's state.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::SharedMetrics;
use crate::clock::SharedClock;
use crate::liveness::Liveness;
use crate::store::StoreHandle;

/// Connections served at once; more wait in the kernel's accept queue.
const MAX_CONNECTIONS: usize = 8;
/// A client must send its request headers within this time.
const HEADER_DEADLINE: Duration = Duration::from_secs(5);
/// How long a scrape waits for the store before it answers without fresh store figures.
const STORE_DEADLINE: Duration = Duration::from_secs(2);
/// The content type of the OpenMetrics-compatible text format prometheus-client writes.
const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `Ok` while the agent is healthy, or the short reason why not.
pub type HealthVerdict = Result<(), String>;

/// Decides `/healthz`; called once per request.
pub type HealthCheck = Arc<dyn Fn() -> HealthVerdict + Send + Sync>;

/// What every request needs.
struct State {
    metrics: SharedMetrics,
    store: StoreHandle,
    health: HealthCheck,
    clock: SharedClock,
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    metrics: SharedMetrics,
    store: StoreHandle,
    health: HealthCheck,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let state = Arc::new(State {
        metrics,
        store,
        health,
        clock,
    });
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut accept_failing = false;
    loop {
        let permit = tokio::select! {
            () = shutdown.cancelled() => return,
            permit = slots.clone().acquire_owned() => permit,
        };
        let Ok(permit) = permit else {
            return;
        };
        let stream = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let stream = match stream {
            Ok((stream, _peer)) => {
                accept_failing = false;
                stream
            }
            Err(error) => {
                if !accept_failing {
                    tracing::warn!(%error, "The metrics endpoint cannot accept connections; retrying.");
                    accept_failing = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let state = state.clone();
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(respond(&state, &request).await) }
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_DEADLINE)
                .keep_alive(false)
                .serve_connection(TokioIo::new(stream), service);
            tokio::select! {
                () = shutdown.cancelled() => {}
                result = connection => {
                    if let Err(error) = result {
                        tracing::debug!(%error, "Metrics connection ended with an error.");
                    }
                }
            }
            drop(permit);
        });
    }
}

async fn respond(state: &State, request: &Request<Incoming>) -> Response<Full<Bytes>> {
    if request.method() != Method::GET && request.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n".to_owned());
    }
    match request.uri().path() {
        "/metrics" => {
            let now = state.clock.utc();
            let refreshed =
                tokio::time::timeout(STORE_DEADLINE, state.metrics.refresh(&state.store, now))
                    .await;
            if !matches!(refreshed, Ok(Ok(()))) {
                tracing::debug!(
                    "The store did not answer a scrape; its figures are the previous ones."
                );
            }
            let mut response = text(StatusCode::OK, state.metrics.encode());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(METRICS_CONTENT_TYPE));
            response
        }
        "/healthz" => match (state.health)() {
            Ok(()) => text(StatusCode::OK, "ok\n".to_owned()),
            Err(reason) => text(StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")),
        },
        _ => text(
            StatusCode::NOT_FOUND,
            "not found: try /metrics or /healthz\n".to_owned(),
        ),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// `/healthz` from the progress board: unhealthy while a poll loop or the processor has missed its promised
/// beat (named), or while the latest store commit failed.
pub fn liveness_check(liveness: Liveness, clock: SharedClock) -> HealthCheck {
    Arc::new(move || {
        if let Some(stall) = liveness.stalled(clock.now().mono) {
            return Err(format!("stalled: {stall}"));
        }
        if !liveness.store_ok() {
            return Err("store: the latest commit failed".to_owned());
        }
        Ok(())
    })
}

/// Binds `[http] listen` (if configured) and serves on it until `shutdown`. A non-loopback address is logged
/// as exposed; an address that cannot be bound is logged and the agent runs without the endpoint, since
/// collecting data matters more than showing figures.
pub async fn spawn_endpoint(
    config: &crate::config::Config,
    metrics: SharedMetrics,
    store: StoreHandle,
    health: HealthCheck,
    clock: SharedClock,
    shutdown: CancellationToken,
) -> Option<tokio::task::JoinHandle<()>> {
    let address = config.http.listen?;
    if !address.ip().is_loopback() {
        tracing::warn!(%address, "The metrics endpoint is exposed beyond this host (http.listen is not a loopback address).");
    }
    match TcpListener::bind(address).await {
        Ok(listener) => {
            tracing::info!(%address, "Serving /metrics and /healthz.");
            Some(tokio::spawn(serve(
                listener, metrics, store, health, clock, shutdown,
            )))
        }
        Err(error) => {
            tracing::error!(%address, %error, "Cannot listen for /metrics and /healthz; running without them.");
            None
        }
    }
}
