//! Bearer-token authentication: JWTs verified against a JWKS (RS256/ES256,
//! `kid` lookup, Cognito-compatible) or, when explicitly enabled, a shared
//! HS256 secret for development. `exp`, `nbf`, `iss` and `aud` are checked.
//! A token that passed is remembered for a while ([`TokenCache`]), so a
//! client's next requests with it skip the signature check.

use anyhow::{Context, Result, bail};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use pipeline::AccountId;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

use crate::error::ApiError;

/// What a token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scope {
    /// Place and cancel own orders, read own balances.
    Trade,
    /// Deposits and withdrawals for any account.
    Operate,
    /// Read any order's trace.
    Audit,
}

impl Scope {
    /// Every scope Clearway knows.
    pub const ALL: [Scope; 3] = [Scope::Trade, Scope::Operate, Scope::Audit];

    /// The claim value.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Trade => "trade",
            Scope::Operate => "operate",
            Scope::Audit => "audit",
        }
    }

    fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// The known scopes a token carries (others in its claim mean nothing here).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Scopes(u8);

impl Scopes {
    /// The known scopes among the space-separated words of a `scope` claim.
    pub fn from_claim(claim: &str) -> Scopes {
        let words = || claim.split_whitespace();
        Scopes(
            Scope::ALL
                .iter()
                .filter(|s| words().any(|w| w == s.as_str()))
                .fold(0, |bits, s| bits | s.bit()),
        )
    }
}

/// The authenticated caller, put in the request's extensions by [`authenticate`].
#[derive(Clone, Copy, Debug)]
pub struct Principal {
    /// The account (`sub`).
    pub account: AccountId,
    /// The known scopes of the `scope` claim.
    pub scopes: Scopes,
}

impl Principal {
    /// Whether the token carries `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.0 & scope.bit() != 0
    }

    /// `Ok` when the token carries `scope`, else 403.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.has(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(scope.as_str()))
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Principal {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Principal, ApiError> {
        parts
            .extensions
            .get::<Principal>()
            .copied()
            .ok_or_else(|| ApiError::Unauthorized("missing bearer token".into()))
    }
}

/// The claims Clearway reads and writes.
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    /// The account id, as a decimal string.
    pub sub: String,
    /// Space-separated scopes.
    #[serde(default)]
    pub scope: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Expiry (seconds since the epoch).
    pub exp: u64,
    /// Not before (seconds since the epoch).
    pub nbf: u64,
    /// Issued at (seconds since the epoch).
    pub iat: u64,
}

#[derive(Debug, Deserialize)]
struct ReadClaims {
    sub: String,
    #[serde(default)]
    scope: String,
    exp: u64,
}

/// How tokens are verified.
#[derive(Clone, Default)]
pub struct AuthConfig {
    /// Accepted `iss`.
    pub issuer: String,
    /// Accepted `aud`.
    pub audience: String,
    /// The HS256 secret, only when explicitly enabled (development).
    pub hs256_secret: Option<Vec<u8>>,
    /// Public keys for RS256/ES256, looked up by `kid`.
    pub jwks: Option<Arc<Jwks>>,
    /// Tokens verified lately. Clones share it, so a clone must not change
    /// what is accepted (issuer, audience, keys): make a new config instead.
    pub cache: Arc<TokenCache>,
}

/// Tokens that passed [`AuthConfig::verify`] lately, so a client's next
/// requests with the same token skip the signature check and the claims'
/// parse (measured: ≈ 10% of the HTTP threads' time at 8,000 orders/s).
/// Keyed by the whole token, signature included: any other string is
/// verified afresh. An entry serves for at most [`TokenCache::TTL`] and
/// never once the token's `exp` (plus jsonwebtoken's leeway) has passed;
/// its `nbf`, `iss`, `aud` and signature held when it was verified and
/// cannot have changed since. Bounded: when [`TokenCache::CAPACITY`] tokens
/// are held, it starts again empty. Rejected tokens are never kept.
#[derive(Debug, Default)]
pub struct TokenCache(std::sync::Mutex<std::collections::HashMap<Box<str>, Verified>>);

/// A token's principal and how long it may be trusted without a check.
#[derive(Clone, Copy, Debug)]
struct Verified {
    principal: Principal,
    /// `exp` plus the leeway, in seconds since the epoch.
    expires: u64,
    /// When it was verified.
    at: std::time::Instant,
}

impl TokenCache {
    /// How long a verified token is trusted without a check.
    pub const TTL: std::time::Duration = std::time::Duration::from_secs(60);
    /// The most tokens held.
    pub const CAPACITY: usize = 16_384;

