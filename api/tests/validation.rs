use crate::helpers::*;
use serde_json::json;

#[tokio::test]
async fn malformed_requests_get_a_4xx_problem_and_enqueue_nothing() {
    let app = spawn_app().await;
    let before = app.workflow_count().await;
    let send_raw = |body: String| {
        app.client
            .post(app.url("/v1/orders"))
            .bearer_auth(token(SELLER, &["trade"]))
            .header("content-type", "application/json")
            .body(body)
            .send()
    };
    assert_problem(
        send_raw("{\"market\": ".into()).await.unwrap(),
        400,
        "malformed_json",
    )
    .await;

    let mut unknown = limit_sell("50000", "1");
    unknown["leverage"] = json!(100);
    assert_problem(app.place(SELLER, unknown).await, 422, "invalid_body").await;

    assert_problem(
        app.place(SELLER, limit_sell("fifty", "1")).await,
        422,
        "invalid_price",
    )
    .await;
    assert_problem(
        app.place(SELLER, limit_sell("50000", "-1")).await,
        422,
        "invalid_quantity",
    )
    .await;
    assert_problem(
        app.place(SELLER, limit_sell("50000.001", "1")).await,
        422,
        "price_off_tick",
    )
    .await;

    let mut huge = limit_sell("50000", "1");
    huge["client_order_id"] = json!("x".repeat(100 * 1024));
    assert_problem(app.place(SELLER, huge).await, 413, "payload_too_large").await;

    let no_type = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(token(SELLER, &["trade"]))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_problem(no_type, 415, "unsupported_media_type").await;

    assert_eq!(app.workflow_count().await, before);
}

#[tokio::test]
async fn an_unknown_market_is_rejected() {
    let app = spawn_app().await;
    let mut body = limit_sell("1", "1");
    body["market"] = json!("DOGE-USD");
    assert_problem(app.place(SELLER, body).await, 422, "unknown_market").await;
    assert_problem(
        app.get(SELLER, "/v1/markets/DOGE-USD/book")
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
}

#[tokio::test]
async fn decimals_are_taken_exactly_or_refused() {
    let app = spawn_app().await;
    let before = app.workflow_count().await;
    // More digits than a decimal holds would round to a valid lot or tick.
    for (price, quantity, code) in [
        (
            "95000",
            "0.09999999999999999999999999999",
            "invalid_quantity",
        ),
        ("90000.0000000000000000000000001", "0.1", "invalid_price"),
        ("1e5", "0.1", "invalid_price"),
        ("+90000", "0.1", "invalid_price"),
        ("90000", "1_0", "invalid_quantity"),
        ("90000.", "0.1", "invalid_price"),
        ("90000", ".1", "invalid_quantity"),
    ] {
        let res = app.place(SELLER, limit_sell(price, quantity)).await;
        let body = assert_problem(res, 422, code).await;
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
    let operator = token(900, &["operate"]);
    for (account, amount, code) in [
        (1003, "0.99999999999999999999999999999", "invalid_amount"),
        (1003, "1e3", "invalid_amount"),
        (0, "5", "reserved_account"),
        (1, "5", "reserved_account"),
        (u64::MAX, "5", "invalid_account"),
    ] {
        let res = app
            .client
            .post(app.url("/v1/deposits"))
            .bearer_auth(&operator)
            .json(&json!({"account_id": account, "asset": "USD", "amount": amount}))
            .send()
            .await
            .unwrap();
        assert_problem(res, 422, code).await;
    }
    assert_eq!(app.workflow_count().await, before);
}

#[tokio::test]
async fn a_mistyped_field_is_422_and_broken_json_is_400() {
    let app = spawn_app().await;
    let before = app.workflow_count().await;
    for side in [json!(1), json!(true), json!(null), json!({}), json!([])] {
        let mut body = limit_sell("50000", "1");
        body["side"] = side.clone();
        let problem = assert_problem(app.place(SELLER, body).await, 422, "invalid_body").await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(
            detail.starts_with("side") && detail.contains("string values"),
            "{side}: {problem}"
        );
    }
    for raw in ["{\"market\": \"BTC-USD\",}", "[1, 2", "nope", "{} {}"] {
        let res = app
            .client
            .post(app.url("/v1/orders"))
            .bearer_auth(token(SELLER, &["trade"]))
            .header("content-type", "application/json")
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_problem(res, 400, "malformed_json").await;
    }
    // Not UTF-8 inside a string: not JSON either (RFC 8259 §8.1).
    let res = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(token(SELLER, &["trade"]))
        .header("content-type", "application/json")
        .body(b"{\"market\":\"BTC-USD\xff\",\"side\":\"buy\"}".to_vec())
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "malformed_json").await;
    assert_eq!(app.workflow_count().await, before);
}

#[tokio::test]
async fn an_id_past_what_the_database_holds_is_400_not_404_or_an_empty_page() {
    let app = spawn_app().await;
    for (path, code) in [
        ("/v1/orders/9223372036854775808", "invalid_path"),
        ("/v1/orders/9223372036854775808/trace", "invalid_path"),
        ("/v1/orders/99999999999999999999", "invalid_path"),
        ("/v1/orders?before=9223372036854775808", "invalid_query"),
        ("/v1/orders?before=18446744073709551615", "invalid_query"),
    ] {
        let res = app.get(SELLER, path).send().await.unwrap();
        let problem = assert_problem(res, 400, code).await;
        assert!(!problem["detail"].as_str().unwrap().is_empty(), "{path}");
    }
    let res = app
        .client
        .delete(app.url("/v1/orders/9223372036854775808"))
        .bearer_auth(token(SELLER, &["trade"]))
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "invalid_path").await;
    // The largest id is an id: not found, not malformed.
    let res = app
        .get(SELLER, "/v1/orders/9223372036854775807")
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
}

