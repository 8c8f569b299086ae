//! Streams to WebSocket clients: market data (trades and depth diffs per
//! market) and each account's order updates and workflow progress.
//!
//! # Layout
//!
//! - [`Hub`]: the in-process fan-out every WebSocket session listens to;
//! - [`feed`]: turns the engine host's durable commits into messages, hands
//!   them to the hub and to Redis, and caches book snapshots in Redis;
//! - [`redis`]: the optional Redis link — publisher, pub/sub relay from other
//!   intake instances (deduplicated by instance id), book cache, health;
//! - [`progress`]: polls the `workflows` table and reports each completed step.
//!
//! # Channels
//!
//! | client channel | Redis channel | what |
//! |---|---|---|
//! | `trades:<market>` | `clearway:md:<market>` | every trade, with its sequence number |
//! | `depth:<market>` | `clearway:md:<market>` | depth diffs ([`crate::host::DepthDiff`]) |
//! | `orders` | `clearway:orders:<account>` | own order updates (accepted, fill, replaced, closed) |
//! | `orders` | — (each instance polls the database) | own workflow progress |
//!
//! Workflow progress is not relayed through Redis: every instance reads the
//! same `workflows` table for the accounts of its own clients, so a relay
//! would only deliver each step twice.

pub mod feed;
pub mod progress;
pub mod redis;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::broadcast;

/// How many messages a slow WebSocket session may lag before it misses some.
pub const HUB_BUFFER: usize = 8192;

/// One message for WebSocket clients.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Message {
    /// The client channel: `trades:<market>`, `depth:<market>` or `orders`.
    pub channel: String,
    /// For `orders`: the account it belongs to (only its owner sees it).
    pub account: Option<u64>,
    /// The payload (its `type` says what it is).
    pub data: Value,
    /// For a maker's fill: the workflow the progress poller follows for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow: Option<Follow>,
}

/// Another account's workflow whose progress an `orders` subscriber gets
/// too: the taker's workflow persists and settles the fills of the resting
/// (maker) orders it took.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Follow {
    /// The workflow (the taker's command's).
    pub workflow_id: u64,
    /// The subscriber's order it filled.
    pub order_id: u64,
}

/// A [`Message`] with its wire text, serialized once for every client.
#[derive(Debug)]
pub struct Outbound {
    /// The message.
    pub message: Message,
    /// `{"channel": …, "data": …}` as sent on the socket.
    pub text: String,
}

impl Message {
    /// A market-data message.
    pub fn market(channel: String, data: Value) -> Message {
        Message {
            channel,
            account: None,
            data,
            follow: None,
        }
    }

    /// An `orders` message for `account`.
    pub fn orders(account: u64, data: Value) -> Message {
        Message {
            channel: "orders".into(),
            account: Some(account),
            data,
            follow: None,
        }
    }

    /// The message, with a workflow for the progress poller to follow for
    /// its account.
    pub fn following(self, follow: Follow) -> Message {
        Message {
            follow: Some(follow),
            ..self
        }
    }

    /// The Redis channel it travels on.
    pub fn redis_channel(&self) -> String {
        match (self.account, self.channel.split_once(':')) {
            (Some(a), _) => format!("clearway:orders:{a}"),
            (None, Some((_, market))) => format!("clearway:md:{market}"),
            (None, None) => format!("clearway:md:{}", self.channel),
        }
    }

    fn into_outbound(self) -> Outbound {
        let text = serde_json::json!({"channel": self.channel, "data": self.data}).to_string();
        Outbound {
            message: self,
            text,
        }
    }
}

/// Settings of the streams.
#[derive(Clone, Debug)]
pub struct StreamConfig {
    /// `CLEARWAY_REDIS_URL` or `REDIS_URL`; `None` keeps everything in-process.
    pub redis_url: Option<String>,
    /// How often workflow progress is polled.
    pub progress_every: Duration,
}

impl Default for StreamConfig {
    fn default() -> StreamConfig {
        StreamConfig {
            redis_url: None,
            progress_every: Duration::from_millis(200),
        }
    }
}

impl StreamConfig {
    /// Reads `CLEARWAY_REDIS_URL`, else `REDIS_URL`.
    pub fn from_env() -> StreamConfig {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        StreamConfig {
            redis_url: var("CLEARWAY_REDIS_URL").or_else(|| var("REDIS_URL")),
            ..StreamConfig::default()
        }
    }
}