    fn get(&self, token: &str) -> Option<(Principal, u64)> {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let v = map.get(token)?;
        let fresh =
            v.at.elapsed() < Self::TTL && jsonwebtoken::get_current_timestamp() <= v.expires;
        fresh.then_some((v.principal, v.expires))
    }

    fn put(&self, token: &str, v: Verified) {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() >= Self::CAPACITY {
            map.clear();
        }
        map.insert(token.into(), v);
    }

    /// How many tokens are held.
    pub fn len(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// Whether no token is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A JWKS and where it came from. A token signed with a `kid` the set does
/// not hold makes it fetch the set again (an identity provider such as
/// Cognito rotates keys by publishing the new one first), at most once per
/// [`Jwks::min_refresh`], so unknown kids cannot make it hammer the source.
#[derive(Debug)]
pub struct Jwks {
    source: String,
    set: std::sync::RwLock<JwkSet>,
    last_fetch: tokio::sync::Mutex<std::time::Instant>,
    /// The least time between two fetches (default 30 s).
    pub min_refresh: std::time::Duration,
}

impl Jwks {
    /// Loads the set from `source`: a file path or an http(s) URL.
    pub async fn load(source: &str) -> Result<Jwks> {
        Ok(Jwks {
            source: source.to_string(),
            set: std::sync::RwLock::new(load_jwks(source).await?),
            last_fetch: tokio::sync::Mutex::new(std::time::Instant::now()),
            min_refresh: std::time::Duration::from_secs(30),
        })
    }

    fn find(&self, kid: &str) -> Option<jsonwebtoken::jwk::Jwk> {
        let set = self.set.read().unwrap_or_else(|e| e.into_inner());
        set.find(kid).cloned()
    }

    /// The key `kid`, fetching the set again when it is unknown (and the
    /// last fetch is older than `min_refresh`).
    async fn key(&self, kid: &str) -> Option<jsonwebtoken::jwk::Jwk> {
        if let Some(k) = self.find(kid) {
            return Some(k);
        }
        let mut last = self.last_fetch.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(k) = self.find(kid) {
            return Some(k);
        }
        if last.elapsed() < self.min_refresh {
            return None;
        }
        *last = std::time::Instant::now();
        match load_jwks(&self.source).await {
            Ok(set) => {
                tracing::info!(source = %self.source, keys = set.keys.len(), "JWKS fetched again for an unknown kid");
                *self.set.write().unwrap_or_else(|e| e.into_inner()) = set;
            }
            Err(e) => {
                tracing::warn!(error = %format!("{e:#}"), "JWKS fetch failed; keeping the keys we have")
            }
        }
        self.find(kid)
    }
}

impl std::fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthConfig")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("hs256", &self.hs256_secret.is_some())
            .field("jwks", &self.jwks.as_ref().map(|j| j.source.as_str()))
            .finish()
    }
}

/// The default issuer (`CLEARWAY_JWT_ISSUER`).
pub const DEFAULT_ISSUER: &str = "clearway-dev";
/// The default audience (`CLEARWAY_JWT_AUDIENCE`).
pub const DEFAULT_AUDIENCE: &str = "clearway";

impl AuthConfig {
    /// Reads `CLEARWAY_JWT_ISSUER`, `CLEARWAY_JWT_AUDIENCE`, `CLEARWAY_JWKS`
    /// (a file path or an http(s) URL) and `CLEARWAY_DEV_HS256_SECRET`.
    pub async fn from_env() -> Result<AuthConfig> {
        let var = |n: &str| std::env::var(n).ok().filter(|v| !v.is_empty());
        let jwks = match var("CLEARWAY_JWKS") {
            Some(src) => Some(Arc::new(Jwks::load(&src).await?)),
            None => None,
        };
        Ok(AuthConfig {
            issuer: var("CLEARWAY_JWT_ISSUER").unwrap_or_else(|| DEFAULT_ISSUER.into()),
            audience: var("CLEARWAY_JWT_AUDIENCE").unwrap_or_else(|| DEFAULT_AUDIENCE.into()),
            cache: Arc::default(),
            hs256_secret: var("CLEARWAY_DEV_HS256_SECRET").map(String::into_bytes),
            jwks,
        })
    }

    /// Verifies a token and returns its principal; a token verified
    /// lately is answered from the [`TokenCache`].
    pub async fn verify(&self, token: &str) -> Result<Principal, ApiError> {
        Ok(self.verify_until(token).await?.0)
    }

