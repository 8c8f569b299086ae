//! The engine host fails closed when the journal cannot be written, and
//! recovers from the journal once it can.

use std::time::Duration;

use crate::helpers::*;
use reqwest::Response;
use serde_json::{Value, json};
use workers::db::Db;

/// A small resting sell with a client order id.
fn sell(coid: &str) -> Value {
    let mut body = limit_sell("90000", "0.01");
    body["client_order_id"] = coid.into();
    body
}

/// Asserts the engine host's fail-closed answer: 503 `unavailable`, with
/// `Retry-After`.
async fn assert_unavailable(res: Response) {
    assert_eq!(
        res.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    assert_problem(res, 503, "unavailable").await;
}

/// The orders `account` has under `coid`, per `GET /v1/orders?client_order_id=`.
async fn by_client_id(app: &TestApp, account: u64, coid: &str) -> Vec<Value> {
    let res = app
        .get(account, &format!("/v1/orders?client_order_id={coid}"))
        .send()
        .await
        .expect("a response");
    assert_eq!(res.status(), 200);
    let page: Value = res.json().await.expect("a page");
    page["orders"].as_array().cloned().expect("a list")
}

/// The ids of the order workflows in the journal, ascending.
async fn journaled_orders(db: &Db, table: &str) -> Vec<u64> {
    db.rows(
        &format!("select order_id from {table} where kind = 'order' order by order_id"),
        &[],
    )
    .await
    .expect("the journal")
    .iter()
    .map(|r| r.i64(0).expect("an order id") as u64)
    .collect()
}

#[tokio::test]
async fn the_engine_fails_closed_while_the_journal_cannot_be_written_and_recovers() {
    let app = spawn_app_on_postgres().await;
    let mut accepted = Vec::new();

    let res = app.place(SELLER, sell("before-1")).await;
    assert_eq!(res.status(), 202);
    let first: Value = res.json().await.expect("an order");
    accepted.push(first["order_id"].as_u64().expect("an order id"));

    // A second connection hides the journal: every group commit now fails.
    let side = Db::connect(&app.database_url, 1)
        .await
        .expect("a second connection");
    side.exec("alter table workflows rename to workflows_hidden", &[])
        .await
        .expect("the journal hidden");

    // The commit fails (after its retries): the order is answered 503, and
    // its outcome is definite here: nothing was journaled.
    let mut refused = vec!["during-1".to_string()];
    assert_unavailable(app.place(SELLER, sell("during-1")).await).await;
    assert_eq!(journaled_orders(&side, "workflows_hidden").await, accepted);

    // While the journal is gone the rebuild cannot finish: orders get 503,
    // and the intake is unready.
    for coid in ["during-2", "during-3"] {
        assert_unavailable(app.place(SELLER, sell(coid)).await).await;
        refused.push(coid.into());
    }
    let ready = app
        .client
        .get(app.url("/readyz"))
        .send()
        .await
        .expect("a response");
    assert_unavailable(ready).await;
    assert_eq!(journaled_orders(&side, "workflows_hidden").await, accepted);

    side.exec("alter table workflows_hidden rename to workflows", &[])
        .await
        .expect("the journal back");

    // Poll with orders until one is accepted again; each refused one is
    // recorded (it must not be in the engine afterwards).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for n in 0.. {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the engine did not recover"
        );
        let coid = format!("after-{n}");
        let res = app.place(SELLER, sell(&coid)).await;
        if res.status() == 202 {
            let order: Value = res.json().await.expect("an order");
            accepted.push(order["order_id"].as_u64().expect("an order id"));
            break;
        }
        assert_unavailable(res).await;
        refused.push(coid);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200);

    // The journal holds exactly the accepted orders.
    accepted.sort_unstable();
    assert_eq!(journaled_orders(&app.db, "workflows").await, accepted);
    // A refused order is unknown to the engine and the read side.
    for coid in &refused {
        assert_eq!(
            by_client_id(&app, SELLER, coid).await,
            Vec::<Value>::new(),
            "{coid}"
        );
    }
    let found = by_client_id(&app, SELLER, "before-1").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["order_id"].as_u64(), Some(accepted[0]));
    // A refused client order id is free: reusing it places a new order.
    let res = app.place(SELLER, sell("during-1")).await;
    assert_eq!(res.status(), 202);
    let reused: Value = res.json().await.expect("an order");
    accepted.push(reused["order_id"].as_u64().expect("an order id"));
    accepted.sort_unstable();
    assert_eq!(journaled_orders(&app.db, "workflows").await, accepted);
}

