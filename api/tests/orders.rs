use crate::helpers::*;
use rust_decimal::Decimal;
use serde_json::{Value, json};

async fn all_workflows_completed(app: &TestApp, account: u64, order_id: u64) -> bool {
    let res = app
        .get(account, &format!("/v1/orders/{order_id}/trace"))
        .send()
        .await
        .expect("a response");
    if res.status() != 200 {
        return false;
    }
    let trace: Value = res.json().await.expect("a trace");
    let wfs = trace["workflows"].as_array().cloned().unwrap_or_default();
    !wfs.is_empty() && wfs.iter().all(|w| w["state"] == "completed")
}

#[tokio::test]
async fn a_crossing_limit_order_fills_at_the_resting_price_and_both_workflows_complete() {
    let app = spawn_app().await;
    let maker = app.place(SELLER, limit_sell("50000", "0.5")).await;
    assert_eq!(maker.status(), 202);
    let maker: Value = maker.json().await.unwrap();
    assert_eq!(maker["status"], "open");

    let taker = app.place(BUYER, limit_buy("50100", "0.2")).await;
    assert_eq!(taker.status(), 202);
    let taker: Value = taker.json().await.unwrap();
    assert_eq!(taker["status"], "filled");
    assert_eq!(dec(&taker["filled"]), Decimal::new(2, 1));
    let fills = taker["fills"].as_array().unwrap();
    assert_eq!(fills.len(), 1);
    assert_eq!(dec(&fills[0]["price"]), Decimal::from(50_000));
    assert_eq!(fills[0]["liquidity"], "taker");
    assert_eq!(
        taker["links"]["trace"],
        format!("/v1/orders/{}/trace", taker["order_id"])
    );

    let (maker_id, taker_id) = (
        maker["order_id"].as_u64().unwrap(),
        taker["order_id"].as_u64().unwrap(),
    );
    app.wait_until("both workflows complete", || async {
        all_workflows_completed(&app, SELLER, maker_id).await
            && all_workflows_completed(&app, BUYER, taker_id).await
    })
    .await;

    // The maker's trace shows the workflow that settled its fill (the
    // taker's), without the taker's account or order.
    let taker_trace: Value = app
        .get_json(BUYER, &format!("/v1/orders/{taker_id}/trace"))
        .await;
    let maker_trace: Value = app
        .get_json(SELLER, &format!("/v1/orders/{maker_id}/trace"))
        .await;
    let filled_in = &maker_trace["maker_fills"];
    assert_eq!(filled_in.as_array().map(Vec::len), Some(1), "{maker_trace}");
    assert_eq!(
        filled_in[0]["workflow_id"], taker_trace["workflows"][0]["id"],
        "{maker_trace}"
    );
    assert_eq!(filled_in[0]["trade_ids"], json!([fills[0]["trade_id"]]));
    assert_eq!(filled_in[0]["state"], "completed");
    let steps: Vec<&str> = filled_in[0]["step_attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["step"].as_str().unwrap())
        .collect();
    assert_eq!(steps, ["persist", "settle", "publish", "archive"]);
    assert!(filled_in[0].get("account_id").is_none(), "{maker_trace}");
    assert_eq!(taker_trace["maker_fills"], json!([]));

    let resting: Value = app
        .get_json(SELLER, &format!("/v1/orders/{maker_id}"))
        .await;
    assert_eq!(resting["status"], "partially_filled");
    assert_eq!(dec(&resting["remaining"]), Decimal::new(3, 1));
    let book: Value = app
        .get_json(BUYER, "/v1/markets/BTC-USD/book?depth=5")
        .await;
    assert_eq!(dec(&book["asks"][0]["quantity"]), Decimal::new(3, 1));
    // The list carries each order's fills, as the single read does.
    let page: Value = app.get_json(SELLER, "/v1/orders").await;
    let listed = page["orders"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["order_id"] == maker_id)
        .expect("the maker is listed")
        .clone();
    assert_eq!(listed["fills"], resting["fills"], "{listed}");
    assert_eq!(listed["fills"][0]["liquidity"], "maker");
}

#[tokio::test]
async fn insufficient_funds_is_a_422_and_enqueues_nothing() {
    let app = spawn_app().await;
    let before = app.workflow_count().await;
    let res = app.place(PAUPER, limit_buy("50000", "1")).await;
    assert_problem(res, 422, "insufficient_funds").await;
    assert_eq!(app.workflow_count().await, before);
}

#[tokio::test]
async fn another_accounts_order_is_not_found() {
    let app = spawn_app().await;
    let placed: Value = app
        .place(SELLER, limit_sell("60000", "0.1"))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/v1/orders/{}", placed["order_id"]);
    assert_problem(
        app.get(BUYER, &path).send().await.unwrap(),
        404,
        "not_found",
    )
    .await;
    let cancel = app.delete(BUYER, &path).send().await.unwrap();
    assert_problem(cancel, 404, "not_found").await;
    assert_problem(
        app.get(BUYER, &format!("{path}/trace"))
            .send()
            .await
            .unwrap(),
        404,
        "not_found",
    )
    .await;
    assert_eq!(app.get(SELLER, &path).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn a_client_order_id_retry_returns_the_same_order_and_a_conflicting_reuse_is_409() {
    let app = spawn_app().await;
    let mut body = limit_sell("70000", "0.1");
    body["client_order_id"] = json!("retry-1");
    let first = app.place(SELLER, body.clone()).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    let count = app.workflow_count().await;

    let again = app.place(SELLER, body.clone()).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["order_id"], first["order_id"]);
    assert_eq!(app.workflow_count().await, count);

    body["price"] = json!("70001");
    assert_problem(
        app.place(SELLER, body).await,
        409,
        "client_order_id_conflict",
    )
    .await;

    let found: Value = app
        .get_json(SELLER, "/v1/orders?client_order_id=retry-1")
        .await;
    assert_eq!(found["orders"][0]["order_id"], first["order_id"]);
    let other: Value = app
        .get_json(BUYER, "/v1/orders?client_order_id=retry-1")
        .await;
    assert_eq!(other["orders"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn an_idempotency_key_is_the_client_order_id() {
    let app = spawn_app().await;
    let keyed = |keys: &[&str], body: Value| {
        let mut req = app.post(SELLER, "/v1/orders", &body);
        for key in keys {
            req = req.header("idempotency-key", *key);
        }
        req.send()
    };
    let first = keyed(&["key-1"], limit_sell("70000", "0.1")).await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["client_order_id"], "key-1");
    let count = app.workflow_count().await;

    // A retry by header, or by the body's field, answers the original.
    let again = keyed(&["key-1"], limit_sell("70000", "0.1")).await.unwrap();
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["order_id"], first["order_id"]);
    let mut body = limit_sell("70000", "0.1");
    body["client_order_id"] = json!("key-1");
    assert_eq!(app.place(SELLER, body.clone()).await.status(), 200);
    // Both, equal, are the same id; other parameters a conflict.
    assert_eq!(keyed(&["key-1"], body).await.unwrap().status(), 200);
    assert_problem(
        keyed(&["key-1"], limit_sell("70001", "0.1")).await.unwrap(),
        409,
        "client_order_id_conflict",
    )
    .await;

    // Header and field that differ, two headers (equal or not), or a key
    // out of the id's format: a 422 and nothing placed.
    let mut differs = limit_sell("70000", "0.1");
    differs["client_order_id"] = json!("key-2");
    for (keys, body) in [
        (&["key-1"][..], differs),
        (&["key-3", "key-4"][..], limit_sell("70000", "0.1")),
        (&["key-3", "key-3"][..], limit_sell("70000", "0.1")),
        (&["has space"][..], limit_sell("70000", "0.1")),
    ] {
        let res = keyed(keys, body).await.unwrap();
        assert_problem(res, 422, "invalid_client_order_id").await;
    }
    assert_eq!(app.workflow_count().await, count);
}

#[tokio::test]
async fn two_idempotency_keys_on_a_deposit_are_refused() {
    let app = spawn_app().await;
    let before = usd(&app, PAUPER).await;
    let res = app
        .client
        .post(app.url("/v1/deposits"))
        .bearer_auth(token(900, &["operate"]))
        .header("idempotency-key", "a1")
        .header("idempotency-key", "a2")
        .json(&json!({"account_id": PAUPER, "asset": "USD", "amount": "5"}))
        .send()
        .await
        .unwrap();
    let problem = assert_problem(res, 422, "invalid_client_transfer_id").await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("more than one")
    );
    assert_eq!(usd(&app, PAUPER).await, before);
}

#[tokio::test]
async fn a_cancel_with_a_body_is_refused_and_the_order_stays_open() {
    let app = spawn_app().await;
    let placed: Value = app
        .place(BUYER, limit_buy("100", "1"))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/v1/orders/{}", placed["order_id"]);
    let res = app
        .delete(BUYER, &path)
        .json(&json!({"reason": "changed my mind"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 400, "unexpected_body").await;
    let order: Value = app.get_json(BUYER, &path).await;
    assert_eq!(order["status"], "open");
    // An empty one (`Content-Length: 0`, as some clients send) is no body.
    let res = app
        .delete(BUYER, &path)
        .header("content-length", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
}

#[tokio::test]
async fn a_cancel_releases_the_hold_and_answers_cancelled() {
    let app = spawn_app().await;
    let placed: Value = app
        .place(BUYER, limit_buy("100", "1"))
        .await
        .json()
        .await
        .unwrap();
    let path = format!("/v1/orders/{}", placed["order_id"]);
    let res = app.delete(BUYER, &path).send().await.unwrap();
    assert_eq!(res.status(), 202);
    let cancelled: Value = res.json().await.unwrap();
    assert_eq!(cancelled["status"], "cancelled");
    let balances: Value = app.get_json(BUYER, "/v1/balances").await;
    assert_eq!(dec(&balances["balances"]["USD"]["held"]), Decimal::ZERO);
}

/// `account`'s available USD (none before its first deposit).
async fn usd(app: &TestApp, account: u64) -> Decimal {
    let b = app.get_json(account, "/v1/balances").await;
    let usd = &b["balances"]["USD"]["available"];
    if usd.is_null() {
        Decimal::ZERO
    } else {
        dec(usd)
    }
}

/// A deposit or withdrawal retried with its `client_transfer_id` moves the
/// funds once and gets the original answer; the id with other parameters,
/// or on the other kind of transfer, is a 409; another account may use it.
#[tokio::test]
async fn a_transfer_id_moves_funds_once() {
    let app = spawn_app().await;
    let before = usd(&app, PAUPER).await;
    let body = json!({"account_id": PAUPER, "asset": "USD", "amount": "100", "client_transfer_id": "bank:7781"});
    let first = app.operate("/v1/deposits", &body).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["client_transfer_id"], "bank:7781");
    let again = app.operate("/v1/deposits", &body).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.unwrap();
    assert_eq!(again["workflow_id"], first["workflow_id"]);
    assert_eq!(again["sequence"], first["sequence"]);
    assert_eq!(usd(&app, PAUPER).await, before + Decimal::from(100));

    // "100.00" is the same amount: still a retry.
    let mut same = body.clone();
    same["amount"] = "100.00".into();
    assert_eq!(app.operate("/v1/deposits", &same).await.status(), 200);
    let mut other = body.clone();
    other["amount"] = "101".into();
    let problem = assert_problem(
        app.operate("/v1/deposits", &other).await,
        409,
        "client_transfer_id_conflict",
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("bank:7781"));
    assert_problem(
        app.operate("/v1/withdrawals", &body).await,
        409,
        "client_transfer_id_conflict",
    )
    .await;
    assert_eq!(usd(&app, PAUPER).await, before + Decimal::from(100));

    // A withdrawal has ids of its own kind; another account may reuse one.
    let out = json!({"account_id": PAUPER, "asset": "USD", "amount": "40", "client_transfer_id": "out-1"});
    assert_eq!(app.operate("/v1/withdrawals", &out).await.status(), 202);
    assert_eq!(app.operate("/v1/withdrawals", &out).await.status(), 200);
    assert_eq!(usd(&app, PAUPER).await, before + Decimal::from(60));
    let mut elsewhere = body.clone();
    elsewhere["account_id"] = BUYER.into();
    assert_eq!(app.operate("/v1/deposits", &elsewhere).await.status(), 202);

    // Without an id every request moves funds, as before.
    let plain = json!({"account_id": PAUPER, "asset": "USD", "amount": "1"});
    assert_eq!(app.operate("/v1/deposits", &plain).await.status(), 202);
    assert_eq!(app.operate("/v1/deposits", &plain).await.status(), 202);
    assert_eq!(usd(&app, PAUPER).await, before + Decimal::from(62));

    // The IETF draft's `Idempotency-Key` header is the same id.
    let keyed = |key: &str| {
        app.client
            .post(app.url("/v1/deposits"))
            .bearer_auth(token(900, &["operate"]))
            .header("idempotency-key", key)
            .json(&json!({"account_id": PAUPER, "asset": "USD", "amount": "5"}))
            .send()
    };
    assert_eq!(keyed("hdr-1").await.unwrap().status(), 202);
    assert_eq!(keyed("hdr-1").await.unwrap().status(), 200);
    assert_eq!(usd(&app, PAUPER).await, before + Decimal::from(67));
    assert_problem(
        keyed("bank:7781").await.unwrap(),
        409,
        "client_transfer_id_conflict",
    )
    .await;

    let mut bad = body.clone();
    bad["client_transfer_id"] = "has space".into();
    assert_problem(
        app.operate("/v1/deposits", &bad).await,
        422,
        "invalid_client_transfer_id",
    )
    .await;
    assert_eq!(usd(&app, PAUPER).await, before + Decimal::from(67));
}

#[tokio::test]
async fn a_deposit_needs_the_operate_scope() {
    let app = spawn_app().await;
    let body = json!({"account_id": PAUPER, "asset": "USD", "amount": "250.5"});
    let res = app
        .post(PAUPER, "/v1/deposits", &body)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    let res = app
        .client
        .post(app.url("/v1/deposits"))
        .bearer_auth(token(900, &["operate"]))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let balances: Value = app.get_json(PAUPER, "/v1/balances").await;
    assert_eq!(
        dec(&balances["balances"]["USD"]["available"]),
        Decimal::new(2505, 1)
    );
}

#[tokio::test]
async fn a_closed_order_reads_back_at_once_and_cannot_be_cancelled_again() {
    let app = spawn_app().await;
    // An IOC that finds nothing expires on arrival: closed before persist runs.
    let mut ioc = limit_sell("90000", "0.01");
    ioc["time_in_force"] = json!("ioc");
    ioc["client_order_id"] = json!("ioc-1");
    let placed = app.place(SELLER, ioc).await;
    assert_eq!(placed.status(), 202);
    let placed: Value = placed.json().await.unwrap();
    assert_eq!(placed["status"], "expired");
    let id = placed["order_id"].as_u64().unwrap();
    for path in [
        format!("/v1/orders/{id}"),
        "/v1/orders?client_order_id=ioc-1".into(),
    ] {
        let res = app.get(SELLER, &path).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let body: Value = res.json().await.unwrap();
        let order = body.get("orders").map_or(&body, |o| &o[0]);
        assert_eq!(order["order_id"], id, "{path}: {body}");
        assert_eq!(order["status"], "expired", "{path}: {body}");
    }
    let res = app
        .delete(SELLER, &format!("/v1/orders/{id}"))
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "order_not_open").await;

    // A resting order: cancelled once (202), then the second cancel is refused.
    let open: Value = app
        .place(SELLER, limit_sell("91000", "0.01"))
        .await
        .json()
        .await
        .unwrap();
    let id = open["order_id"].as_u64().unwrap();
    let cancel = || app.delete(SELLER, &format!("/v1/orders/{id}")).send();
    let first = cancel().await.unwrap();
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["status"], "cancelled");
    assert_problem(cancel().await.unwrap(), 422, "order_not_open").await;
    let got: Value = app.get_json(SELLER, &format!("/v1/orders/{id}")).await;
    assert_eq!(got["status"], "cancelled");
    assert_eq!(
        got["filled"], "0",
        "decimals are written without trailing zeros"
    );
}

#[tokio::test]
async fn own_orders_and_balances_need_the_trade_scope() {
    let app = spawn_app().await;
    for path in ["/v1/balances", "/v1/orders"] {
        let res = app
            .client
            .get(app.url(path))
            .bearer_auth(token(SELLER, &["audit"]))
            .send()
            .await
            .unwrap();
        assert_problem(res, 403, "forbidden").await;
    }
}

/// An order that closes its own account's resting order by self-trade
/// prevention (`cancel_maker`): the answer's `sequence` is its command's
/// last event (the resting order's close), as the book's is right after.
#[tokio::test]
async fn a_place_answer_reflects_every_event_of_its_command() {
    let app = spawn_app().await;
    let resting: Value = app
        .place(SELLER, limit_sell("60000", "0.1"))
        .await
        .json()
        .await
        .unwrap();
    let mut buy = limit_buy("60000", "0.1");
    buy["stp"] = "cancel_maker".into();
    // The seller buys from itself.
    let res = app.place(SELLER, buy).await;
    assert_eq!(res.status(), 202);
    let placed: Value = res.json().await.unwrap();
    let book = app.get_json(SELLER, "/v1/markets/BTC-USD/book").await;
    assert_eq!(placed["sequence"], book["sequence"], "{placed} {book}");
    let maker = app
        .get_json(SELLER, &format!("/v1/orders/{}", resting["order_id"]))
        .await;
    assert_eq!(maker["status"], "self_trade_prevented");
    assert!(
        placed["sequence"].as_u64() >= maker["sequence"].as_u64(),
        "{placed} {maker}"
    );
}