/// Locks `m`, whatever a panicking holder left in it (counts and lists
/// stay usable).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The most WebSocket sessions one account may hold open on one instance.
pub const SESSIONS_PER_ACCOUNT: usize = 16;

/// One open session of an account; see [`Hub::open_session`].
#[derive(Debug)]
pub struct SessionSlot {
    hub: Arc<Hub>,
    account: u64,
}

impl Drop for SessionSlot {
    fn drop(&mut self) {
        let mut m = lock(&self.hub.sessions);
        if let Some(n) = m.get_mut(&self.account) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.account);
            }
        }
    }
}

/// The in-process fan-out, and who listens to `orders`.
#[derive(Debug)]
pub struct Hub {
    /// Every message for this instance's clients.
    tx: broadcast::Sender<Arc<Outbound>>,
    /// Accounts with an `orders` subscription here → (sessions, subscribed
    /// since, µs): the progress poller reads only their workflows.
    accounts: Mutex<HashMap<u64, (usize, i64)>>,
    /// Sessions open per account (see [`Hub::open_session`]).
    sessions: Mutex<HashMap<u64, usize>>,
    /// Workflows of other accounts delivered for a watched account since
    /// the progress poller last took them.
    follows: Mutex<Vec<(u64, Follow)>>,
    /// This instance's id: messages it published come back from Redis with it.
    pub instance: String,
}

impl Default for Hub {
    fn default() -> Hub {
        Hub {
            tx: broadcast::channel(HUB_BUFFER).0,
            accounts: Mutex::default(),
            sessions: Mutex::default(),
            follows: Mutex::default(),
            instance: uuid::Uuid::new_v4().to_string(),
        }
    }
}

impl Hub {
    /// Delivers `message` to this instance's sessions.
    pub fn deliver(&self, message: Message) {
        if let (Some(account), Some(follow)) = (message.account, message.follow)
            && self.is_watched(account)
        {
            lock(&self.follows).push((account, follow));
        }
        let _ = self.tx.send(Arc::new(message.into_outbound()));
    }

    /// Whether `account` has an `orders` subscriber here.
    fn is_watched(&self, account: u64) -> bool {
        lock(&self.accounts).contains_key(&account)
    }

    /// The workflows to follow for watched accounts that arrived since the
    /// last call, as (account, follow).
    pub fn take_follows(&self) -> Vec<(u64, Follow)> {
        std::mem::take(&mut *lock(&self.follows))
    }

    /// Whether any session of this instance listens.
    pub fn has_sessions(&self) -> bool {
        self.tx.receiver_count() > 0
    }

    /// Every message from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Outbound>> {
        self.tx.subscribe()
    }

    /// Counts a WebSocket session of `account` until the guard drops; `None`
    /// when the account already has [`SESSIONS_PER_ACCOUNT`] open here.
    pub fn open_session(self: &Arc<Hub>, account: u64) -> Option<SessionSlot> {
        let mut m = lock(&self.sessions);
        let n = m.entry(account).or_default();
        if *n >= SESSIONS_PER_ACCOUNT {
            return None;
        }
        *n += 1;
        Some(SessionSlot {
            hub: self.clone(),
            account,
        })
    }

    /// Registers an `orders` subscriber of `account` until the guard drops.
    pub fn watch_account(self: &Arc<Hub>, account: u64) -> AccountWatch {
        let now = workers::runtime::now_us();
        let mut m = lock(&self.accounts);
        let e = m.entry(account).or_insert((0, now));
        e.0 += 1;
        AccountWatch {
            hub: self.clone(),
            account,
        }
    }

    /// The watched accounts with the time since when they are watched.
    pub fn watched(&self) -> Vec<(u64, i64)> {
        let m = lock(&self.accounts);
        m.iter().map(|(a, (_, since))| (*a, *since)).collect()
    }
}

/// Unregisters an `orders` subscriber when dropped.
#[derive(Debug)]
pub struct AccountWatch {
    /// The hub.
    hub: Arc<Hub>,
    /// The account watched.
    account: u64,
}

impl Drop for AccountWatch {
    fn drop(&mut self) {
        let mut m = lock(&self.hub.accounts);
        if let Some(e) = m.get_mut(&self.account) {
            e.0 -= 1;
            if e.0 == 0 {
                m.remove(&self.account);
            }
        }
    }
}