#[tokio::test]
async fn ids_and_counts_are_plain_digits_and_a_bad_count_says_what_it_wanted() {
    let app = spawn_app().await;
    for (path, code, says) in [
        ("/v1/orders/+45", "invalid_path", "decimal digits"),
        ("/v1/orders/045", "invalid_path", "leading zero"),
        ("/v1/orders?before=%2B10", "invalid_query", "decimal digits"),
        ("/v1/orders?limit=%2B5", "invalid_query", "decimal digits"),
        ("/v1/orders?limit=-1", "invalid_query", "no sign"),
        (
            "/v1/orders?limit=501",
            "invalid_query",
            "limit must be 1 to 500",
        ),
        (
            "/v1/orders?limit=99999999999",
            "invalid_query",
            "limit must be 1 to 500",
        ),
        (
            "/v1/markets/BTC-USD/trades?limit=0",
            "invalid_query",
            "limit must be 1 to 1000",
        ),
        (
            "/v1/markets/BTC-USD/book?depth=x",
            "invalid_query",
            "not a count",
        ),
    ] {
        let res = app.get(SELLER, path).send().await.unwrap();
        let problem = assert_problem(res, 400, code).await;
        let detail = problem["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{path}: {detail}");
    }
    for path in [
        "/v1/orders?limit=5&before=10",
        "/v1/markets/BTC-USD/trades?limit=1000",
        "/v1/markets/BTC-USD/book?depth=1",
    ] {
        let res = app.get(SELLER, path).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
}

#[tokio::test]
async fn a_query_string_on_a_route_without_parameters_is_400() {
    let app = spawn_app().await;
    for path in [
        "/v1/balances?account_id=1002",
        "/v1/markets?x=1",
        "/v1/orders/1?verbose=true",
        "/v1/orders?client_order_id=a&limit=0",
        "/healthz?x=1",
        "/metrics?x=1",
        "/v1/openapi.json?x=1",
    ] {
        let res = app.get(SELLER, path).send().await.unwrap();
        assert_problem(res, 400, "invalid_query").await;
    }
}

#[tokio::test]
async fn an_announced_oversized_body_is_refused_before_it_is_sent() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = format!(
        "POST /v1/orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\nab",
        token(SELLER, &["trade"])
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 1024];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), conn.read(&mut answer))
        .await
        .expect("an answer without the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"), "{answer}");
}

#[tokio::test]
async fn unknown_methods_do_not_grow_the_metrics() {
    let app = spawn_app().await;
    for i in 0..5 {
        let method = reqwest::Method::from_bytes(format!("FOO{i}").as_bytes()).unwrap();
        app.client
            .request(method, app.url("/nowhere"))
            .send()
            .await
            .unwrap();
    }
    let text = app.metrics().await;
    assert!(!text.contains("FOO"), "{text}");
    assert!(
        text.contains(
            r#"clearway_http_requests_total{method="OTHER",route="unmatched",status="404"} 5"#
        ),
        "{text}"
    );
}

#[tokio::test]
async fn an_encoded_body_is_refused_not_misread() {
    let app = spawn_app().await;
    let before = app.workflow_count().await;
    for (name, value) in [
        ("content-encoding", "gzip"),
        ("transfer-encoding", "gzip, chunked"),
    ] {
        let res = app
            .client
            .post(app.url("/v1/orders"))
            .bearer_auth(token(SELLER, &["trade"]))
            .header("content-type", "application/json")
            .header(name, value)
            .body(limit_sell("50000", "1").to_string())
            .send()
            .await
            .unwrap();
        assert_problem(res, 415, "unsupported_media_type").await;
    }
    assert_eq!(app.workflow_count().await, before);
}
