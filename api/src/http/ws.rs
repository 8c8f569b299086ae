//! `GET /v1/ws`: the WebSocket stream of market data and own order updates.
//!
//! Authenticate with `Authorization: Bearer <token>` or, for browsers,
//! `?token=<token>`. Then send
//! `{"op": "subscribe", "channels": ["trades:BTC-USD", "depth:BTC-USD", "orders"]}`
//! (or `"op": "unsubscribe"`); the answer is `{"type": "subscribed",
//! "channels": [...]}` with every channel now subscribed, after which each
//! message arrives as `{"channel": "...", "data": {"type": ..., ...}}`.
//!
//! # Keeping a local order book (as Binance documents it)
//!
//! 1. Subscribe to `depth:<market>` and buffer the diffs that arrive.
//! 2. Get a snapshot: `GET /v1/markets/<market>/book?depth=500`; note its `sequence`.
//! 3. Drop buffered diffs whose `last_sequence <= sequence`.
//! 4. The first diff to apply must have `first_sequence <= sequence + 1 <=
//!    last_sequence`; if it does not, go back to 2.
//! 5. Apply each diff: every level carries the absolute quantity now at that
//!    price; 0 removes the level.
//! 6. Each next diff must have `first_sequence == previous last_sequence + 1`
//!    (sequence numbers are global to the engine, so gaps between markets'
//!    diffs are normal; a gap within one market's chain is not): if not, or on
//!    a `{"type": "lagged"}` notice, go back to 2.
//!
//! The snapshot holds at most 500 levels a side; levels beyond it appear as
//! diffs touch them.
//!
//! # Limits
//!
//! The server pings every 20 s and drops a client it has not heard from
//! (not even a pong) for 60 s. A client may send at most 20 `op` messages
//! per 10 s; more are answered `{"type": "error", "code": "rate_limited"}`
//! and not applied. A message over 16 KiB closes the session (1009), a
//! text message that is not UTF-8 too (1007); a
//! binary message gets `{"type": "error", "code": "text_only"}`. An account
//! may hold 16 sessions open per instance; the 17th upgrade is a 429.
//!
//! A session lasts as long as its token: once the token's `exp` (plus the
//! 60 s leeway) has passed, the server sends `{"type": "error", "code":
//! "token_expired"}` and closes (1008); connect again with a new token. A
//! token in both the `Authorization` header and `?token=` must be the same
//! (otherwise 400 `conflicting_credentials`).

use axum::extract::State;
use axum::extract::ws::{Message as Frame, WebSocket, WebSocketUpgrade};
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use futures::{SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::broadcast::error::RecvError;

use super::Access::OwnToken;
use super::{AppState, Route, route};
use crate::auth::Principal;
use crate::error::ApiError;
use crate::extract::Query;
use crate::stream::AccountWatch;

/// The routes.
pub(super) fn routes() -> Vec<Route> {
    vec![route(OwnToken, Method::GET, "/v1/ws", upgrade)]
}

/// `?token=` for clients that cannot set headers.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WsParams {
    token: Option<String>,
}

/// Authenticates, then upgrades to a WebSocket session.
#[tracing::instrument(skip_all)]
async fn upgrade(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<WsParams>,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let token = match (crate::auth::bearer_header(&headers)?, q.token.as_deref()) {
        (Some(h), Some(t)) if h != t.trim() => {
            return Err(ApiError::BadRequest {
                code: "conflicting_credentials",
                detail: "one token in the Authorization header and another in ?token=: send one"
                    .into(),
            });
        }
        (Some(h), _) => h,
        (None, Some(t)) => t,
        (None, None) => return Err(ApiError::Unauthorized("missing bearer token".into())),
    };
    let (principal, until) = s.auth.verify_until(token.trim()).await?;
    let ws = ws.map_err(|e| ApiError::BadRequest {
        code: "websocket_upgrade_expected",
        detail: e.to_string(),
    })?;
    let slot = s
        .hub
        .open_session(principal.account.0)
        .ok_or(ApiError::RateLimited {
            retry_after_s: 1,
            limit: crate::stream::SESSIONS_PER_ACCOUNT as u64,
        })?;
    Ok(ws
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            session(s, principal, until, socket).await;
            drop(slot);
        }))
}

