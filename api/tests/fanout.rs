//! Redis: market data published, other instances' messages relayed, the
//! book snapshot cached, and the intake unharmed when Redis is down.

use crate::helpers::*;
use futures::StreamExt;
use serde_json::{Value, json};
use std::time::Duration;

const REDIS: &str = "redis://127.0.0.1:6379";

/// A price no other test trades at, to tell this test's messages apart on
/// the shared Redis channels.
const PRICE: &str = "43217.37";

#[tokio::test]
async fn market_data_reaches_redis_and_other_instances_messages_reach_clients_once() {
    let app = spawn_app_with_redis(REDIS).await;
    let client = redis::Client::open(REDIS).unwrap();
    let mut sub = client.get_async_pubsub().await.expect("redis is up");
    sub.subscribe("clearway:md:BTC-USD").await.unwrap();
    let mut from_redis = sub.into_on_message();
    let mut ws = app.ws(BUYER, &["trades:BTC-USD"]).await;

    assert_eq!(
        app.place(SELLER, limit_sell(PRICE, "0.1")).await.status(),
        202
    );
    assert_eq!(
        app.place(BUYER, limit_buy(PRICE, "0.1")).await.status(),
        202
    );

    // The trade reaches Redis, published by the intake.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let published = loop {
        let msg = tokio::time::timeout_at(deadline, from_redis.next())
            .await
            .expect("the trade on redis before the deadline")
            .expect("a message");
        let v: Value = serde_json::from_slice(msg.get_payload_bytes()).unwrap();
        if v["channel"] == "trades:BTC-USD" && v["data"]["price"] == PRICE {
            break v;
        }
    };
    assert!(published["origin"].as_str().is_some_and(|o| !o.is_empty()));

    // The book snapshot is cached with its sequence.
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let cached: Option<String> = redis::cmd("GET")
        .arg("clearway:book:BTC-USD")
        .query_async(&mut conn)
        .await
        .unwrap();
    let cached: Value = serde_json::from_str(&cached.expect("a cached book")).unwrap();
    assert!(cached["sequence"].as_u64().is_some(), "{cached}");

    // Another instance's message reaches this instance's client; since Redis
    // delivers in order, any echo of the intake's own trade would come first.
    let marker = json!({"origin": "another-instance", "channel": "trades:BTC-USD", "account": null,
                        "data": {"type": "trade", "price": "1.11", "marker": true}});
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while !seen.iter().any(|m: &Value| m["data"]["marker"] == true) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no relayed message; saw {seen:?}"
        );
        let _: i64 = redis::cmd("PUBLISH")
            .arg("clearway:md:BTC-USD")
            .arg(marker.to_string())
            .query_async(&mut conn)
            .await
            .unwrap();
        while let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
            seen.push(m);
        }
    }
    let ours = seen.iter().filter(|m| m["data"]["price"] == PRICE).count();
    assert_eq!(ours, 1, "the own trade is delivered exactly once: {seen:?}");
}

#[tokio::test]
async fn with_redis_down_an_order_still_gets_202_and_readyz_says_redis_down() {
    let app = spawn_app_with_redis("redis://127.0.0.1:1").await;
    let res = app.place(SELLER, limit_sell("61000", "0.1")).await;
    assert_eq!(res.status(), 202);
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);
    let body: Value = ready.json().await.unwrap();
    assert_eq!(body["redis"], "down", "{body}");
    app.wait_until("a publish failure is counted", || async {
        let m = app.metrics().await;
        m.lines().any(|l| {
            l.strip_prefix("clearway_redis_publish_failures_total ")
                .is_some_and(|n| n != "0")
        })
    })
    .await;
    let book = app
        .get(SELLER, "/v1/markets/BTC-USD/book")
        .send()
        .await
        .unwrap();
    assert_eq!(book.status(), 200);
}

#[tokio::test]
async fn without_redis_readyz_does_not_mention_it() {
    let app = spawn_app().await;
    let body: Value = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["status"], "ready");
    assert!(body.get("redis").is_none(), "{body}");
}
