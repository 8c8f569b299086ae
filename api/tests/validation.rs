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
