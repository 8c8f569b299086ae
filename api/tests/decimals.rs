//! Every decimal the API writes, over HTTP and the WebSocket, is without
//! trailing zeros, whatever scale the engine or the database keeps it at.

use crate::helpers::*;
use serde_json::{Value, json};

/// Asserts that no decimal string anywhere in `v` ends in a zero after its
/// point (`"50000.10"`, `"1.0"`).
fn assert_plain(v: &Value) {
    match v {
        Value::String(s) if s.parse::<rust_decimal::Decimal>().is_ok() && s.contains('.') => {
            assert!(!s.ends_with('0'), "{s:?} has trailing zeros");
        }
        Value::Array(a) => a.iter().for_each(assert_plain),
        Value::Object(o) => o.values().for_each(assert_plain),
        _ => {}
    }
}

#[tokio::test]
async fn every_decimal_the_api_writes_has_no_trailing_zeros() {
    let app = spawn_app().await;
    let mut ws = app
        .ws(BUYER, &["trades:BTC-USD", "depth:BTC-USD", "orders"])
        .await;
    let maker = app.place(SELLER, limit_sell("50000.10", "0.50")).await;
    assert_eq!(maker.status(), 202);
    let taker = app.place(BUYER, limit_buy("50000.10", "0.20")).await;
    assert_eq!(taker.status(), 202);
    let taker: Value = taker.json().await.unwrap();
    assert_eq!(taker["price"], "50000.1");
    assert_plain(&taker);

    let book = app
        .get_json(BUYER, "/v1/markets/BTC-USD/book?depth=5")
        .await;
    assert_eq!(
        book["asks"][0],
        json!({"price": "50000.1", "quantity": "0.3"})
    );
    assert_plain(&book);

    let path = "/v1/markets/BTC-USD/trades";
    app.wait_until("the trade is persisted", || async {
        app.get_json(BUYER, path).await["trades"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    })
    .await;
    let trades = app.get_json(BUYER, path).await;
    assert_eq!(trades["trades"][0]["price"], "50000.1", "{trades}");
    assert_eq!(trades["trades"][0]["quantity"], "0.2", "{trades}");
    assert_plain(&trades);

    for account in [SELLER, BUYER] {
        assert_plain(&app.get_json(account, "/v1/balances").await);
    }
    assert_plain(&app.get_json(BUYER, "/v1/markets").await);
    let deposit = app
        .client
        .post(app.url("/v1/deposits"))
        .bearer_auth(token(900, &["operate"]))
        .json(&json!({"account_id": PAUPER, "asset": "USD", "amount": "250.50"}))
        .send()
        .await
        .unwrap();
    assert_eq!(deposit.status(), 202);
    let deposit: Value = deposit.json().await.unwrap();
    assert_eq!(deposit["amount"], "250.5");
    assert_plain(&deposit);

    let last_seq = taker["sequence"].as_u64().unwrap();
    let msgs = ws
        .read_until("the trade, the diffs and the taker's close", |m| {
            m.iter().any(|x| {
                x["channel"] == "depth:BTC-USD"
                    && x["data"]["last_sequence"].as_u64() >= Some(last_seq)
            }) && m.iter().any(|x| x["data"]["event"] == "closed")
        })
        .await;
    let trade = msgs
        .iter()
        .find(|m| m["channel"] == "trades:BTC-USD")
        .expect("the trade");
    assert_eq!(trade["data"]["price"], "50000.1", "{trade}");
    msgs.iter().for_each(assert_plain);
}