    /// [`AuthConfig::verify`], and until when the token holds: its `exp`
    /// plus the leeway, in seconds since the epoch (what a long-lived
    /// session, a WebSocket, must stop at).
    pub async fn verify_until(&self, token: &str) -> Result<(Principal, u64), ApiError> {
        if let Some(hit) = self.cache.get(token) {
            return Ok(hit);
        }
        let unauthorized = |m: &str| ApiError::Unauthorized(m.to_string());
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| unauthorized("malformed token"))?;
        let key = match header.alg {
            Algorithm::HS256 => match &self.hs256_secret {
                Some(s) => DecodingKey::from_secret(s),
                None => return Err(unauthorized("HS256 tokens are not accepted")),
            },
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwk = match (header.kid.as_deref(), &self.jwks) {
                    (Some(kid), Some(jwks)) => jwks.key(kid).await,
                    _ => None,
                }
                .ok_or_else(|| unauthorized("unknown signing key"))?;
                DecodingKey::from_jwk(&jwk).map_err(|_| unauthorized("unusable signing key"))?
            }
            _ => return Err(unauthorized("signing algorithm not allowed")),
        };
        let mut v = Validation::new(header.alg);
        v.set_issuer(&[&self.issuer]);
        v.set_audience(&[&self.audience]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.validate_nbf = true;
        let data = jsonwebtoken::decode::<ReadClaims>(token, &key, &v)
            .map_err(|e| unauthorized(&format!("invalid token: {e}")))?;
        let account = account_id(&data.claims.sub)
            .ok_or_else(|| unauthorized("sub is not an account id (digits, no leading zero)"))?;
        if is_reserved(account) {
            return Err(unauthorized(
                "sub names a reserved account (0 is the outside world, 1 the fee account)",
            ));
        }
        let principal = Principal {
            account: AccountId(account),
            scopes: Scopes::from_claim(&data.claims.scope),
        };
        let verified = Verified {
            principal,
            expires: data.claims.exp.saturating_add(v.leeway),
            at: std::time::Instant::now(),
        };
        self.cache.put(token, verified);
        Ok((principal, verified.expires))
    }
}

/// The largest account id: ids are stored as signed 64-bit integers.
pub const MAX_ACCOUNT: u64 = i64::MAX as u64;

/// An account id written canonically: decimal digits, no sign, no leading
/// zero — so `"01002"` and `"+1002"` never alias account 1002 — and at
/// most [`MAX_ACCOUNT`].
pub fn account_id(s: &str) -> Option<u64> {
    let canonical =
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) && (s == "0" || !s.starts_with('0'));
    // Parsed as i64, so an id above MAX_ACCOUNT is refused too.
    let id: i64 = s.parse().ok().filter(|_| canonical)?;
    Some(id as u64)
}

/// Accounts no client acts as and no operator funds directly: 0 stands for
/// the world outside the exchange, 1 collects the fees.
pub fn is_reserved(account: u64) -> bool {
    account == workers::steps::settle::EXTERNAL_ACCOUNT || account == workers::config::FEE_ACCOUNT
}

async fn load_jwks(src: &str) -> Result<JwkSet> {
    let text = if src.starts_with("http://") || src.starts_with("https://") {
        reqwest::get(src)
            .await
            .and_then(|r| r.error_for_status())
            .with_context(|| format!("Failed to fetch the JWKS at {src}"))?
            .text()
            .await
            .context("Failed to read the JWKS")?
    } else {
        std::fs::read_to_string(src)
            .with_context(|| format!("Failed to read the JWKS file {src}"))?
    };
    let set: JwkSet = serde_json::from_str(&text).context("Malformed JWKS")?;
    if set.keys.is_empty() {
        bail!("the JWKS at {src} has no keys");
    }
    Ok(set)
}

/// Middleware for `/v1`: verifies the bearer token and stores the [`Principal`].
pub async fn authenticate(
    State(auth): State<Arc<AuthConfig>>,
    mut req: Request,
    next: Next,
) -> Response {
    let verified = match bearer_header(req.headers()) {
        Ok(Some(token)) => auth.verify(token).await,
        Ok(None) => Err(ApiError::Unauthorized("missing bearer token".into())),
        Err(e) => Err(e),
    };
    match verified {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(e) => crate::http::unread::refuse(req, e).await,
    }
}

/// The bearer token of a request's `Authorization` header, if it has one;
/// two or more `Authorization` headers are a 400 (`conflicting_credentials`),
/// never a pick of one of them.
pub fn bearer_header(headers: &axum::http::HeaderMap) -> Result<Option<&str>, ApiError> {
    let mut values = headers.get_all(axum::http::header::AUTHORIZATION).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(ApiError::BadRequest {
            code: "conflicting_credentials",
            detail: "more than one Authorization header: send one".into(),
        });
    }
    Ok(first.and_then(|v| v.to_str().ok()).and_then(bearer))
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is
/// case-insensitive (RFC 9110 §11.1).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Mints an HS256 token (development: `clearway token`, tests).
pub fn mint_hs256(secret: &[u8], claims: &Claims) -> Result<String> {
    jsonwebtoken::encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .context("Failed to sign a token")
}

