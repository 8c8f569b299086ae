use crate::helpers::*;
use api::auth::{AuthConfig, Claims, Jwks, mint_hs256};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

#[tokio::test]
async fn requests_without_a_valid_token_are_401() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/v1/balances"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers().get("www-authenticate").unwrap(), "Bearer");
    assert_problem(res, 401, "unauthorized").await;

    let mut expired = claims(SELLER, &["trade"]);
    expired.exp -= 7200;
    expired.nbf -= 7200;
    let mut wrong_aud = claims(SELLER, &["trade"]);
    wrong_aud.aud = "someone-else".into();
    let mut wrong_iss = claims(SELLER, &["trade"]);
    wrong_iss.iss = "evil".into();
    let forged = mint_hs256(b"another-secret", &claims(SELLER, &["trade"])).unwrap();
    for bad in [
        mint_hs256(SECRET, &expired).unwrap(),
        mint_hs256(SECRET, &wrong_aud).unwrap(),
        mint_hs256(SECRET, &wrong_iss).unwrap(),
        forged,
        "not.a.jwt".into(),
    ] {
        let res = app
            .client
            .get(app.url("/v1/balances"))
            .bearer_auth(bad)
            .send()
            .await
            .unwrap();
        assert_problem(res, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn two_authorization_headers_are_a_400_not_a_pick_of_one() {
    let app = spawn_app().await;
    let res = app
        .client
        .get(app.url("/v1/balances"))
        .header(
            "authorization",
            format!("Bearer {}", token(SELLER, &["trade"])),
        )
        .header(
            "authorization",
            format!("Bearer {}", token(BUYER, &["trade"])),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "conflicting_credentials").await;
    // One header is as before.
    let res = app.get(SELLER, "/v1/balances").send().await.unwrap();
    assert_eq!(res.status(), 200);
}

#[tokio::test]
async fn probes_need_no_token() {
    let app = spawn_app().await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("clearway_engine_commits_total"),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/readyz\""), "{metrics}");
}

/// The value of the series `name` (labels included) in `metrics`.
fn series(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

#[tokio::test]
async fn group_commits_and_requests_are_timed_in_histograms() {
    let app = spawn_app().await;
    for price in ["50000", "50001"] {
        assert_eq!(
            app.place(SELLER, limit_sell(price, "0.1")).await.status(),
            202
        );
    }
    let m = app.metrics().await;
    let commits = series(&m, "clearway_engine_commit_seconds_count");
    // Setup deposits are commits too; the two orders are at least two more.
    assert!(commits >= 2, "{m}");
    assert_eq!(
        series(&m, "clearway_engine_commit_seconds_bucket{le=\"+Inf\"}"),
        commits
    );
    let orders = "clearway_http_request_seconds_bucket{route=\"/v1/orders\",le=";
    let buckets: Vec<u64> = m
        .lines()
        .filter_map(|l| l.strip_prefix(orders)?.split_once(' ')?.1.parse().ok())
        .collect();
    assert_eq!(buckets.len(), 13, "12 bounds and +Inf: {m}");
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "cumulative: {m}");
    assert_eq!(buckets.last(), Some(&2), "{m}");
    assert_eq!(
        series(
            &m,
            "clearway_http_request_seconds_count{route=\"/v1/orders\"}"
        ),
        2
    );
}

/// Test-only keys (see `tests/fixtures/README.md`).
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");
const RSA_KID: &str = "clearway-test-rsa-1";
const EC_KID: &str = "clearway-test-ec-1";

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/{name}")).expect("a fixture")
}

/// Auth by `jwks` alone: HS256 disabled.
fn jwks_only(jwks: Jwks) -> AuthConfig {
    AuthConfig {
        issuer: api::auth::DEFAULT_ISSUER.into(),
        audience: api::auth::DEFAULT_AUDIENCE.into(),
        hs256_secret: None,
        jwks: Some(std::sync::Arc::new(jwks)),
        cache: Default::default(),
    }
}

/// A token for `claims`, signed with `alg` by `key`, announcing `kid`.
fn sign(alg: Algorithm, kid: Option<&str>, key: &EncodingKey, claims: &Claims) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).expect("a token")
}