/// A client's `op` message.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Op {
    op: String,
    channels: Vec<String>,
}

/// Counts a connected client while alive.
struct Connected(std::sync::Arc<crate::metrics::Metrics>);

impl Drop for Connected {
    fn drop(&mut self) {
        self.0.ws_clients.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Keep-alive: a ping this often; a client silent (not even a pong) for
/// [`IDLE_LIMIT`] is gone, and its session ends.
const PING_EVERY: Duration = Duration::from_secs(20);
/// See [`PING_EVERY`].
const IDLE_LIMIT: Duration = Duration::from_secs(60);
/// At most this many `op` messages per client per [`OPS_WINDOW`]; more get
/// a `rate_limited` error and are not applied.
const OPS_PER_WINDOW: u32 = 20;
/// See [`OPS_PER_WINDOW`].
const OPS_WINDOW: Duration = Duration::from_secs(10);
/// The largest message (and frame) a client may send.
const MAX_MESSAGE: usize = 16 * 1024;

/// When a session whose token holds until `until` (seconds since the
/// epoch, inclusive) must end.
fn session_deadline(until: u64) -> tokio::time::Instant {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let end = Duration::from_secs(until.saturating_add(1));
    tokio::time::Instant::now() + end.saturating_sub(now)
}

/// One connected client: subscriptions in, matching messages out, until
/// the client leaves or its token expires (`until`, seconds since the
/// epoch: its `exp` plus the leeway) — then it gets a `token_expired`
/// error and a close (1008), and reconnects with a new token.
async fn session(s: AppState, p: Principal, until: u64, socket: WebSocket) {
    s.metrics.ws_clients.fetch_add(1, Ordering::Relaxed);
    let _connected = Connected(s.metrics.clone());
    let mut rx = s.hub.subscribe();
    let (mut tx, mut incoming) = socket.split();
    let mut subs = BTreeSet::new();
    let mut watch: Option<AccountWatch> = None;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + PING_EVERY, PING_EVERY);
    let mut heard = tokio::time::Instant::now();
    let (mut window, mut ops) = (tokio::time::Instant::now(), 0u32);
    let expiry = tokio::time::sleep_until(session_deadline(until));
    tokio::pin!(expiry);
    loop {
        let reply = tokio::select! {
            () = &mut expiry => {
                let notice = json!({"type": "error", "code": "token_expired",
                    "detail": "the session's token has expired: connect again with a new one"});
                let close = axum::extract::ws::CloseFrame { code: 1008, reason: "token expired".into() };
                let _ = tx.send(Frame::Text(notice.to_string().into())).await;
                let _ = tx.send(Frame::Close(Some(close))).await;
                break;
            },
            frame = incoming.next() => {
                heard = tokio::time::Instant::now();
                match frame {
                    Some(Ok(frame @ (Frame::Text(_) | Frame::Binary(_)))) => {
                        if window.elapsed() >= OPS_WINDOW {
                            (window, ops) = (tokio::time::Instant::now(), 0);
                        }
                        ops += 1;
                        Some(if ops > OPS_PER_WINDOW {
                            json!({"type": "error", "code": "rate_limited",
                                   "detail": format!("at most {OPS_PER_WINDOW} ops per {}s", OPS_WINDOW.as_secs())})
                                .to_string()
                        } else if let Frame::Text(t) = frame {
                            apply(&s, &p, t.as_str(), &mut subs, &mut watch)
                        } else {
                            json!({"type": "error", "code": "text_only",
                                   "detail": "send ops as text messages"}).to_string()
                        })
                    }
                    // Answer a close with a close (RFC 6455 §5.5.1): the
                    // reply is queued by tungstenite and flushed here.
                    Some(Ok(Frame::Close(_))) => {
                        let _ = tx.close().await;
                        break;
                    }
                    Some(Err(e)) => {
                        // RFC 6455 §7.4.1: 1009 for tungstenite's capacity
                        // error ("Space limit exceeded"), 1007 for a text
                        // frame that is not UTF-8, 1002 for the rest.
                        let e = e.to_string();
                        let code = if e.contains("Space limit") {
                            1009
                        } else if e.contains("UTF-8") {
                            1007
                        } else {
                            1002
                        };
                        let close = axum::extract::ws::CloseFrame { code, reason: "".into() };
                        let _ = tx.send(Frame::Close(Some(close))).await;
                        break;
                    }
                    None => break,
                    Some(Ok(_)) => None,
                }
            },
            out = rx.recv() => match out {
                Ok(o) if subs.contains(&o.message.channel)
                    && o.message.account.is_none_or(|a| a == p.account.0) => Some(o.text.clone()),
                Ok(_) => None,
                Err(RecvError::Lagged(n)) => Some(json!({"type": "lagged", "missed": n}).to_string()),
                Err(RecvError::Closed) => break,
            },
            _ = ping.tick() => {
                if heard.elapsed() >= IDLE_LIMIT
                    || tx.send(Frame::Ping(Default::default())).await.is_err()
                {
                    break;
                }
                None
            }
        };
        if let Some(text) = reply
            && tx.send(Frame::Text(text.into())).await.is_err()
        {
            break;
        }
    }
}

/// Applies one `op`; the answer to send back.
fn apply(
    s: &AppState,
    p: &Principal,
    text: &str,
    subs: &mut BTreeSet<String>,
    watch: &mut Option<AccountWatch>,
) -> String {
    let error = |code: &str, detail: String| {
        json!({"type": "error", "code": code, "detail": detail}).to_string()
    };
    // serde reads a struct from an array too (`["subscribe", [...]]`):
    // only the documented object form is an op.
    let op: Op = match serde_json::from_str::<serde_json::Value>(text) {
        Ok(v) if v.is_object() => match serde_json::from_value(v) {
            Ok(op) => op,
            Err(e) => return error("invalid_op", e.to_string()),
        },
        Ok(_) => {
            return error(
                "invalid_op",
                r#"an op is a JSON object: {"op": "subscribe", "channels": ["orders"]}"#.into(),
            );
        }
        Err(e) => return error("invalid_op", e.to_string()),
    };
    if op.channels.is_empty() {
        return error("invalid_op", "no channels: name at least one".into());
    }
    if let Some(bad) = op.channels.iter().find(|c| !known(s, c)) {
        return error("unknown_channel", format!("no channel {bad:?}"));
    }
    if op.op == "subscribe"
        && op.channels.iter().any(|c| c == "orders")
        && !p.has(crate::auth::Scope::Trade)
    {
        return error(
            "forbidden",
            "the orders channel needs the trade scope".into(),
        );
    }
    match op.op.as_str() {
        "subscribe" => subs.extend(op.channels),
        "unsubscribe" => subs.retain(|c| !op.channels.contains(c)),
        other => return error("invalid_op", format!("unknown op {other:?}")),
    }
    match (subs.contains("orders"), watch.is_some()) {
        (true, false) => *watch = Some(s.hub.watch_account(p.account.0)),
        (false, true) => *watch = None,
        _ => {}
    }
    json!({"type": "subscribed", "channels": subs}).to_string()
}

/// `orders`, or `trades:`/`depth:` with a configured market.
fn known(s: &AppState, channel: &str) -> bool {
    match channel.split_once(':') {
        Some(("trades" | "depth", m)) => s.markets.iter().any(|k| k.id.as_str() == m),
        None => channel == "orders",
        _ => false,
    }
}
