//! The optional Redis link: publishes this instance's messages and book
//! snapshots, relays other instances' messages to the [`Hub`], and answers
//! health and cached-book reads.
//!
//! Redis is never on the order path: publishes go through a bounded queue to
//! one publisher task (pipelined), so a slow or dead Redis costs dropped
//! messages (counted in `clearway_redis_publish_failures_total`), never a
//! slower 202. An outage is logged once when it starts and once when it ends;
//! the [`ConnectionManager`] and the subscriber loop reconnect by themselves.

use anyhow::{Context, Result};
use futures::StreamExt;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Hub, Message};
use crate::metrics::Metrics;

/// Queued Redis writes before new ones are dropped.
const QUEUE: usize = 16_384;
/// Writes per pipeline.
const PIPELINE: usize = 512;
/// A Redis call that takes longer fails.
const TIMEOUT: Duration = Duration::from_secs(1);

/// The key of a market's cached book snapshot.
pub fn book_key(market: &str) -> String {
    format!("clearway:book:{market}")
}

/// What travels on a Redis channel.
#[derive(Debug, Serialize, Deserialize)]
pub struct Envelope {
    /// The publishing instance's id.
    pub origin: String,
    /// The message.
    #[serde(flatten)]
    pub message: Message,
}

/// One write for the publisher task.
#[derive(Debug)]
enum Write {
    /// `PUBLISH channel payload`.
    Publish(String, String),
    /// `SET key value`.
    Set(String, String),
}

/// Connection state, for logging an outage once.
const UNKNOWN: u8 = 0;
const UP: u8 = 1;
const DOWN: u8 = 2;

/// A handle on Redis.
#[derive(Debug)]
pub struct RedisLink {
    /// For new pub/sub connections.
    client: redis::Client,
    /// Commands; reconnects by itself.
    manager: ConnectionManager,
    /// Into the publisher task.
    queue: mpsc::Sender<Write>,
    /// UNKNOWN, UP or DOWN.
    state: AtomicU8,
    /// Failure counter.
    metrics: Arc<Metrics>,
    /// Ids and local delivery of relayed messages.
    hub: Arc<Hub>,
}

impl RedisLink {
    /// Starts the publisher and the subscriber tasks (until `stop`). Fails
    /// only on a malformed URL: an unreachable Redis is an outage, not an error.
    pub fn start(
        url: &str,
        hub: Arc<Hub>,
        metrics: Arc<Metrics>,
        stop: CancellationToken,
    ) -> Result<Arc<RedisLink>> {
        let client = redis::Client::open(url).context("Failed to parse the Redis URL")?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let manager = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .context("Failed to set up the Redis connection manager")?;
        let (queue, rx) = mpsc::channel(QUEUE);
        let link = Arc::new(RedisLink {
            client,
            manager,
            queue,
            state: AtomicU8::new(UNKNOWN),
            metrics,
            hub,
        });
        tokio::spawn(link.clone().publisher(rx, stop.clone()));
        tokio::spawn(link.clone().subscriber(stop));
        Ok(link)
    }

    fn up(&self) {
        if self.state.swap(UP, Ordering::AcqRel) == DOWN {
            tracing::info!("redis reachable again");
        }
    }

    fn down(&self, error: &dyn std::fmt::Display) {
        if self.state.swap(DOWN, Ordering::AcqRel) != DOWN {
            tracing::warn!(%error, "redis unreachable; streaming stays in-process until it is back");
        }
    }

    fn enqueue(&self, w: Write) {
        if self.queue.try_send(w).is_err() {
            self.metrics
                .redis_publish_failures
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Publishes `message` for the other instances.
    pub fn publish(&self, message: &Message) {
        let envelope = serde_json::json!({
            "origin": self.hub.instance,
            "channel": message.channel,
            "account": message.account,
            "data": message.data,
        });
        self.enqueue(Write::Publish(
            message.redis_channel(),
            envelope.to_string(),
        ));
    }

    /// Caches a market's book snapshot.
    pub fn set_book(&self, market: &str, snapshot: String) {
        self.enqueue(Write::Set(book_key(market), snapshot));
    }

    /// The cached snapshot of a market's book, if Redis answers and has one.
    pub async fn book(&self, market: &str) -> Option<String> {
        let mut m = self.manager.clone();
        let mut cmd = redis::cmd("GET");
        cmd.arg(book_key(market));
        let get = cmd.query_async(&mut m);
        match tokio::time::timeout(TIMEOUT, get).await {
            Ok(Ok(v)) => v,
            Ok(Err(e)) => {
                self.down(&e);
                None
            }
            Err(_) => None,
        }
    }

    /// Whether Redis answers a PING now.
    pub async fn ping(&self) -> bool {
        let mut m = self.manager.clone();
        let cmd = redis::cmd("PING");
        let ping = cmd.query_async::<String>(&mut m);
        matches!(tokio::time::timeout(TIMEOUT, ping).await, Ok(Ok(_)))
    }

    async fn publisher(self: Arc<Self>, mut rx: mpsc::Receiver<Write>, stop: CancellationToken) {
        let mut batch = Vec::with_capacity(PIPELINE);
        loop {
            let n = tokio::select! {
                n = rx.recv_many(&mut batch, PIPELINE) => n,
                _ = stop.cancelled() => return,
            };
            if n == 0 {
                return;
            }
            let mut pipe = redis::pipe();
            for w in batch.drain(..) {
                match w {
                    Write::Publish(ch, payload) => pipe.publish(ch, payload).ignore(),
                    Write::Set(key, value) => pipe.set(key, value).ignore(),
                };
            }
            let mut m = self.manager.clone();
            let sent = tokio::time::timeout(TIMEOUT, pipe.query_async::<()>(&mut m)).await;
            match sent {
                Ok(Ok(())) => self.up(),
                Ok(Err(e)) => self.failed(n, &e),
                Err(_) => self.failed(n, &"timed out"),
            }
        }
    }

    fn failed(&self, n: usize, error: &dyn std::fmt::Display) {
        self.metrics
            .redis_publish_failures
            .fetch_add(n as u64, Ordering::Relaxed);
        self.down(error);
    }

    /// Relays other instances' messages to this instance's sessions,
    /// resubscribing after every disconnect.
    async fn subscriber(self: Arc<Self>, stop: CancellationToken) {
        let mut delay = Duration::from_millis(100);
        while !stop.is_cancelled() {
            match self.relay(&stop).await {
                Ok(()) => delay = Duration::from_millis(100),
                Err(e) => self.down(&format!("{e:#}")),
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = stop.cancelled() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn relay(&self, stop: &CancellationToken) -> Result<()> {
        let connect = self.client.get_async_pubsub();
        let mut pubsub = tokio::time::timeout(TIMEOUT, connect)
            .await
            .context("timed out connecting")??;
        pubsub.psubscribe("clearway:md:*").await?;
        pubsub.psubscribe("clearway:orders:*").await?;
        self.up();
        let mut messages = pubsub.on_message();
        loop {
            let msg = tokio::select! {
                m = messages.next() => m,
                _ = stop.cancelled() => return Ok(()),
            };
            let Some(msg) = msg else {
                anyhow::bail!("the subscription connection closed");
            };
            match serde_json::from_slice::<Envelope>(msg.get_payload_bytes()) {
                Ok(e) if e.origin == self.hub.instance => {}
                Ok(e) => self.hub.deliver(e.message),
                Err(e) => {
                    tracing::warn!(channel = msg.get_channel_name(), error = %e, "malformed message on redis")
                }
            }
        }
    }
}
