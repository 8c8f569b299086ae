//! Throttling: a token bucket per account and one global bucket. Tokens are
//! counted in millionths (integer arithmetic only), refilled by elapsed time.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::auth::Principal;
use crate::error::ApiError;

const UNIT: u128 = 1_000_000;

/// Limits in requests per second; burst is the bucket's capacity.
#[derive(Clone, Copy, Debug)]
pub struct RateConfig {
    /// Per-account refill rate (`CLEARWAY_RATE_PER_ACCOUNT`, default 100).
    pub per_account: u64,
    /// Per-account capacity (`CLEARWAY_RATE_BURST`, default 2 × rate).
    pub per_account_burst: u64,
    /// Global refill rate and capacity (`CLEARWAY_RATE_GLOBAL`, default 10 000).
    pub global: u64,
}

impl Default for RateConfig {
    fn default() -> Self {
        RateConfig {
            per_account: 100,
            per_account_burst: 200,
            global: 10_000,
        }
    }
}

impl RateConfig {
    /// Reads the `CLEARWAY_RATE_*` variables over the defaults.
    pub fn from_env() -> anyhow::Result<RateConfig> {
        let num = |n: &str| -> anyhow::Result<Option<u64>> {
            match std::env::var(n).ok().filter(|v| !v.is_empty()) {
                Some(v) => Ok(Some(v.parse().map_err(|_| {
                    anyhow::anyhow!("{n}={v:?} is not a positive integer")
                })?)),
                None => Ok(None),
            }
        };
        let per_account = num("CLEARWAY_RATE_PER_ACCOUNT")?.unwrap_or(100).max(1);
        Ok(RateConfig {
            per_account,
            per_account_burst: num("CLEARWAY_RATE_BURST")?
                .unwrap_or(per_account * 2)
                .max(1),
            global: num("CLEARWAY_RATE_GLOBAL")?.unwrap_or(10_000).max(1),
        })
    }
}

#[derive(Debug)]
struct Bucket {
    tokens: u128,
    at: Instant,
}

impl Bucket {
    /// Takes a token, or says how many microseconds until one is available.
    fn take(&mut self, rate: u64, cap: u64, now: Instant) -> Result<u64, u64> {
        let elapsed = now.saturating_duration_since(self.at).as_micros();
        let cap = u128::from(cap) * UNIT;
        self.tokens = (self.tokens + elapsed * u128::from(rate)).min(cap);
        self.at = now;
        if self.tokens >= UNIT {
            self.tokens -= UNIT;
            Ok((self.tokens / UNIT) as u64)
        } else {
            Err(((UNIT - self.tokens).div_ceil(u128::from(rate))) as u64)
        }
    }
}

/// The buckets.
#[derive(Debug)]
pub struct RateLimiter {
    /// The limits.
    config: RateConfig,
    /// One bucket per account seen.
    accounts: Mutex<HashMap<u64, Bucket>>,
    /// The global bucket.
    global: Mutex<Bucket>,
}

impl RateLimiter {
    /// Full buckets.
    pub fn new(config: RateConfig) -> RateLimiter {
        RateLimiter {
            config,
            accounts: Mutex::default(),
            global: Mutex::new(Bucket {
                tokens: u128::from(config.global) * UNIT,
                at: Instant::now(),
            }),
        }
    }

    /// Takes a token from the global and the account's bucket; `Ok(remaining)`
    /// or the error to answer.
    pub fn check(&self, account: u64) -> Result<u64, ApiError> {
        let c = self.config;
        let now = Instant::now();
        let limited = |us: u64, limit| ApiError::RateLimited {
            retry_after_s: us.div_ceil(1_000_000).max(1),
            limit,
        };
        let mut global = self.global.lock().unwrap_or_else(|p| p.into_inner());
        global
            .take(c.global, c.global, now)
            .map_err(|us| limited(us, c.global))?;
        drop(global);
        let mut accounts = self.accounts.lock().unwrap_or_else(|p| p.into_inner());
        let bucket = accounts.entry(account).or_insert_with(|| Bucket {
            tokens: u128::from(c.per_account_burst) * UNIT,
            at: now,
        });
        bucket
            .take(c.per_account, c.per_account_burst, now)
            .map_err(|us| limited(us, c.per_account_burst))
    }

    /// What an account's bucket holds when full: the `RateLimit-Limit`
    /// that `RateLimit-Remaining` counts down from.
    pub fn per_account_capacity(&self) -> u64 {
        self.config.per_account_burst
    }
}

/// Sets `RateLimit-*` and `X-RateLimit-*` (and `Retry-After` when limited):
/// `limit` is the bucket's capacity, `remaining` what is left in it (never
/// more than `limit`), `reset_s` when the next token comes.
pub fn set_headers(h: &mut HeaderMap, limit: u64, remaining: u64, reset_s: u64, limited: bool) {
    let pairs = [
        ("ratelimit-limit", limit),
        ("ratelimit-remaining", remaining),
        ("ratelimit-reset", reset_s),
        ("x-ratelimit-limit", limit),
        ("x-ratelimit-remaining", remaining),
        ("x-ratelimit-reset", reset_s),
    ];
    for (name, v) in pairs {
        h.insert(name, HeaderValue::from(v));
    }
    if limited {
        h.insert(axum::http::header::RETRY_AFTER, HeaderValue::from(reset_s));
    }
}

/// Middleware for `/v1` (after [`crate::auth::authenticate`]).
pub async fn throttle(
    State(limiter): State<Arc<RateLimiter>>,
    req: Request,
    next: Next,
) -> Response {
    let account = req
        .extensions()
        .get::<Principal>()
        .map_or(0, |p| p.account.0);
    let remaining = match limiter.check(account) {
        Ok(remaining) => remaining,
        Err(e) => return crate::http::unread::refuse(req, e).await,
    };
    let mut res = next.run(req).await;
    set_headers(
        res.headers_mut(),
        limiter.per_account_capacity(),
        remaining,
        1,
        false,
    );
    res
}