/// The value of the metric line `name` (no labels).
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {text}"))
}

/// A restart loads the newest usable engine snapshot and replays only the
/// journal after it: the books, the balances and the client order ids are
/// what they were, on both database transports.
async fn a_restart_resumes_from_the_newest_snapshot(postgres: bool) {
    let policy = workers::snapshot::SnapshotPolicy {
        every: 8,
        replay_at_least: 5,
        ..Default::default()
    };
    let app = spawn_app_with_snapshots(postgres, policy).await;
    // A deposit with a transfer id before the snapshot, and one after it.
    let deposit = |id: &str| json!({"account_id": BUYER, "asset": "USD", "amount": "7", "client_transfer_id": id});
    let early = app.operate("/v1/deposits", &deposit("early")).await;
    assert_eq!(early.status(), 202);
    let early: Value = early.json().await.expect("a transfer");
    for i in 0..16 {
        let price = format!("{}", 90_000 + i * 10);
        let mut body = limit_sell(&price, "0.01");
        body["client_order_id"] = format!("snap-{i}").into();
        assert_eq!(app.place(SELLER, body).await.status(), 202);
    }
    // A buy that takes the two cheapest.
    assert_eq!(
        app.place(BUYER, limit_buy("90010", "0.02")).await.status(),
        202
    );
    for i in 16..20 {
        assert_eq!(
            app.place(SELLER, sell(&format!("snap-{i}"))).await.status(),
            202
        );
    }
    // The snapshots are written off the engine's thread: wait for one that
    // leaves at least five sequence numbers of the journal to replay.
    app.wait_until("a usable snapshot", || async {
        workers::snapshot::newest_usable(&app.db, policy.replay_at_least)
            .await
            .expect("the snapshot table")
            .is_some()
    })
    .await;
    let late = app.operate("/v1/deposits", &deposit("late")).await;
    assert_eq!(late.status(), 202);
    let late: Value = late.json().await.expect("a transfer");
    let book = app.get_json(SELLER, "/v1/markets/BTC-USD/book").await;
    let balances = [
        app.get_json(SELLER, "/v1/balances").await,
        app.get_json(BUYER, "/v1/balances").await,
    ];
    let workflows = app.workflow_count().await as u64;

    let app = app.restart().await;
    let metrics = app.metrics().await;
    let from = metric(&metrics, "clearway_engine_rebuild_snapshot_seq");
    let replayed = metric(&metrics, "clearway_engine_rebuild_replayed_workflows");
    assert!(from > 0, "started from a snapshot: {metrics}");
    assert!(
        replayed >= 1 && replayed < workflows,
        "replayed {replayed} of {workflows} workflows"
    );
    assert_eq!(app.get_json(SELLER, "/v1/markets/BTC-USD/book").await, book);
    assert_eq!(app.get_json(SELLER, "/v1/balances").await, balances[0]);
    assert_eq!(app.get_json(BUYER, "/v1/balances").await, balances[1]);

    // Client order ids placed before the snapshot are still known: a retry
    // gets the original order, a reuse with other parameters is a conflict.
    let mut first = limit_sell("90000", "0.01");
    first["client_order_id"] = "snap-0".into();
    let again = app.place(SELLER, first.clone()).await;
    assert_eq!(again.status(), 200);
    let again: Value = again.json().await.expect("an order");
    let found = by_client_id(&app, SELLER, "snap-0").await;
    assert_eq!(found[0]["order_id"], again["order_id"]);
    first["price"] = "90001".into();
    assert_problem(
        app.place(SELLER, first).await,
        409,
        "client_order_id_conflict",
    )
    .await;
    // So are transfer ids, from the snapshot and from the replay after it.
    for (id, original) in [("early", &early), ("late", &late)] {
        let again = app.operate("/v1/deposits", &deposit(id)).await;
        assert_eq!(again.status(), 200, "a retry of {id}");
        let again: Value = again.json().await.expect("a transfer");
        assert_eq!(again["workflow_id"], original["workflow_id"]);
        let mut other = deposit(id);
        other["amount"] = "8".into();
        assert_problem(
            app.operate("/v1/deposits", &other).await,
            409,
            "client_transfer_id_conflict",
        )
        .await;
    }
    assert_eq!(app.get_json(BUYER, "/v1/balances").await, balances[1]);
    // And the engine goes on from where it was.
    assert_eq!(app.place(SELLER, sell("after-restart")).await.status(), 202);
}