#[tokio::test]
async fn an_rs256_token_from_a_jwks_is_accepted_and_a_token_signed_by_another_key_is_not() {
    // The JWKS file as `CLEARWAY_JWKS` would load it; HS256 is disabled.
    let jwks = Jwks::load(&format!("{FIXTURES}/jwks.json"))
        .await
        .expect("a JWKS");
    let app = spawn_app_with_auth(jwks_only(jwks)).await;
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa_a.pem")).expect("the RSA key");
    let other_rsa = EncodingKey::from_rsa_pem(&fixture("rsa_b.pem")).expect("another RSA key");
    let ec = EncodingKey::from_ec_pem(&fixture("ec_a.pem")).expect("the EC key");
    let good = claims(SELLER, &["trade"]);

    let balances = |token: String| {
        app.client
            .get(app.url("/v1/balances"))
            .bearer_auth(token)
            .send()
    };
    for (what, token) in [
        ("RS256", sign(Algorithm::RS256, Some(RSA_KID), &rsa, &good)),
        ("ES256", sign(Algorithm::ES256, Some(EC_KID), &ec, &good)),
    ] {
        let res = balances(token.clone()).await.unwrap();
        assert_eq!(res.status(), 200, "{what}");
        let res = app
            .client
            .post(app.url("/v1/orders"))
            .bearer_auth(token)
            .json(&limit_sell("90000", "0.01"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "{what}");
    }

    let mut expired = claims(SELLER, &["trade"]);
    expired.exp -= 7200;
    expired.nbf -= 7200;
    let mut wrong_aud = claims(SELLER, &["trade"]);
    wrong_aud.aud = "someone-else".into();
    // `alg: none`: the header `{"alg":"none","typ":"JWT"}`, a good
    // token's claims, no signature.
    let good_rs256 = sign(Algorithm::RS256, Some(RSA_KID), &rsa, &good);
    let payload = good_rs256.split('.').nth(1).expect("a payload");
    let unsigned = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    for (what, bad) in [
        (
            "another key, same kid",
            sign(Algorithm::RS256, Some(RSA_KID), &other_rsa, &good),
        ),
        (
            "an unknown kid",
            sign(Algorithm::RS256, Some("no-such-key"), &rsa, &good),
        ),
        ("no kid", sign(Algorithm::RS256, None, &rsa, &good)),
        (
            "the RSA kid on an ES256 token",
            sign(Algorithm::ES256, Some(RSA_KID), &ec, &good),
        ),
        (
            "expired",
            sign(Algorithm::RS256, Some(RSA_KID), &rsa, &expired),
        ),
        (
            "wrong audience",
            sign(Algorithm::RS256, Some(RSA_KID), &rsa, &wrong_aud),
        ),
        ("HS256 while disabled", mint_hs256(SECRET, &good).unwrap()),
        ("alg none", unsigned),
    ] {
        let res = balances(bad).await.unwrap();
        assert_eq!(res.status(), 401, "{what}");
        assert_problem(res, 401, "unauthorized").await;
    }
}

#[tokio::test]
async fn a_key_published_after_start_is_fetched_when_a_token_names_it() {
    // The identity provider first publishes only the EC key; the RSA key
    // appears later (a rotation), while Clearway runs.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    let mut set: JwkSet = serde_json::from_slice(&fixture("jwks.json")).expect("a JWKS");
    set.keys
        .retain(|k| k.common.key_id.as_deref() == Some(EC_KID));
    std::fs::write(&path, serde_json::to_vec(&set).unwrap()).unwrap();
    let mut jwks = Jwks::load(path.to_str().unwrap()).await.expect("a JWKS");
    jwks.min_refresh = std::time::Duration::ZERO;
    let app = spawn_app_with_auth(jwks_only(jwks)).await;
    let rsa = EncodingKey::from_rsa_pem(&fixture("rsa_a.pem")).expect("the RSA key");
    let token = sign(
        Algorithm::RS256,
        Some(RSA_KID),
        &rsa,
        &claims(SELLER, &["trade"]),
    );
    let balances = || {
        app.client
            .get(app.url("/v1/balances"))
            .bearer_auth(&token)
            .send()
    };
    let res = balances().await.unwrap();
    assert_eq!(res.status(), 401, "the RSA key is not published yet");
    std::fs::write(&path, fixture("jwks.json")).unwrap();
    assert_eq!(balances().await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_bearer_scheme_is_matched_case_insensitively() {
    let app = spawn_app().await;
    let token = token(SELLER, &["trade"]);
    for scheme in ["Bearer", "bearer", "BEARER"] {
        let res = app
            .client
            .get(app.url("/v1/balances"))
            .header("authorization", format!("{scheme} {token}"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{scheme}");
    }
    let res = app
        .client
        .get(app.url("/v1/balances"))
        .header("authorization", format!("Basic {token}"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
}

#[tokio::test]
async fn a_token_must_name_an_ordinary_account_canonically() {
    let app = spawn_app().await;
    for sub in [
        "01002",
        "+1002",
        " 1002",
        "1e3",
        "0",
        "1",
        "",
        "9223372036854775808",
    ] {
        let mut c = claims(BUYER, &["trade"]);
        c.sub = sub.into();
        let res = app
            .client
            .get(app.url("/v1/balances"))
            .bearer_auth(mint_hs256(SECRET, &c).unwrap())
            .send()
            .await
            .unwrap();
        assert_problem(res, 401, "unauthorized").await;
    }
}
