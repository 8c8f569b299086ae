use crate::helpers::*;
use api::auth::mint_hs256;

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
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("clearway_engine_commits_total"),
        "{metrics}"
    );
    assert!(metrics.contains("route=\"/readyz\""), "{metrics}");
}
