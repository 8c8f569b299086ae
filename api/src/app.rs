//! Assembling and running the intake: the engine host, the router, the
//! streams (market-data feed, Redis link, workflow progress poller), the
//! listener with graceful shutdown, and (for `clearway up`) the workers.

use anyhow::{Context, Result};
use axum::Router;
use pipeline::{AccountId, Asset, Command};
use rust_decimal::Decimal;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use workers::config::{Services, default_markets};

use crate::auth::AuthConfig;
use crate::host::EngineHandle;
use crate::http::{AppState, Shared, router};
use crate::metrics::Metrics;
use crate::ratelimit::{RateConfig, RateLimiter};
use crate::stream::redis::RedisLink;
use crate::stream::{Hub, StreamConfig, feed, progress};

/// How long workers get to finish steps in flight on shutdown.
pub const GRACE: Duration = Duration::from_secs(10);

/// What the intake needs besides the services.
#[derive(Clone, Debug, Default)]
pub struct IntakeConfig {
    /// Token verification.
    pub auth: AuthConfig,
    /// Throttling.
    pub rate: RateConfig,
}

/// A built intake: the router and the tasks behind it.
#[derive(Debug)]
pub struct Intake {
    /// Serve this.
    pub router: Router,
    /// The engine task's handle.
    pub host: EngineHandle,
    /// Cancel to stop the stream tasks (feed, Redis, progress poller).
    pub streams: CancellationToken,
}

/// [`intake_with`] the streams configured by the environment
/// ([`StreamConfig::from_env`]: `CLEARWAY_REDIS_URL` or `REDIS_URL`). A
/// malformed Redis URL is logged and streaming stays in-process; use
/// [`intake_with`] to get it as an error instead.
pub fn intake(services: &Services, config: IntakeConfig) -> Intake {
    let streams = StreamConfig::from_env();
    let fallback = config.clone();
    intake_with(services, config, streams).unwrap_or_else(|e| {
        tracing::error!(error = %format!("{e:#}"), "Redis disabled");
        let without = StreamConfig {
            redis_url: None,
            ..StreamConfig::from_env()
        };
        intake_with(services, fallback, without).expect("no Redis URL, nothing to parse")
    })
}

/// Starts the engine host (it recovers in the background) and the stream
/// tasks, and builds the router. Fails only on a malformed Redis URL.
pub fn intake_with(
    services: &Services,
    config: IntakeConfig,
    streams: StreamConfig,
) -> Result<Intake> {
    let metrics = Arc::new(Metrics::default());
    let stop = CancellationToken::new();
    let hub = Arc::new(Hub::default());
    let redis = match &streams.redis_url {
        Some(url) => Some(RedisLink::start(
            url,
            hub.clone(),
            metrics.clone(),
            stop.clone(),
        )?),
        None => None,
    };
    // Only once nothing can fail: an engine host is the single writer.
    let host = EngineHandle::spawn(services, metrics.clone())?;
    tokio::spawn(feed::run(
        host.clone(),
        hub.clone(),
        redis.clone(),
        stop.clone(),
    ));
    tokio::spawn(progress::run(
        services.db.clone(),
        hub.clone(),
        streams.progress_every,
        stop.clone(),
    ));
    let state = AppState::new(Shared {
        host: host.clone(),
        db: services.db.clone(),
        metrics,
        markets: Arc::new(default_markets()),
        auth: Arc::new(config.auth),
        hub,
        redis,
    });
    let router = router(state, Arc::new(RateLimiter::new(config.rate)));
    Ok(Intake {
        router,
        host,
        streams: stop,
    })
}

/// A client must send a request's headers within this time of starting
/// them — or, on an idle keep-alive connection, of the previous answer —
/// or its connection is closed (slow or silent clients hold no socket
/// forever).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long requests in flight get to finish once `shutdown` is cancelled.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` (HTTP/1.1, with upgrades for WebSocket)
/// until `shutdown` is cancelled, then stops accepting and lets requests in
/// flight finish (up to [`DRAIN`]).
///
/// Not `axum::serve`: it sets no timer, so hyper's header read timeout is
/// off and a client that sends half a request line holds its socket forever.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
) -> Result<()> {
    use hyper_util::rt::{TokioIo, TokioTimer};
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    let connections = tokio_util::task::TaskTracker::new();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, say: wait rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        let service = hyper_util::service::TowerToHyperService::new(router.clone());
        let conn = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        let shutdown = shutdown.clone();
        connections.spawn(async move {
            let mut conn = std::pin::pin!(conn);
            tokio::select! {
                r = conn.as_mut() => return drop(r),
                () = shutdown.cancelled() => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    connections.close();
    if tokio::time::timeout(DRAIN, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("connections still open after {DRAIN:?}; no longer waiting for them");
    }
    Ok(())
}

/// Waits until the engine has recovered, or `timeout` passes.
pub async fn wait_ready(host: &EngineHandle, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    while !host.is_ready() {
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "the engine did not recover within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// The demo accounts `clearway up` funds on an empty journal.
pub const DEMO_ACCOUNTS: [u64; 2] = [1001, 1002];

/// Deposits demo funds (1,000,000 USD, 100 BTC, 1,000 ETH) into
/// [`DEMO_ACCOUNTS`] when the journal is empty, as ordinary journaled
/// commands. Returns whether it did.
pub async fn seed_demo_funds(host: &EngineHandle, db: &workers::db::Db) -> Result<bool> {
    if crate::read::workflow_count(db).await? > 0 {
        return Ok(false);
    }
    for account in DEMO_ACCOUNTS {
        for (asset, amount) in [("USD", 1_000_000), ("BTC", 100), ("ETH", 1_000)] {
            let cmd = Command::deposit(
                AccountId(account),
                Asset::parse(asset)?,
                Decimal::from(amount),
            );
            host.submit(cmd)
                .await
                .map_err(|e| anyhow::anyhow!("Failed to seed demo funds: {e}"))?;
        }
    }
    Ok(true)
}

/// Runs the intake (and the workers when `with_workers`) until `shutdown`,
/// with the streams configured by the environment.
pub async fn run(
    listener: TcpListener,
    services: Services,
    config: IntakeConfig,
    with_workers: bool,
    seed: bool,
    shutdown: CancellationToken,
) -> Result<()> {
    let streams = StreamConfig::from_env();
    run_with(
        listener,
        services,
        config,
        streams,
        with_workers,
        seed,
        shutdown,
    )
    .await
}

/// [`run`] with explicit stream settings.
pub async fn run_with(
    listener: TcpListener,
    services: Services,
    config: IntakeConfig,
    streams: StreamConfig,
    with_workers: bool,
    seed: bool,
    shutdown: CancellationToken,
) -> Result<()> {
    let Intake {
        router,
        host,
        streams,
    } = intake_with(&services, config, streams)?;
    let _stop_streams = streams.drop_guard();
    let workers = with_workers.then(|| {
        let (services, token) = (services.clone(), shutdown.clone());
        tokio::spawn(async move { workers::transport::run_workers(&services, token, GRACE).await })
    });
    // Seed before serving, so /readyz only answers once a first order can work.
    if seed {
        wait_ready(&host, Duration::from_secs(300)).await?;
        if seed_demo_funds(&host, &services.db).await? {
            tracing::info!(accounts = ?DEMO_ACCOUNTS, "seeded demo funds");
        }
    }
    let server = tokio::spawn(serve(listener, router, shutdown.clone()));
    let served = server.await.context("the HTTP server panicked")?;
    shutdown.cancel();
    if let Some(w) = workers {
        w.await.context("the workers panicked")??;
    }
    served
}
