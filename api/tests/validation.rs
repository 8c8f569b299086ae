use crate::helpers::*;
use serde_json::{Value, json};

#[tokio::test]
async fn malformed_requests_get_a_4xx_problem_and_enqueue_nothing() {
    let app = spawn_app().await;
    let before = app.workflow_count().await;
    let send_raw = |body: String| app.place_raw("application/json", body).send();
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

    // Zeros before a value or after its fraction are none of its digits,
    // whatever their count: the value is exact, so it is taken.
    let zeros = "0".repeat(40);
    let res = app
        .place(
            SELLER,
            limit_sell(&format!("{zeros}90000.{zeros}"), &format!("0.1{zeros}")),
        )
        .await;
    assert_eq!(res.status(), 202);
    let placed: Value = res.json().await.unwrap();
    assert_eq!(
        (placed["price"].as_str(), placed["quantity"].as_str()),
        (Some("90000"), Some("0.1"))
    );
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
    // A lone surrogate escape names no character, in a field read or not.
    for raw in [
        "{\"market\": \"BTC-USD\",}",
        "[1, 2",
        "nope",
        "{} {}",
        "{\"market\": \"BTC\\ud800\"}",
        "{\"client_order_id\": \"a\", \"x\": \"\\udc00\"}",
    ] {
        let res = app.place_raw("application/json", raw).send().await.unwrap();
        assert_problem(res, 400, "malformed_json").await;
    }
    // Not UTF-8 inside a string: not JSON either (RFC 8259 §8.1).
    let res = app
        .place_raw(
            "application/json",
            b"{\"market\":\"BTC-USD\xff\",\"side\":\"buy\"}".to_vec(),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "malformed_json").await;
    assert_eq!(app.workflow_count().await, before);
}

/// `null` for an optional field is the field left out, for each of them;
/// a value of the wrong type is still a 422.
#[tokio::test]
async fn null_for_an_optional_field_is_its_default() {
    let app = spawn_app().await;
    let mut body = limit_sell("50000", "0.01");
    for field in [
        "type",
        "time_in_force",
        "post_only",
        "client_order_id",
        "stp",
    ] {
        body[field] = Value::Null;
    }
    let res = app.place(SELLER, body.clone()).await;
    assert_eq!(res.status(), 202);
    let order: Value = res.json().await.unwrap();
    assert_eq!(order["type"], "limit");
    assert_eq!(order["status"], "open");
    let before = app.workflow_count().await;
    for (field, value) in [
        ("post_only", json!("yes")),
        ("type", json!(1)),
        ("stp", json!(false)),
    ] {
        let mut bad = body.clone();
        bad[field] = value;
        let problem = assert_problem(app.place(SELLER, bad).await, 422, "invalid_body").await;
        assert!(
            problem["detail"].as_str().unwrap().starts_with(field),
            "{problem}"
        );
    }
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
        .delete(SELLER, "/v1/orders/9223372036854775808")
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
        ("/v1/orders?before=+5", "invalid_query", "reads as a space"),
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
    // Separators alone name no parameter, on every route alike.
    for path in ["/v1/balances?&", "/v1/markets?&&", "/v1/orders?&&"] {
        let res = app.get(SELLER, path).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
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
            .place_raw("application/json", limit_sell("50000", "1").to_string())
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_problem(res, 415, "unsupported_media_type").await;
    }
    // JSON is UTF-8: a body declared in another charset is not read as if it were.
    for content_type in [
        "application/json; charset=latin1",
        "application/json;charset=\"ISO-8859-1\"",
        "application/json; charset=utf-16",
    ] {
        let res = app
            .place_raw(content_type, limit_sell("50000", "1").to_string())
            .send()
            .await
            .unwrap();
        assert_problem(res, 415, "unsupported_media_type").await;
    }
    assert_eq!(app.workflow_count().await, before);
    let res = app
        .place_raw(
            "application/json; charset=\"UTF-8\"",
            limit_sell("50000", "1").to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
}

/// One raw HTTP/1.1 exchange on `conn`: the headers of `POST /v1/orders`
/// with `auth`, then, `delay` later, the body. Returns the answer's head
/// (status line and headers, lower-cased) once read whole with its body.
async fn post_in_two_parts(
    conn: &mut tokio::net::TcpStream,
    auth: &str,
    delay: std::time::Duration,
) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = limit_sell("50000", "0.01").to_string();
    let head = format!(
        "POST /v1/orders HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {auth}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(delay).await;
    // The server may have answered and closed already; what it said is read below.
    let _ = conn.write_all(body.as_bytes()).await;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&got).to_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| l.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text[..end].to_string();
            }
        }
        let n = conn.read(&mut buf).await.unwrap();
        assert!(n > 0, "the connection closed before an answer: {text}");
        got.extend_from_slice(&buf[..n]);
    }
}

/// A request refused before its body was read (a bad token here; a 429
/// takes the same path): a body on its way is read, and the connection
/// carries the next request; a body that does not come soon is given up on,
/// and the answer says `Connection: close` before the server closes.
#[tokio::test]
async fn a_refusal_before_the_body_keeps_the_connection_or_says_it_closes() {
    use std::time::Duration;
    let app = spawn_app().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = post_in_two_parts(&mut conn, "nonsense", Duration::from_millis(20)).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    let good = token(SELLER, &["trade"]);
    let head = post_in_two_parts(&mut conn, &good, Duration::ZERO).await;
    assert!(head.starts_with("http/1.1 202"), "{head}");

    let mut conn = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let head = post_in_two_parts(&mut conn, "nonsense", Duration::from_millis(500)).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
}