/// How many of the seller's orders the orders table holds with `coid`.
async fn persisted_with(db: &Db, coid: &str) -> i64 {
    use workers::db::Arg;
    db.rows(
        "select count(*) from orders where account_id = $1 and client_order_id = $2",
        &[Arg::I64(SELLER as i64), Arg::Text(coid.into())],
    )
    .await
    .expect("the orders table")[0]
        .i64(0)
        .expect("a count")
}

/// A client order id is remembered for its window (one second here, 24
/// hours by default): within it a reuse with other parameters is 409;
/// after it (and an accepted command that moves the engine's clock past
/// it) the id places a new order. Both orders are persisted with the id,
/// every workflow completes, and a read by the id, once the intake has
/// forgotten both, finds the newer one in the database.
async fn a_client_order_id_may_be_used_again_once_its_window_has_passed(postgres: bool) {
    let policy = workers::snapshot::SnapshotPolicy {
        client_id_window_us: 1_000_000,
        ..Default::default()
    };
    let app = spawn_app_with_snapshots(postgres, policy).await;
    let mut body = limit_sell("70000", "0.1");
    body["client_order_id"] = "again-1".into();
    let first = app.place(SELLER, body.clone()).await;
    assert_eq!(first.status(), 202);
    let first: Value = first.json().await.unwrap();
    body["price"] = "70001".into();
    assert_problem(
        app.place(SELLER, body.clone()).await,
        409,
        "client_order_id_conflict",
    )
    .await;

    let move_the_clock = || async {
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        let res = app
            .client
            .post(app.url("/v1/deposits"))
            .bearer_auth(token(900, &["operate"]))
            .json(&serde_json::json!({"account_id": BUYER, "asset": "USD", "amount": "1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202, "a deposit");
    };
    move_the_clock().await;
    let second = app.place(SELLER, body.clone()).await;
    assert_eq!(second.status(), 202);
    let second: Value = second.json().await.unwrap();
    assert_ne!(second["order_id"], first["order_id"]);
    app.wait_until("both orders persisted with the id", || async {
        persisted_with(&app.db, "again-1").await == 2
    })
    .await;

    move_the_clock().await;
    let found = app
        .get_json(SELLER, "/v1/orders?client_order_id=again-1")
        .await;
    assert_eq!(found["orders"][0]["order_id"], second["order_id"]);
    assert_eq!(found["orders"][0]["price"], "70001");
    app.wait_until("every workflow completed", || async {
        app.db
            .rows(
                "select count(*) from workflows where state <> 'completed'",
                &[],
            )
            .await
            .expect("the workflows table")[0]
            .i64(0)
            .expect("a count")
            == 0
    })
    .await;
}

#[tokio::test]
async fn a_client_order_id_may_be_used_again_once_its_window_has_passed_on_sqlite() {
    a_client_order_id_may_be_used_again_once_its_window_has_passed(false).await;
}

#[tokio::test]
async fn a_client_order_id_may_be_used_again_once_its_window_has_passed_on_postgres() {
    a_client_order_id_may_be_used_again_once_its_window_has_passed(true).await;
}

#[tokio::test]
async fn a_restart_resumes_from_the_newest_snapshot_on_sqlite() {
    a_restart_resumes_from_the_newest_snapshot(false).await;
}

#[tokio::test]
async fn a_restart_resumes_from_the_newest_snapshot_on_postgres() {
    a_restart_resumes_from_the_newest_snapshot(true).await;
}