/// Claims for `account` with `scopes`, valid from now for `ttl_s` seconds.
pub fn dev_claims(
    account: u64,
    scopes: &[&str],
    ttl_s: u64,
    issuer: &str,
    audience: &str,
) -> Claims {
    let now = jsonwebtoken::get_current_timestamp();
    Claims {
        sub: account.to_string(),
        scope: scopes.join(" "),
        iss: issuer.into(),
        aud: audience.into(),
        exp: now + ttl_s,
        nbf: now,
        iat: now,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"a test secret of enough length";

    fn hs256() -> AuthConfig {
        AuthConfig {
            issuer: DEFAULT_ISSUER.into(),
            audience: DEFAULT_AUDIENCE.into(),
            hs256_secret: Some(SECRET.to_vec()),
            ..AuthConfig::default()
        }
    }

    fn token(account: u64, scopes: &[&str], ttl_s: u64) -> String {
        let claims = dev_claims(account, scopes, ttl_s, DEFAULT_ISSUER, DEFAULT_AUDIENCE);
        mint_hs256(SECRET, &claims).unwrap()
    }

    #[test]
    fn scopes_are_the_known_words_of_the_claim() {
        let s = Scopes::from_claim("  audit trade  offline_access tradex");
        let p = Principal {
            account: AccountId(7),
            scopes: s,
        };
        assert!(p.has(Scope::Trade));
        assert!(p.has(Scope::Audit));
        assert!(!p.has(Scope::Operate));
        assert_eq!(Scopes::from_claim("tradex operates"), Scopes::default());
    }

    #[tokio::test]
    async fn a_verified_token_is_answered_from_the_cache_and_a_rejected_one_is_not_kept() {
        let auth = hs256();
        let good = token(1002, &["trade"], 600);
        let p = auth.verify(&good).await.unwrap();
        assert_eq!((p.account, p.has(Scope::Trade)), (AccountId(1002), true));
        assert_eq!(auth.cache.len(), 1);
        let again = auth.verify(&good).await.unwrap();
        assert_eq!((again.account, again.scopes), (p.account, p.scopes));
        assert_eq!(auth.cache.len(), 1);

        // One byte of the signature changed: another string, checked afresh.
        let mut forged = good.clone().into_bytes();
        let last = forged.len() - 2;
        forged[last] = if forged[last] == b'A' { b'B' } else { b'A' };
        let forged = String::from_utf8(forged).unwrap();
        assert!(auth.verify(&forged).await.is_err());
        let other_secret = AuthConfig {
            hs256_secret: Some(b"another secret, another issuer".to_vec()),
            ..hs256()
        };
        assert!(other_secret.verify(&good).await.is_err());
        assert_eq!(auth.cache.len(), 1);
        assert!(other_secret.cache.is_empty());
    }

    #[test]
    fn an_entry_past_its_expiry_or_its_ttl_is_not_used() {
        let cache = TokenCache::default();
        let principal = Principal {
            account: AccountId(1002),
            scopes: Scopes::from_claim("trade"),
        };
        let now = jsonwebtoken::get_current_timestamp();
        let fresh = Verified {
            principal,
            expires: now + 600,
            at: std::time::Instant::now(),
        };
        cache.put("fresh", fresh);
        let expired = Verified {
            expires: now - 1,
            ..fresh
        };
        cache.put("expired", expired);
        let Some(long_ago) = std::time::Instant::now().checked_sub(TokenCache::TTL * 2) else {
            return; // a clock this close to its origin cannot be set back
        };
        let stale = Verified {
            at: long_ago,
            ..fresh
        };
        cache.put("stale", stale);
        assert_eq!(
            cache.get("fresh").map(|(p, _)| p.account),
            Some(AccountId(1002))
        );
        assert!(cache.get("expired").is_none());
        assert!(cache.get("stale").is_none());
        assert!(cache.get("unknown").is_none());
    }

    #[test]
    fn a_full_cache_starts_again_empty() {
        let cache = TokenCache::default();
        let v = Verified {
            principal: Principal {
                account: AccountId(1002),
                scopes: Scopes::default(),
            },
            expires: u64::MAX,
            at: std::time::Instant::now(),
        };
        for i in 0..TokenCache::CAPACITY {
            cache.put(&i.to_string(), v);
        }
        assert_eq!(cache.len(), TokenCache::CAPACITY);
        cache.put("one more", v);
        assert_eq!(cache.len(), 1);
        assert!(cache.get("one more").is_some());
    }
}
